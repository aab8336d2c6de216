"""The workspace chat: the tick of a message on a channel that cannot report reads,
and a send whose response was lost, retried without storing it twice."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from meiqia.models import Conversation
from meiqia.models import Message
from meiqia.services import messages
from tests.api.test_conversations import start
from tests.browser.conftest import hold_the_first
from tests.browser.conftest import login
from tests.browser.conftest import serve


@pytest.fixture
def sms_server(tmp_path):
    with serve(tmp_path, PLUGINS=["tests.browser.sms_channel"]) as running:
        yield running


def open_chat(page, server):
    """Log in and open the one conversation of the list."""
    login(page, server)
    page.locator("#ws-list .ws-item").first.click()
    expect(page.locator("#ws-composer")).to_be_visible()


def one_chat_open(server, admin, new_context):
    """The bot off, the admin online, one visitor's chat open in his workspace:
    (its conversation id, the agent's page)."""
    admin.patch("/api/v1/team", json={"settings": {"bot_enabled": False}})
    admin.go_online()
    cid = start(server.app, admin.team["id"])[2]
    page = new_context(viewport={"width": 1360, "height": 820}).new_page()
    open_chat(page, server)
    return cid, page


def hold_the_first_send(page, url):
    """Hold the first POST to ``url`` unanswered (``conftest.hold_the_first``)."""
    return hold_the_first(page, url, "POST")


def test_a_channel_without_reads_shows_delivered_read_unknown(sms_server, new_context):
    from tests.helpers import ApiClient

    with sms_server.app.app_context():
        admin = ApiClient.registered(sms_server.app)
        admin.patch("/api/v1/team", json={"settings": {"bot_enabled": False}})
        admin.go_online()
        cid = start(sms_server.app, admin.team["id"])[2]
        Conversation.update(channel="sms").where(Conversation.id == cid).execute()
        page = new_context(viewport={"width": 1360, "height": 820}).new_page()
        open_chat(page, sms_server)
        page.fill("#ws-input", "您的快递已发出")
        page.press("#ws-input", "Enter")
        tick = page.locator("#ws-messages .ws-msg.from-agent .ticks").last
        expect(tick).to_have_attribute("data-status", "sent")
        sent = Message.get(Message.body == "您的快递已发出")
        messages.mark_delivered(Conversation.get_by_id(cid), [sent.id])  # the gateway's receipt
        expect(tick).to_have_attribute("data-status", "delivered_read_unknown")
        expect(tick).to_have_text("✓✓")
        expect(tick).to_have_attribute("title", "已送达（无法获知是否已读）")
        page.reload()  # and from the HTTP list
        tick = page.locator("#ws-messages .ws-msg.from-agent .ticks").last
        page.locator("#ws-list .ws-item").first.click()
        expect(tick).to_have_attribute("data-status", "delivered_read_unknown")
        expect(tick).to_have_text("✓✓")


def test_a_retry_after_a_lost_response_is_stored_once(server, admin, new_context):
    cid, page = one_chat_open(server, admin, new_context)
    lost = []

    def lose_the_first_response(route):
        if route.request.method == "POST" and not lost:
            route.fetch()  # the server stores the message...
            lost.append(route.request.post_data_json["client_msg_id"])
            route.abort()  # ...and the answer never arrives
        else:
            route.continue_()

    page.route(f"**/api/v1/conversations/{cid}/messages", lose_the_first_response)
    page.fill("#ws-input", "请稍等，我查一下")
    page.press("#ws-input", "Enter")
    expect(page.locator("#ws-input")).to_have_value("请稍等，我查一下")  # given back to retry
    assert lost and Message.select().where(Message.body == "请稍等，我查一下").count() == 1
    page.press("#ws-input", "Enter")
    expect(page.locator("#ws-messages .ws-msg.from-agent")).to_have_count(1)
    expect(page.locator("#ws-input")).to_have_value("")
    stored = Message.select().where(Message.body == "请稍等，我查一下")
    assert stored.count() == 1 and stored[0].client_msg_id == lost[0]
    # The next message, even with the same words, is a new one.
    page.fill("#ws-input", "请稍等，我查一下")
    page.press("#ws-input", "Enter")
    expect(page.locator("#ws-messages .ws-msg.from-agent")).to_have_count(2)
    assert Message.select().where(Message.body == "请稍等，我查一下").count() == 2


def test_the_same_words_sent_again_while_the_first_is_on_its_way_are_two_messages(
        server, admin, new_context):
    """The composer clears at once, so an agent can send the same words again before the
    first send has its answer; the second is a new message, not a retry of the first."""
    cid, page = one_chat_open(server, admin, new_context)
    held = hold_the_first_send(page, f"**/api/v1/conversations/{cid}/messages")
    for _ in range(2):
        page.fill("#ws-input", "好的")
        page.press("#ws-input", "Enter")
        expect(page.locator("#ws-input")).to_have_value("")
    expect(page.locator("#ws-messages .ws-msg.from-agent")).to_have_count(1)  # the second
    held[0].continue_()
    expect(page.locator("#ws-messages .ws-msg.from-agent")).to_have_count(2)
    stored = Message.select().where(Message.body == "好的")
    assert stored.count() == 2
    assert len({m.client_msg_id for m in stored}) == 2


def test_a_suggestion_that_arrives_while_a_reply_is_on_its_way_stays(server, admin, new_context):
    """A reply answers the suggestions shown when it was sent; the ones for the visitor's
    next question, arriving before that reply's response, stay on screen."""
    from tests.browser.test_e2e_conversation import agent_serving_a_visitor
    from tests.browser.test_e2e_conversation import import_shop_kb

    import_shop_kb(admin)
    agent, _visitor, frame = agent_serving_a_visitor(server, admin, new_context)
    agent.locator("#ws-list .ws-item").first.click()
    expect(agent.locator("#ws-composer")).to_be_visible()
    held = hold_the_first_send(agent, "**/api/v1/conversations/*/messages")
    agent.fill("#ws-input", "您好，请问有什么可以帮您？")
    agent.press("#ws-input", "Enter")
    expect(agent.locator("#ws-input")).to_have_value("")
    frame.locator("#mq-input").fill("快递丢了怎么办")
    frame.locator("#mq-send").click()
    suggestion = agent.locator("#ws-suggestions .suggestion").first
    suggestion.wait_for()
    held[0].continue_()
    expect(agent.locator("#ws-messages .ws-msg.from-agent")).to_have_count(1)
    expect(suggestion).to_be_visible()
    # Answering it with the suggestion takes it away.
    suggestion.locator("button.primary").click()
    expect(agent.locator("#ws-suggestions")).to_be_hidden()
    expect(agent.locator("#ws-messages .ws-msg.from-agent")).to_have_count(2)
