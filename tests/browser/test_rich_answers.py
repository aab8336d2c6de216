"""Rich answers in Chromium: the bot's links and images in the widget and in the
agent's suggestions, built as DOM nodes; anything but http(s) and site-relative
addresses stays plain text that cannot be clicked or loaded."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect

from tests.browser.test_e2e_conversation import agent_serving_a_visitor
from tests.browser.test_e2e_conversation import image_loaded
from tests.browser.test_e2e_conversation import import_shop_kb
from tests.browser.test_widget import open_widget

HOSTILE = ("别点[点我领红包](javascript:alert(document.domain))，也别看![图](data:image/svg+xml,x)"
           "和[相对](evil.html)；<b>不是粗体</b><img src=x onerror=alert(1)>。"
           "官网 https://example.com/help。")


def _ask(frame: Any, question: str) -> Any:
    bots = frame.locator(".mq-msg.from-bot")
    before = bots.count()
    frame.locator("#mq-input").fill(question)
    frame.locator("#mq-send").click()
    expect(bots).to_have_count(before + 1)
    return bots.last


def _shop_kb_and_a_hostile_entry(admin: Any) -> None:
    import_shop_kb(admin)
    created = admin.post("/api/v1/knowledge", json={
        "key": "hostile", "questions": ["有没有红包活动"], "answer": HOSTILE})
    assert created.status_code == 201, created.get_json()


def _dialogs(page: Any) -> list[str]:
    """What ``alert`` and friends said on ``page`` (dismissed): a script that ran."""
    said: list[str] = []
    page.on("dialog", lambda dialog: (said.append(dialog.message), dialog.dismiss()))
    return said


def _expect_the_return_guide(node: Any) -> None:
    """The demo KB's return answer, rendered: its link and its (loaded) image."""
    link = node.locator("a.rich-link")
    expect(link).to_have_text("退货指南")
    expect(link).to_have_attribute("href", "https://example.com/help/returns")
    expect(link).to_have_attribute("target", "_blank")
    expect(link).to_have_attribute("rel", "noopener")
    picture = node.locator("img.rich-img")
    expect(picture).to_have_attribute("src", "/static/demo/return-steps.png")
    expect(picture).to_have_attribute("alt", "退货流程")
    assert image_loaded(picture)  # the demo image is shipped, a real PNG
    expect(node).not_to_contain_text("](")


def test_the_widget_shows_the_bots_link_and_image_and_no_javascript_link(server, admin,
                                                                          new_context):
    _shop_kb_and_a_hostile_entry(admin)
    page = new_context(viewport={"width": 420, "height": 800}).new_page()
    dialogs = _dialogs(page)
    frame = open_widget(page, server, admin.team["id"])

    answer = _ask(frame, "怎么申请退货？")
    _expect_the_return_guide(answer)
    expect(answer.locator("img.rich-img")).to_be_visible()
    expect(answer).to_contain_text("详细步骤见退货指南。")

    hostile = _ask(frame, "有没有红包活动")
    text = hostile.locator(".mq-text")
    # The unsafe ones are the text they were written as; only the https address is a link.
    expect(text).to_contain_text("[点我领红包](javascript:alert(document.domain))")
    expect(text).to_contain_text("![图](data:image/svg+xml,x)")
    expect(text).to_contain_text("<b>不是粗体</b><img src=x onerror=alert(1)>")
    links = hostile.locator("a")
    expect(links).to_have_count(1)
    expect(links).to_have_attribute("href", "https://example.com/help")  # the 。 left out
    assert hostile.locator("img, b, [onerror]").count() == 0
    assert frame.locator("a[href^='javascript' i], img[src^='data' i]").count() == 0
    text.get_by_text("点我领红包", exact=False).click()  # plain text: nothing happens

    # The visitor's own text is never rich: his markdown stays as he typed it.
    mine = frame.locator(".mq-msg.mine .mq-text")
    before = mine.count()
    frame.locator("#mq-input").fill("[我的链接](https://example.com)")
    frame.locator("#mq-send").click()
    expect(mine).to_have_count(before + 1)
    expect(mine.last).to_have_text("[我的链接](https://example.com)")
    assert mine.last.locator("a").count() == 0
    # After that round trip: the click above ran no script and left the frame in place.
    assert dialogs == []
    assert [f.url for f in page.frames if "/widget/frame" in f.url]


def test_the_agents_suggestion_shows_the_link_and_image(server, admin, new_context):
    import_shop_kb(admin)
    agent, _visitor, frame = agent_serving_a_visitor(server, admin, new_context)
    agent.locator("#ws-list .ws-item").first.click()

    frame.locator("#mq-input").fill("怎么申请退货？")
    frame.locator("#mq-send").click()
    suggestion = agent.locator("#ws-suggestions .suggestion").first
    suggestion.wait_for()
    _expect_the_return_guide(suggestion.locator(".a"))
    # Sent in one click, the reply reaches the visitor with the same link and image.
    suggestion.locator("button.primary").click()
    reply = frame.locator(".mq-msg.from-agent").last
    expect(reply.locator("a.rich-link")).to_have_attribute(
        "href", "https://example.com/help/returns")
    expect(reply.locator("img.rich-img")).to_have_attribute("src", "/static/demo/return-steps.png")


def test_the_admins_try_the_bot_box_shows_the_answer_as_the_visitor_sees_it(server, admin,
                                                                           new_context):
    from tests.browser.test_knowledge import ask_until
    from tests.browser.test_knowledge import open_page

    _shop_kb_and_a_hostile_entry(admin)
    errors: list[str] = []
    page = open_page(server, new_context, errors)
    dialogs = _dialogs(page)
    page.goto(f"{server.url}/admin/knowledge")

    ask_until(page, "怎么申请退货？", "详细步骤见退货指南。")
    answer = page.locator("#kb-try-result .kb-bot-answer-text")
    _expect_the_return_guide(answer)

    ask_until(page, "有没有红包活动", "别点")
    expect(answer).to_contain_text("[点我领红包](javascript:alert(document.domain))")
    expect(answer).to_contain_text("<img src=x onerror=alert(1)>")
    expect(answer.locator("a.rich-link")).to_have_count(1)
    expect(answer.locator("a.rich-link")).to_have_attribute("href", "https://example.com/help")
    expect(answer.locator("img")).to_have_count(0)
    assert dialogs == [] and errors == []
