"""The history pages in Chromium: the list and its figures, Chinese filters, the column
chooser remembered on the server, the transcript with internal notes marked, names and
messages that try to be HTML, and an export followed to 100% and downloaded.

The conversations are written with ``tests.factories`` (exact times, senders and
internal notes); everything under test goes through the pages and the JSON API. The
server here runs jobs on the embedded worker thread (not inline), as ``meiqia run``
does, so the exports page really polls a job that finishes after the request.
"""

from __future__ import annotations

import csv
import datetime
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from meiqia.models import Message
from meiqia.models.base import utcnow
from tests.browser.conftest import Server
from tests.browser.conftest import login
from tests.browser.conftest import screenshot
from tests.browser.conftest import serve
from tests.factories import make_conversation
from tests.factories import make_visitor
from tests.helpers import AGENT_PASSWORD
from tests.helpers import ApiClient

XSS_NAME = '<img src=x onerror="window.__xss=1">王五<script>window.__xss=2</script>'
XSS_TEXT = '<b onmouseover="window.__xss=3">粗体</b><img src=x onerror="window.__xss=4">'
#: What 张三 wrote with his rating (满意).
COMMENT = "服务很好，谢谢小明"


@pytest.fixture
def server(tmp_path: Any) -> Iterator[Server]:
    """Like the shared ``server``, with jobs on the embedded worker thread."""
    with serve(tmp_path, JOBS_INLINE=False) as running:
        yield running


@pytest.fixture
def world(server: Server, admin: ApiClient) -> dict[str, Any]:
    """Three ended conversations of the last day: 张三 (a refund, with an internal
    note), 李四 (an invoice, handled by 李客服), and a customer whose name and message
    are HTML (missed: nobody answered)."""
    now = utcnow().replace(microsecond=0)
    with server.app.app_context():
        team, me = admin.team["id"], admin.agent["id"]
        li = admin.new_agent(name="李客服", email="li@example.com", scope="self")
        zhang = make_visitor(team, name="张三", phone="13800138000", source="search_engine",
                             search_keyword="退款怎么办", platform="mobile_web", region="上海",
                             device="mobile (iPhone)", os="iOS 17.2", browser="WeChat 8.0")
        a = make_conversation(team, zhang, handler=me, ended_at=now - datetime.timedelta(hours=1),
                              rating="good", rating_comment=COMMENT, tags=["退款"],
                              summary="退款咨询", messages=[
                                  ("visitor", "退款还没到账，电话 13800138000", 0),
                                  ("agent", "马上为您查询", 30),
                                  ("agent", "内部：找财务核实", 40, "internal"),
                                  ("agent", "已退回原账户", 120)])
        lisi = make_visitor(team, name="李四", region="内网", trail=[
            {"url": "https://shop.example.com/fapiao", "title": "发票说明"}])
        b = make_conversation(team, lisi, handler=li.agent["id"],
                              ended_at=now - datetime.timedelta(hours=2), messages=[
                                  ("visitor", "发票怎么开？", 0), ("bot", "您是不是想问：", 2),
                                  ("agent", "在订单页申请", 60)])
        Message.update(payload={"bot": "suggest", "candidates": [
            {"entry_id": "invoice", "question": "怎么开发票？"},
            {"entry_id": "vat", "question": "可以开专票吗？"}]}).where(
            Message.conversation == b.id, Message.sender_kind == "bot").execute()
        c = make_conversation(team, make_visitor(team, name=XSS_NAME), handler=me,
                              ended_at=now - datetime.timedelta(hours=3),
                              messages=[("visitor", XSS_TEXT, 0)])
    return {"a": a.id, "b": b.id, "c": c.id}


def rows(page: Any) -> Any:
    return page.locator("#history-table tbody tr[data-id]")


def row_of(page: Any, conversation_id: int) -> Any:
    return page.locator(f"#history-table tbody tr[data-id='{conversation_id}']")


def cell(page: Any, conversation_id: int, column: str) -> Any:
    return row_of(page, conversation_id).locator(f"td[data-col='{column}']")


def open_history(page: Any, server: Server, query: str = "") -> None:
    page.goto(f"{server.url}/history{query}")
    page.locator("#history-total").filter(has_text="共").wait_for()


