"""End to end in Chromium, the widget's hard cases: leave a message, hostile text, a phone
screen, a reload mid-conversation, custom information from the embedding page's JS API.
"""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect

from tests.browser.conftest import login
from tests.browser.conftest import screenshot
from tests.browser.test_e2e_conversation import agent_serving_a_visitor
from tests.browser.test_e2e_conversation import go_online
from tests.browser.test_widget import open_widget

IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
          "(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1")
XSS = '<img src=x onerror="window.__xss=1;alert(1)"><script>window.__xss=2;alert(2)</script>'


def watch_for_xss(page: Any) -> list[str]:
    """Every dialog the page opens (an alert means a payload ran)."""
    seen: list[str] = []

    def on_dialog(dialog: Any) -> None:
        seen.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    return seen


def identify(page: Any, info: dict) -> None:
    """The embedding page tells the widget who the visitor is (MeiqiaWidget.identify)."""
    page.wait_for_function("() => window.MeiqiaWidget && window.MeiqiaWidget.loaded")
    page.evaluate("info => window.MeiqiaWidget.identify(info)", info)


def open_chat(agent: Any, name: str) -> None:
    item = agent.locator("#ws-list .ws-item", has_text=name)
    item.wait_for()
    item.click()
    agent.locator("#ws-composer").wait_for()


def test_leave_a_message_when_nobody_is_online_becomes_a_ticket(server, admin, new_context):
    visitor = new_context(viewport={"width": 1100, "height": 800}).new_page()
    frame = open_widget(visitor, server, admin.team["id"])
    frame.locator("#mq-human").click()
    form = frame.locator(".mq-leave")
    form.wait_for()
    expect(frame.locator("#mq-messages")).to_contain_text("现在没有客服可以接待")

    # Without a phone or an e-mail the server refuses, and the form says why.
    form.locator("textarea[name=content]").fill("我的订单 A1024 一直没发货，请联系我。")
    form.locator("button[type=submit]").click()
    expect(form.locator(".mq-error")).to_be_visible()

    form.locator("input[name=name]").fill("赵女士")
    form.locator("input[name=phone]").fill("13912345678")
    form.locator("button[type=submit]").click()
    expect(frame.locator(".mq-thanks")).to_contain_text("留言已提交")
    expect(frame.locator(".mq-leave")).to_have_count(0)
    # The bot is still there for him; nobody asks him to rate anything.
    expect(frame.locator("#mq-input")).to_be_enabled()
    expect(frame.locator(".mq-rating")).to_have_count(0)

    tickets = admin.get("/api/v1/tickets").get_json()
    assert tickets["total"] == 1
    ticket = admin.get(f"/api/v1/tickets/{tickets['items'][0]['id']}").get_json()
    assert ticket["content"] == "我的订单 A1024 一直没发货，请联系我。"
    assert ticket["contact"] == {"name": "赵女士", "phone": "13912345678", "email": ""}
    assert ticket["conversation_id"] is not None


def test_hostile_names_messages_and_file_names_render_as_text(server, admin, new_context, tmp_path):
    agent = new_context(viewport={"width": 1360, "height": 820}).new_page()
    agent_alerts = watch_for_xss(agent)
    login(agent, server)
    go_online(agent)

    visitor = new_context(viewport={"width": 1100, "height": 800}).new_page()
    visitor_alerts = watch_for_xss(visitor)
    visitor.goto(f"{server.url}/demo?team={admin.team['id']}")
    identify(visitor, {"name": XSS, "custom": {XSS: XSS, "订单": "<b>A1</b>"}})
    visitor.locator("#meiqia-widget .mq-button").click()
    frame = visitor.frame_locator("#meiqia-widget iframe")
    frame.locator("#mq-input").fill(XSS)
    frame.locator("#mq-send").click()
    expect(frame.locator(".mq-msg.mine .mq-text").first).to_have_text(XSS)
    frame.locator(".mq-msg.from-bot").first.wait_for()
    frame.locator("#mq-human").click()
    expect(frame.locator("#mq-state")).to_contain_text("王管理")

    hostile = tmp_path / '<img src=x onerror="alert(3)">.txt'
    hostile.write_text("hello")
    frame.locator("#mq-file").set_input_files(str(hostile))
    expect(frame.locator(".mq-msg.mine .mq-filelink")).to_contain_text('<img src=x onerror="alert(3)">.txt')

    open_chat(agent, "<img")
    expect(agent.locator("#chat-title")).to_have_text(XSS)
    expect(agent.locator("#ws-messages .ws-msg.from-visitor .text").first).to_have_text(XSS)
    expect(agent.locator("#ws-messages .ws-file")).to_contain_text('<img src=x onerror="alert(3)">.txt')
    expect(agent.locator("#custom-info")).to_contain_text("<b>A1</b>")
    expect(agent.locator("#card-form input[name=name]")).to_have_value(XSS)
    agent.fill("#ws-input", XSS)
    agent.press("#ws-input", "Enter")
    expect(frame.locator(".mq-msg.from-agent .mq-text")).to_have_text(XSS)
    expect(agent.locator("#ws-messages .ws-msg.from-agent .text")).to_have_text(XSS)

    for page in (agent, visitor):
        assert page.evaluate("() => window.__xss") is None
    assert frame.locator("img[src=x], script:not([src]):not([type])").count() == 0
    assert agent.locator("#workspace img[src=x], #workspace script, #workspace b").count() == 0
    assert frame.locator("#mq-messages img, #mq-messages script").count() == 0
    assert agent_alerts == [] and visitor_alerts == []


