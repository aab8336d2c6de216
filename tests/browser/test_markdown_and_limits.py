"""Found from outside by a Chinese support team, in Chromium:

- the bot's links and images showed as raw markdown in the history transcript and on
  a ticket's page (content and transcript): they are drawn as the chat draws them
  (rich-text.js), a visitor's text stays text;
- 6,000 pasted characters were cut to 5,000 without a word (``maxlength``) in the widget
  and the workspace, the end lost: the boxes keep all of it, count near the limit and,
  over it, say so in the reader's language and send nothing.
"""

from __future__ import annotations

from playwright.sync_api import expect

from meiqia.models.base import utcnow
from tests.browser.conftest import login
from tests.browser.test_e2e_conversation import agent_serving_a_visitor
from tests.browser.test_widget import open_widget
from tests.browser.test_widget_tickets import chatting_with_admin
from tests.factories import make_conversation
from tests.factories import make_visitor

RETURNS = ("详细步骤见[退货指南](https://example.com/help/returns)。"
           "![退货流程](/static/demo/return-steps.png)（如有疑问请随时联系）")
INVOICE = "订单详情下载。![申请发票入口](/static/demo/invoice-entry.png)"
TYPED = "我看到[这个](https://example.com/x)"
LONG = "我" * 6000 + "结尾的订单号A123"


def _expect_drawn(node) -> None:
    """The bot's and agent's links and images as nodes, no markdown left but the visitor's."""
    link = node.locator("a.rich-link", has_text="退货指南")
    expect(link).to_have_attribute("href", "https://example.com/help/returns")
    expect(node.locator("img.rich-img[alt=退货流程]")).to_have_attribute(
        "src", "/static/demo/return-steps.png")
    expect(node.locator("img.rich-img[alt=申请发票入口]")).to_have_attribute(
        "src", "/static/demo/invoice-entry.png")
    text = node.inner_text().replace(TYPED, "")
    assert "](" not in text and "![" not in text, text


def test_history_and_ticket_pages_draw_the_bots_links_and_images(server, admin, new_context):
    team = admin.team["id"]
    with server.app.app_context():
        chat = make_conversation(team, make_visitor(team, name="王女士"), handler=admin.agent["id"],
                                 ended_at=utcnow(), messages=[
                                     ("visitor", TYPED, 0), ("bot", INVOICE, 2),
                                     ("agent", RETURNS, 30)])
    # A ticket written before the fix: its content holds the transcript's markdown.
    old = admin.post("/api/v1/tickets", json={"conversation_id": chat.id,
                                              "content": f"机器人: {INVOICE}\n客服: {RETURNS}"})
    assert old.status_code == 201, old.get_json()
    page = new_context(viewport={"width": 1360, "height": 900}).new_page()
    login(page, server)

    page.goto(f"{server.url}/history#c{chat.id}")
    transcript = page.locator("#transcript-messages")
    expect(transcript.locator(".ws-msg")).to_have_count(3)
    _expect_drawn(transcript)
    visitor = transcript.locator(".ws-msg.from-visitor .bubble")
    expect(visitor).to_have_text(TYPED)  # his own markdown stays as he typed it
    assert visitor.locator("a").count() == 0

    page.goto(f"{server.url}/tickets/{old.get_json()['id']}")
    content = page.locator("#tk-content")
    expect(content.locator("a.rich-link")).to_have_count(1)
    _expect_drawn(content)
    lines = page.locator("#tk-transcript")
    expect(lines.locator("li")).to_have_count(3)
    _expect_drawn(lines)
    assert lines.locator(".from-visitor a").count() == 0


def test_a_visitors_ticket_from_the_chat_shows_the_links_in_my_messages(server, admin,
                                                                         new_context):
    visitor, frame, cid = chatting_with_admin(server, admin, new_context)
    made = admin.post("/api/v1/tickets", json={"conversation_id": cid, "content": RETURNS})
    assert made.status_code == 201, made.get_json()

    frame = open_widget(visitor, server, admin.team["id"])
    frame.locator("#mq-tickets-btn").click()
    content = frame.locator(".mq-ticket-content")
    expect(content.locator("a.rich-link")).to_have_attribute(
        "href", "https://example.com/help/returns")
    expect(content.locator("img.rich-img")).to_have_attribute("src", "/static/demo/return-steps.png")
    assert "](" not in content.inner_text()


def test_the_widget_says_a_message_is_too_long_and_keeps_it(server, admin, new_context):
    page = new_context(viewport={"width": 420, "height": 800}).new_page()
    frame = open_widget(page, server, admin.team["id"])
    mine = frame.locator(".mq-msg.mine")
    frame.locator("#mq-input").fill("你好")
    frame.locator("#mq-send").click()
    expect(mine).to_have_count(1)

    box = frame.locator("#mq-input")
    box.fill(LONG)
    assert len(box.input_value()) == len(LONG)  # nothing cut: the end is still there
    frame.locator("#mq-send").click()
    note = frame.locator("#mq-count")
    expect(note).to_be_visible()
    expect(note).to_have_text("内容太长，无法发送：最多 5000 个字，已超出 1010 个字。"
                              "请删减后再发送，当前内容未发送。")
    page.wait_for_timeout(500)
    expect(mine).to_have_count(1)  # not sent
    assert box.input_value().endswith("结尾的订单号A123")

    # Shortened to 4,700: a count near the limit, and it goes whole.
    box.fill("我" * 4690 + "结尾的订单号A123")
    expect(note).to_have_text("已输入 4700 / 5000 字")
    frame.locator("#mq-send").click()
    expect(mine).to_have_count(2)
    expect(mine.last).to_contain_text("结尾的订单号A123")
    expect(note).to_be_hidden()


def test_the_workspace_and_the_ticket_reply_say_too_long_in_english(server, admin,
                                                                   new_context):
    assert admin.get("/lang/en").status_code == 302  # the agent reads English
    agent, _visitor, frame = agent_serving_a_visitor(server, admin, new_context)
    agent.goto(f"{server.url}/workspace?lang=en")
    agent.locator("#ws-list .ws-item").first.click()
    sent = agent.locator("#ws-messages .ws-msg.from-agent")
    before = sent.count()
    box = agent.locator("#ws-input")
    box.fill(LONG)
    agent.locator("#ws-send").click()
    note = agent.locator("#ws-count")
    expect(note).to_have_text("Too long to send: at most 5000 characters, this is 1010 over. "
                              "Shorten it, nothing was sent.")
    agent.wait_for_timeout(500)
    expect(sent).to_have_count(before)
    assert box.input_value() == LONG
    assert frame.locator(".mq-msg.from-agent").count() == 0

    ticket = admin.post("/api/v1/tickets", json={"content": "发票抬头写错了"}).get_json()
    agent.goto(f"{server.url}/tickets/{ticket['id']}?lang=en")
    reply = agent.locator("#tk-comment-form textarea[name=body]")
    reply.fill(LONG)
    agent.locator("#tk-comment-form button[type=submit]").click()
    expect(agent.locator("#tk-comment-count")).to_contain_text("at most 5000 characters")
    agent.wait_for_timeout(500)
    assert admin.get(f"/api/v1/tickets/{ticket['id']}").get_json()["comments"] == []
    assert reply.input_value() == LONG