def test_the_list_shows_the_figures_and_chinese_filters_narrow_it(server, world, new_context):
    page = new_context().new_page()
    login(page, server)
    page.click(".mainnav a[href='/history']")
    page.wait_for_url(f"{server.url}/history")
    page.locator("#history-total").filter(has_text="共").wait_for()
    expect(page.locator("#history-total")).to_have_text("共 3 条对话")
    expect(rows(page)).to_have_count(3)
    # Newest end first.
    assert [int(i) for i in rows(page).evaluate_all("rs => rs.map(r => r.dataset.id)")] == [
        world["a"], world["b"], world["c"]]
    a = world["a"]
    expect(cell(page, a, "visitor")).to_have_text("张三")
    expect(cell(page, a, "agent")).to_have_text("王管理")
    expect(cell(page, a, "duration_s")).to_have_text("1 分 30 秒")  # first to last manual
    expect(cell(page, a, "first_response_s")).to_have_text("30 秒")
    expect(cell(page, a, "visitor_messages")).to_have_text("1")
    expect(cell(page, a, "agent_messages")).to_have_text("2")  # the internal note is not one
    expect(cell(page, a, "rating")).to_have_text("满意")
    expect(cell(page, a, "lead")).to_have_text("13800138000")
    expect(cell(page, a, "source")).to_have_text("搜索引擎")
    expect(cell(page, a, "platform")).to_have_text("手机网页")
    expect(cell(page, a, "search_keyword")).to_have_text("退款怎么办")
    expect(cell(page, world["b"], "agent")).to_have_text("李客服")
    expect(cell(page, world["c"], "visitor")).to_contain_text("遗漏")  # nobody answered

    # Message content, in Chinese: only the refund.
    page.fill("#history-filters input[name=content]", "退款")
    page.click("#history-filters button[type=submit]")
    expect(page.locator("#history-total")).to_have_text("共 1 条对话")
    expect(rows(page)).to_have_count(1)
    expect(cell(page, a, "visitor")).to_have_text("张三")
    assert "content=%E9%80%80%E6%AC%BE" in page.url  # the filter is in the address

    # A reload keeps the filter; another filter combines with it.
    page.reload()
    expect(page.locator("#history-filters input[name=content]")).to_have_value("退款")
    expect(rows(page)).to_have_count(1)
    page.fill("#history-filters input[name=content]", "")
    page.select_option("#history-filters select[name=agent_id]", label="李客服")
    page.click("#history-filters button[type=submit]")
    expect(rows(page)).to_have_count(1)
    expect(cell(page, world["b"], "visitor")).to_have_text("李四")
    page.click("#clear-filters")
    expect(rows(page)).to_have_count(3)
    page.select_option("#history-filters select[name=rating]", label="满意")
    page.select_option("#history-filters select[name=missed]", label="否")
    page.click("#history-filters button[type=submit]")
    expect(rows(page)).to_have_count(1)
    expect(row_of(page, a)).to_be_visible()
    # The server refuses a bad value and the form says which field.
    page.click("#clear-filters")
    page.fill("#history-filters input[name=duration_min]", "-5")
    page.click("#history-filters button[type=submit]")
    expect(page.locator("#history-filters .form-error")).to_contain_text("最短持续时长")
    expect(page.locator("#history-filters input[name=duration_min]")).to_have_attribute(
        "aria-invalid", "true")
    # A range that ends before it starts is a mistake the form names.
    page.fill("#history-filters input[name=duration_min]", "")
    page.fill("#history-filters input[name=ended_from]", "2026-11-30")
    page.fill("#history-filters input[name=ended_to]", "2026-11-01")
    page.click("#history-filters button[type=submit]")
    expect(page.locator("#history-filters .form-error")).to_contain_text("不能晚于")
    # A time range nothing ended in: an empty list that says so.
    page.fill("#history-filters input[name=ended_from]", "2026-11-01")
    page.fill("#history-filters input[name=ended_to]", "2026-11-02")
    page.click("#history-filters button[type=submit]")
    expect(page.locator("#history-total")).to_have_text("共 0 条对话")
    expect(page.locator("#history-table tbody tr.empty")).to_have_text("没有符合条件的历史对话")