def test_widget_on_a_375px_phone(server, admin, new_context, tmp_path):
    agent = new_context(viewport={"width": 1360, "height": 820}).new_page()
    login(agent, server)
    go_online(agent)

    context = new_context(viewport={"width": 375, "height": 740}, is_mobile=True, has_touch=True,
                          user_agent=IPHONE)
    page = context.new_page()
    frame = open_widget(page, server, admin.team["id"])
    panel = page.locator("#meiqia-widget .mq-panel")
    box = panel.bounding_box()
    assert box == {"x": 0, "y": 0, "width": 375, "height": 740}
    # Nothing wider than the screen: no sideways scrolling inside the panel.
    assert frame.locator("body").evaluate("b => b.scrollWidth <= b.clientWidth")

    frame.locator("#mq-emoji-btn").tap()
    frame.locator("#mq-emoji button", has_text="👍").tap()
    frame.locator("#mq-input").fill("在吗？")
    frame.locator("#mq-input").press("End")
    frame.locator("#mq-emoji button", has_text="🙏").tap()
    frame.locator("#mq-send").tap()
    expect(frame.locator(".mq-msg.mine .mq-text").first).to_have_text("在吗？🙏")
    expect(frame.locator("#mq-emoji")).to_be_hidden()
    frame.locator("#mq-human").tap()
    expect(frame.locator("#mq-state")).to_contain_text("王管理")

    open_chat(agent, "访客")
    expect(agent.locator("#visit-info")).to_contain_text("手机网页")
    expect(agent.locator("#visit-info")).to_contain_text("手机 (iPhone)")
    agent.fill("#ws-input", "您好，手机上也能看到我吗？")
    agent.press("#ws-input", "Enter")
    reply = frame.locator(".mq-msg.from-agent")
    expect(reply).to_contain_text("手机上也能看到")
    expect(frame.locator(".mq-msg.mine .mq-status").first).to_have_attribute("data-status", "read")
    assert reply.bounding_box()["width"] <= 375
    assert frame.locator("body").evaluate("b => b.scrollWidth <= b.clientWidth")
    screenshot(page, "widget-375")

    # The × closes the full-screen panel and the chat button comes back.
    frame.locator("#mq-close").tap()
    expect(panel).to_be_hidden()
    expect(page.locator("#meiqia-widget .mq-button")).to_be_visible()


def test_widget_speaks_the_browser_language_or_the_page_choice(server, admin, new_context):
    english = new_context(locale="en-US").new_page()
    frame = open_widget(english, server, admin.team["id"])
    expect(frame.locator("#mq-send")).to_have_text("Send")
    expect(frame.locator("#mq-human")).to_have_text("Talk to a human")
    expect(english.locator("#meiqia-widget .mq-button")).to_have_attribute("aria-label", "Chat with us")

    chosen = new_context(locale="zh-CN").new_page()
    frame = open_widget(chosen, server, admin.team["id"], lang="en")
    expect(frame.locator("#mq-send")).to_have_text("Send")

    chinese = new_context(locale="en-US").new_page()
    frame = open_widget(chinese, server, admin.team["id"], lang="zh-CN")
    expect(frame.locator("#mq-send")).to_have_text("发送")


