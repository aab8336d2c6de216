"""The visitor widget: the one-line embed on the demo shop, at phone size and on a desktop."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect


def open_widget(page: Any, server: Any, team_id: int, lang: str = "") -> Any:
    page.goto(f"{server.url}/demo?team={team_id}" + (f"&lang={lang}" if lang else ""))
    page.wait_for_function("() => window.MeiqiaWidget && window.MeiqiaWidget.loaded")
    page.locator("#meiqia-widget .mq-button").click()
    frame = page.frame_locator("#meiqia-widget iframe")
    frame.locator("#mq-input").wait_for()
    return frame


def test_widget_opens_full_screen_at_375px_and_the_bot_answers(server, admin, new_context):
    context = new_context(viewport={"width": 375, "height": 740}, is_mobile=True, has_touch=True)
    page = context.new_page()
    frame = open_widget(page, server, admin.team["id"])
    panel = page.locator("#meiqia-widget .mq-panel")
    box = panel.bounding_box()
    assert box["width"] == 375 and box["x"] == 0
    frame.locator("#mq-input").fill("你好，我想问一下发货时间")
    frame.locator("#mq-send").click()
    mine = frame.locator(".mq-msg.mine .mq-text")
    mine.first.wait_for()
    assert mine.first.inner_text() == "你好，我想问一下发货时间"
    frame.locator(".mq-msg.from-bot").first.wait_for()


def test_a_question_typed_while_the_widget_script_is_still_on_its_way_is_sent(
        server, admin, new_context):
    """On a slow network the panel's page shows its composer before its script has run.
    A question typed and sent with Enter then was only a new line in a text box, never
    sent (what loaded browser runs saw: no answer within 30 s). The composer now comes
    disabled and is enabled by the script, so typing waits for it."""
    context = new_context()
    page = context.new_page()
    page.goto(f"{server.url}/demo?team={admin.team['id']}")
    page.wait_for_function("() => window.MeiqiaWidget && window.MeiqiaWidget.loaded")
    network = context.new_cdp_session(page)
    network.send("Network.enable")
    network.send("Network.emulateNetworkConditions", {
        "offline": False, "latency": 1500, "downloadThroughput": -1, "uploadThroughput": -1})
    page.locator("#meiqia-widget .mq-button").click()
    frame = page.frame_locator("#meiqia-widget iframe")
    frame.locator("#mq-input").wait_for()  # on screen, its script still loading
    frame.locator("#mq-input").fill("你好，我想问一下发货时间")
    frame.locator("#mq-input").press("Enter")
    expect(frame.locator(".mq-msg.mine .mq-text")).to_have_text("你好，我想问一下发货时间",
                                                                timeout=30_000)
    expect(frame.locator(".mq-msg.from-bot").first).to_be_visible(timeout=30_000)
    expect(frame.locator("#mq-input")).to_have_value("")


def test_the_browser_offers_compression_and_the_socket_declines_it(server, admin, new_context):
    """Chromium offers permessage-deflate on every websocket; the server declines
    it (about 100 KB a socket for the compressor and decompressor it keeps:
    tests/ws/test_compression.py), and the widget chats in plain frames."""
    page = new_context().new_page()
    frame = open_widget(page, server, admin.team["id"])
    extensions = page.evaluate("""() => new Promise((done) => {
        const url = location.origin.replace(/^http/, 'ws') + '/ws/visitor?token=none';
        const socket = new WebSocket(url);
        socket.onopen = () => { done(socket.extensions); socket.close(); };
        socket.onerror = () => done('no connection');
    })""")
    assert extensions == ""
    frame.locator("#mq-input").fill("不压缩也能聊")
    frame.locator("#mq-input").press("Enter")
    expect(frame.locator(".mq-msg.mine .mq-text")).to_have_text("不压缩也能聊")
    expect(frame.locator(".mq-msg.from-bot").first).to_be_visible()