def test_the_column_chooser_hides_and_reorders_and_is_remembered(server, admin, world,
                                                                  new_context):
    page = new_context().new_page()
    login(page, server)
    open_history(page, server)
    headers = page.locator("#history-table thead th")
    expect(headers.first).to_have_text("客户")
    expect(page.locator("#history-table thead th[data-col=ip]")).to_have_count(1)

    page.click("#choose-columns")
    chooser = page.locator("dialog #column-list")
    chooser.wait_for()
    chooser.locator(".col-item[data-col=ip] input[type=checkbox]").uncheck()
    # Drag "接待客服" onto the top half of "客户": it goes first.
    agent_item = chooser.locator(".col-item[data-col=agent]")
    agent_item.drag_to(chooser.locator(".col-item[data-col=visitor]"),
                       target_position={"x": 40, "y": 3})
    expect(chooser.locator(".col-item").first).to_have_attribute("data-col", "agent")
    # The keyboard-friendly way: 满意度 one place up.
    chooser.locator(".col-item[data-col=rating] button.up").click()
    page.click("dialog button[type=submit]")
    expect(page.locator("dialog")).to_have_count(0)

    def check() -> None:
        expect(headers.first).to_have_text("接待客服")
        expect(headers.nth(1)).to_have_text("客户")
        expect(page.locator("#history-table thead th[data-col=ip]")).to_have_count(0)
        expect(cell(page, world["a"], "ip")).to_have_count(0)
        order = headers.evaluate_all("hs => hs.map(h => h.dataset.col)")
        assert order.index("rating") < order.index("first_response_s")

    check()
    page.reload()
    page.locator("#history-table thead th").first.wait_for()
    check()
    # Saved on the server: the same choice on another device (a fresh profile).
    other = new_context().new_page()
    login(other, server)
    open_history(other, server)
    expect(other.locator("#history-table thead th").first).to_have_text("接待客服")
    with server.app.app_context():
        columns = admin.get("/api/v1/history").get_json()["columns"]
    assert columns[:2] == ["agent", "visitor"] and "ip" not in columns


def test_a_transcript_opens_with_internal_notes_marked(server, world, new_context):
    page = new_context().new_page()
    login(page, server)
    open_history(page, server)
    row_of(page, world["a"]).locator("td[data-col=ended_at]").click()
    drawer = page.locator("#transcript")
    expect(drawer).to_be_visible()
    expect(page.locator("#transcript-title")).to_have_text("张三")
    messages = drawer.locator("#transcript-messages li.ws-msg")
    expect(messages).to_have_count(4)
    expect(messages.nth(0)).to_contain_text("退款还没到账，电话 13800138000")
    note = drawer.locator("li.ws-msg.internal")
    expect(note).to_have_count(1)
    expect(note).to_contain_text("内部：找财务核实")
    expect(note.locator(".internal-tag")).to_have_text("内部备注 · 仅客服可见")
    expect(drawer.locator("dd[data-fact=duration_s]")).to_have_text("1 分 30 秒")
    expect(drawer.locator("dd[data-fact=first_response_s]")).to_have_text("30 秒")
    expect(drawer.locator("dd[data-fact=summary]")).to_have_text("退款咨询")
    expect(drawer.locator("#transcript-visit")).to_contain_text("退款怎么办")
    expect(drawer.locator("#transcript-customer")).to_contain_text("13800138000")
    assert page.url.endswith(f"#c{world['a']}")
    screenshot(page, "history")
    # The address opens the same transcript after a reload; Escape closes it.
    page.reload()
    expect(page.locator("#transcript-title")).to_have_text("张三")
    page.keyboard.press("Escape")
    expect(drawer).to_be_hidden()


def test_the_rating_comment_and_the_device_in_the_readers_words(server, world, new_context):
    """The visitor's words with his rating next to it (the list's 评价内容 column, the
    transcript's figures), and his device's kind as the workspace sidebar says it (电脑,
    手机), never the stored code (outside tester: `mobile` shown to Chinese readers)."""
    a = world["a"]
    page = new_context().new_page()
    login(page, server)
    open_history(page, server)
    expect(page.locator("#history-table thead th[data-col=rating_comment]")).to_have_text(
        "评价内容")
    expect(cell(page, a, "rating")).to_have_text("满意")
    expect(cell(page, a, "rating_comment")).to_have_text(COMMENT)
    expect(cell(page, world["b"], "rating_comment")).to_have_text("")
    expect(cell(page, a, "device")).to_have_text("手机 (iPhone) / iOS 17.2 / WeChat 8.0")
    row_of(page, a).locator("td[data-col=ended_at]").click()
    drawer = page.locator("#transcript")
    expect(drawer.locator("dd[data-fact=rating]")).to_have_text("满意")
    expect(drawer.locator("dd[data-fact=rating_comment]")).to_have_text(COMMENT)
    expect(drawer.locator("#transcript-visit")).to_contain_text("手机 (iPhone) / iOS 17.2")
    # Found by a part of it, from the form's "more filters".
    page.keyboard.press("Escape")
    page.locator("#more-filters summary").click()
    page.fill("#history-filters input[name=rating_comment]", "谢谢")
    page.click("#history-filters button[type=submit]")
    expect(page.locator("#history-total")).to_have_text("共 1 条对话")
    expect(row_of(page, a)).to_be_visible()

    page.goto(f"{server.url}/history?lang=en")
    expect(cell(page, a, "device")).to_have_text("Phone (iPhone) / iOS 17.2 / WeChat 8.0")
    expect(page.locator("#history-table thead th[data-col=rating_comment]")).to_have_text(
        "Rating comment")