def test_reload_mid_conversation_shows_every_message_once(server, admin, new_context):
    agent, visitor, frame = agent_serving_a_visitor(server, admin, new_context)
    for text in ("第一条", "第二条"):
        frame.locator("#mq-input").fill(text)
        frame.locator("#mq-input").press("Enter")
    expect(frame.locator(".mq-msg.mine .mq-status[data-status=sent], "
                         ".mq-msg.mine .mq-status[data-status=read]")).to_have_count(2)
    open_chat(agent, "访客")
    agent.fill("#ws-input", "回复一")
    agent.press("#ws-input", "Enter")
    expect(frame.locator(".mq-msg.from-agent")).to_have_count(1)

    # The visitor reloads; meanwhile the agent answers again.
    visitor.reload()
    agent.fill("#ws-input", "回复二（访客刷新时发送）")
    agent.press("#ws-input", "Enter")
    # The closed widget counts the one reply he has not read (not the replayed read one).
    expect(visitor.locator("#meiqia-widget .mq-badge")).to_have_text("1")
    visitor.locator("#meiqia-widget .mq-button").click()
    expect(visitor.locator("#meiqia-widget .mq-badge")).to_be_hidden()
    frame = visitor.frame_locator("#meiqia-widget iframe")
    expect(frame.locator(".mq-msg.from-agent")).to_have_count(2)
    texts = frame.locator(".mq-msg .mq-text").all_inner_texts()
    assert texts == ["第一条", "第二条", "回复一", "回复二（访客刷新时发送）"]
    expect(frame.locator("#mq-state")).to_contain_text("王管理")

    # Then more, both ways.
    frame.locator("#mq-input").fill("第三条")
    frame.locator("#mq-input").press("Enter")
    expect(agent.locator("#ws-messages .ws-msg.from-visitor")).to_have_count(3)
    agent.fill("#ws-input", "回复三")
    agent.press("#ws-input", "Enter")
    expect(frame.locator(".mq-msg.from-agent")).to_have_count(3)
    texts = frame.locator(".mq-msg .mq-text").all_inner_texts()
    assert texts == ["第一条", "第二条", "回复一", "回复二（访客刷新时发送）", "第三条", "回复三"]
    agent_texts = agent.locator("#ws-messages .ws-msg .text").all_inner_texts()
    assert sorted(agent_texts) == sorted(texts)


def test_reconnect_after_a_lost_connection_loses_and_repeats_nothing(server, admin, new_context):
    agent = new_context(viewport={"width": 1360, "height": 820}).new_page()
    login(agent, server)
    go_online(agent)

    context = new_context(viewport={"width": 1100, "height": 800})
    visitor = context.new_page()
    frame = open_widget(visitor, server, admin.team["id"])
    frame.locator("#mq-human").click()
    expect(frame.locator("#mq-state")).to_contain_text("王管理")
    open_chat(agent, "访客")

    context.set_offline(True)
    visitor.locator("#meiqia-widget iframe").wait_for()
    frame.locator("body.mq-offline").wait_for()
    frame.locator("#mq-input").fill("断网时写的")
    frame.locator("#mq-input").press("Enter")
    expect(frame.locator(".mq-msg.mine .mq-status").last).to_have_attribute("data-status", "sending")
    agent.fill("#ws-input", "断网时客服发的")
    agent.press("#ws-input", "Enter")
    context.set_offline(False)

    expect(frame.locator(".mq-msg.from-agent")).to_have_count(1)
    expect(agent.locator("#ws-messages .ws-msg.from-visitor")).to_have_count(1)
    expect(frame.locator(".mq-msg.mine .mq-status").last).not_to_have_attribute("data-status", "sending")
    texts = frame.locator(".mq-msg .mq-text").all_inner_texts()
    assert sorted(texts) == ["断网时写的", "断网时客服发的"]


def test_custom_information_from_the_js_api_shows_in_the_sidebar(server, admin, new_context):
    agent = new_context(viewport={"width": 1360, "height": 820}).new_page()
    login(agent, server)
    go_online(agent)

    visitor = new_context(viewport={"width": 1100, "height": 800}).new_page()
    visitor.goto(f"{server.url}/demo?team={admin.team['id']}")
    identify(visitor, {"name": "张三", "phone": "13800138000", "email": "zhang@example.com",
                       "custom": {"订单号": "A20261124", "VIP": "yes"}})
    visitor.locator("#meiqia-widget .mq-button").click()
    frame = visitor.frame_locator("#meiqia-widget iframe")
    frame.locator("#mq-human").click()
    expect(frame.locator("#mq-state")).to_contain_text("王管理")

    open_chat(agent, "张三")
    custom = agent.locator("#custom-info")
    for text in ("订单号", "A20261124", "VIP", "yes", "会员等级", "金卡", "购物车", "降噪耳机 Pro"):
        expect(custom).to_contain_text(text)
    card = agent.locator("#card-form")
    expect(card.locator("input[name=name]")).to_have_value("张三")
    expect(card.locator("input[name=phone]")).to_have_value("13800138000")
    expect(card.locator("input[name=email]")).to_have_value("zhang@example.com")
    expect(agent.locator("#visit-info")).to_contain_text("/demo")
