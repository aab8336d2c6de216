"""The widget shows the server's refusals in its own language: Chinese in a zh-CN
widget, English in an English one (the frame sends X-Meiqia-Lang with its calls
and ?lang= on its socket URL; web/error_text.py translates)."""

from __future__ import annotations

from typing import Any

from tests.browser.test_widget import open_widget

TOO_LONG = "很" * 5001


def _older_widget(page: Any) -> None:
    """The frame as an older widget (or a script) would send: it does not stop a
    message over 5,000 characters itself (its boot is read with a larger limit), so
    the server's refusal is what the visitor reads. (Not by rewriting the response: a
    fulfilled frame loses Chromium's local-network permission and its socket.)"""
    page.add_init_script("""(() => {
      const parse = JSON.parse;
      JSON.parse = function (text, ...rest) {
        const value = parse.call(this, text, ...rest);
        if (value && typeof value === 'object' && 'max_body' in value) value.max_body = 99999;
        return value;
      };
    })();""")


def _send_too_long(frame: Any) -> str:
    """Send a message over the 5,000-character limit (through ``_older_widget``); the
    server's error frame marks it failed, with its reason."""
    frame.locator("#mq-input").fill(TOO_LONG)
    frame.locator("#mq-send").click()
    status = frame.locator(".mq-msg.mine .mq-status[data-status=failed]")
    status.wait_for()
    return status.inner_text()


def test_a_zh_cn_widget_shows_chinese_refusals(server, admin, new_context):
    # An English browser on a page that embeds the widget in Chinese (data-lang): the
    # widget's choice wins over the browser's Accept-Language.
    page = new_context(locale="en-US").new_page()
    _older_widget(page)
    frame = open_widget(page, server, admin.team["id"], lang="zh-CN")
    assert "内容：最多 5000 个字符" in _send_too_long(frame)

    # An upload the server refuses (not an image, whatever its name says): the banner.
    frame.locator("#mq-image").set_input_files(
        files=[{"name": "假图.png", "mimeType": "image/png", "buffer": b"just some text"}])
    banner = frame.locator("#mq-banner")
    banner.get_by_text("不是 PNG、JPEG、GIF 或 WebP 图片", exact=False).wait_for()
    assert "'假图.png'" in banner.inner_text() and "is not" not in banner.inner_text()


def test_an_english_widget_shows_english_refusals(server, admin, new_context):
    page = new_context(locale="zh-CN").new_page()  # and the other way round
    _older_widget(page)
    frame = open_widget(page, server, admin.team["id"], lang="en")
    assert "body: at most 5000 characters" in _send_too_long(frame)

    frame.locator("#mq-image").set_input_files(
        files=[{"name": "fake.png", "mimeType": "image/png", "buffer": b"just some text"}])
    frame.locator("#mq-banner").get_by_text(
        "file: 'fake.png' is not a PNG, JPEG, GIF or WebP image", exact=False).wait_for()