def test_a_did_you_mean_shows_the_questions_the_visitor_was_offered(server, world, new_context):
    page = new_context().new_page()
    login(page, server)
    open_history(page, server)
    cell(page, world["b"], "visitor").locator("a.visitor-link").click()
    expect(page.locator("#transcript-title")).to_have_text("李四")
    offered = page.locator("#transcript-messages li.ws-msg").nth(1)
    expect(offered).to_contain_text("您是不是想问：")
    expect(offered.locator("ul.candidates li")).to_have_text(["怎么开发票？", "可以开专票吗？"])


def test_a_name_and_a_message_made_of_html_render_as_text(server, world, new_context):
    page = new_context().new_page()
    login(page, server)
    open_history(page, server)
    link = cell(page, world["c"], "visitor").locator("a.visitor-link")
    expect(link).to_have_text(XSS_NAME)
    link.click()
    expect(page.locator("#transcript-title")).to_have_text(XSS_NAME)
    expect(page.locator("#transcript-messages .bubble").first).to_have_text(XSS_TEXT)
    assert page.evaluate("window.__xss") is None
    assert page.locator("#history-table img, #transcript img, #transcript b").count() == 0


def read_download(download: Any, fmt: str) -> list[list[str]]:
    data = Path(download.path()).read_bytes()
    if fmt == "csv":
        return list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    from openpyxl import load_workbook

    sheet = load_workbook(io.BytesIO(data), read_only=True).worksheets[0]
    return [["" if v is None else str(v) for v in r] for r in sheet.iter_rows(values_only=True)]


def test_an_export_runs_to_100_percent_and_downloads_the_rows(server, world, new_context):
    page = new_context(accept_downloads=True).new_page()
    login(page, server)
    # From the history page: the current filter (Chinese content), as CSV with messages.
    open_history(page, server, "?content=退款")
    expect(rows(page)).to_have_count(1)
    page.click("#start-export")
    form = page.locator("dialog form.export-form")
    expect(form.locator(".chip")).to_contain_text("聊天内容：退款")
    form.locator("input[name=format][value=csv]").check()
    form.locator("input[name=with_content]").check()
    form.locator("button[type=submit]").click()
    page.wait_for_url("**/history/exports#e*")
    row = page.locator("#exports-table tbody tr[data-id]").first
    expect(row.locator("progress")).to_have_attribute("data-percent", "100")
    expect(row.locator(".export-status")).to_have_text("已完成")
    expect(row.locator(".percent")).to_have_text("100%")
    expect(row).to_contain_text("1 / 1 条")
    with page.expect_download() as info:
        row.locator("a.download").click()
    lines = read_download(info.value, "csv")
    assert lines[0][:2] == ["编号", "客户"] and lines[0][-1] == "聊天内容 (Asia/Shanghai)"
    assert [r[1] for r in lines[1:]] == ["张三"]
    assert "已退回原账户" in lines[1][-1] and "找财务" not in lines[1][-1]

    # From the exports page, with the filter of its address: everything, as XLSX.
    page.goto(f"{server.url}/history/exports")
    expect(page.locator("#export-count")).to_have_text("将导出 3 条对话")
    page.select_option("#export-form select[name=format]", "xlsx")
    page.click("#export-start")
    expect(page.locator("#exports-table tbody tr[data-id]")).to_have_count(2)
    newest = page.locator("#exports-table tbody tr[data-id]").first
    expect(newest.locator("progress")).to_have_attribute("data-percent", "100")
    with page.expect_download() as info:
        newest.locator("a.download").click()
    sheet = read_download(info.value, "xlsx")
    assert sorted(r[1] for r in sheet[1:]) == sorted(["张三", "李四", XSS_NAME])
    screenshot(page, "exports")

    # Delete the first export: gone from the list and from the API.
    first_id = int(page.locator("#exports-table tbody tr[data-id]").last.get_attribute("data-id"))
    page.locator(f"#exports-table tr[data-id='{first_id}'] button.delete").click()
    page.click("#confirm-delete")
    expect(page.locator(f"#exports-table tr[data-id='{first_id}']")).to_have_count(0)
    page.reload()
    expect(page.locator("#exports-table tbody tr[data-id]")).to_have_count(1)

    # A filter nothing matches: said up front, and the export is refused with the reason.
    page.goto(f"{server.url}/history/exports?customer_name=没有这个人")
    expect(page.locator("#export-count")).to_have_text("没有符合条件的对话，无法导出。")
    expect(page.locator("#export-filters")).to_contain_text("客户名称：没有这个人")
    page.click("#export-start")
    expect(page.locator("#export-form .form-error")).to_have_text("没有符合条件的对话，无法导出。")
    expect(page.locator("#exports-table tbody tr[data-id]")).to_have_count(1)


