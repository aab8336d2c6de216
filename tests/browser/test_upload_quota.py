"""Issue 15 §9 as the visitor sees it: past his hourly upload quota the widget says
so in his language, and the file is not sent."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.browser.test_widget import open_widget


def test_the_widget_tells_the_visitor_his_upload_quota_is_reached(server, admin, new_context,
                                                                  tmp_path):
    server.app.config["UPLOAD_QUOTA_VISITOR_COUNT"] = 1
    page = new_context().new_page()
    frame = open_widget(page, server, admin.team["id"])
    frame.locator("#mq-input").fill("你好，我发几张图")
    frame.locator("#mq-send").click()
    frame.locator(".mq-msg.from-bot").first.wait_for()
    first = tmp_path / "发票.txt"
    first.write_text("第一张")
    frame.locator("#mq-file").set_input_files(str(first))
    expect(frame.locator(".mq-msg.mine .mq-filelink")).to_contain_text("发票.txt")
    second = tmp_path / "照片.txt"
    second.write_text("第二张")
    frame.locator("#mq-file").set_input_files(str(second))
    expect(frame.locator("#mq-banner")).to_contain_text(
        "上传次数已达上限：每小时最多上传 1 个文件，请 60 分钟后再试")
    expect(frame.locator(".mq-msg.mine .mq-filelink")).to_have_count(1)