def test_the_pages_speak_english_too(server, world, new_context):
    page = new_context(locale="en-US").new_page()
    login(page, server)
    page.goto(f"{server.url}/history?lang=en")
    expect(page.locator("#history-total")).to_have_text("Matching conversations: 3")
    expect(page.locator("#history-table thead th").first).to_have_text("Customer")
    expect(cell(page, world["a"], "rating")).to_have_text("Good")
    # A private address's region and one page visited, in English words.
    expect(cell(page, world["b"], "region")).to_have_text("Private network")
    expect(cell(page, world["b"], "visit_trail")).to_have_text("1 page")
    page.goto(f"{server.url}/history/exports?lang=en&rating=good")
    expect(page.locator("#export-filters")).to_contain_text("Rating: Good")
    expect(page.locator("#export-count")).to_have_text("Conversations to export: 1")


def test_pages_of_results_and_an_agent_sees_only_his_scope(server, admin, world, new_context):
    now = utcnow().replace(microsecond=0)
    with server.app.app_context():
        team, me = admin.team["id"], admin.agent["id"]
        for n in range(22):  # 25 in all: two pages of 20
            make_conversation(team, make_visitor(team, name=f"批量客户{n:02d}"), handler=me,
                              ended_at=now - datetime.timedelta(days=2, minutes=n),
                              messages=[("visitor", "你好", 0), ("agent", "您好", 5)])
    page = new_context().new_page()
    login(page, server)
    open_history(page, server)
    expect(page.locator("#history-total")).to_have_text("共 25 条对话")
    expect(rows(page)).to_have_count(20)
    expect(page.locator("#page-info")).to_have_text("第 1 / 2 页")
    expect(page.locator("#page-prev")).to_be_disabled()
    page.click("#page-next")
    expect(page.locator("#page-info")).to_have_text("第 2 / 2 页")
    expect(rows(page)).to_have_count(5)
    expect(rows(page).last.locator("td[data-col=visitor]")).to_have_text("批量客户21")  # oldest
    assert "page=2" in page.url
    page.reload()
    expect(rows(page)).to_have_count(5)
    page.select_option("#per-page", "50")
    expect(rows(page)).to_have_count(25)
    expect(page.locator("#page-next")).to_be_disabled()

    # 李客服 (scope: himself) sees his one conversation, not the team's.
    other = new_context().new_page()
    login(other, server, "li@example.com", AGENT_PASSWORD)
    open_history(other, server)
    expect(other.locator("#history-total")).to_have_text("共 1 条对话")
    expect(cell(other, world["b"], "visitor")).to_have_text("李四")


def test_a_failed_export_says_why(server, world, new_context, monkeypatch):
    # Exports are retried: one retry, 2 s on, so the last attempt fails within the test.
    from meiqia.jobs import Retry
    from meiqia.services import exports

    monkeypatch.setattr(exports, "RETRY", Retry(max=1, intervals=(2,)))
    # A file where the exports folder should be: the job cannot write and fails for real.
    # (The app makes the folder as it starts, empty: it is taken away first.)
    blocker = Path(server.app.instance_path) / "exports"
    blocker.parent.mkdir(parents=True, exist_ok=True)
    if blocker.is_dir():
        blocker.rmdir()
    blocker.write_text("not a folder", encoding="utf-8")
    page = new_context().new_page()
    login(page, server)
    page.goto(f"{server.url}/history/exports?rating=good")
    expect(page.locator("#export-count")).to_have_text("将导出 1 条对话")
    page.click("#export-start")
    row = page.locator("#exports-table tbody tr[data-id]").first
    # The first attempt failed: queued again, and the page says it will retry, and why.
    expect(row.locator(".export-retry")).to_contain_text("上次失败，稍后自动重试：")
    expect(row.locator(".export-status")).to_have_text("失败", timeout=20000)
    expect(row.locator("[role=alert]")).to_contain_text("失败原因：")
    expect(row.locator("a.download")).to_have_count(0)
