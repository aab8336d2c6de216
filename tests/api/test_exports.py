"""History exports end to end: CSV and XLSX through the job queue (inline, the
embedded worker thread, rq on Redis), formula injection, the 20,000 cap, and who
may see, download and delete an export."""

from __future__ import annotations

import csv
import datetime
import io

import pytest

from meiqia.models import Conversation
from meiqia.models import ExportJob
from meiqia.models import JobRecord
from meiqia.models import Visitor
from tests.conftest import close_app
from tests.conftest import make_app
from tests.factories import make_conversation
from tests.factories import make_visitor
from tests.helpers import ApiClient

T0 = datetime.datetime(2026, 11, 20, 4, 0, 0)  # 12:00 in Asia/Shanghai
#: The columns, in order, and their headers as a zh-CN agent reads them (the team's zone
#: named on every time column).
KEYS = ["id", "visitor", "ip", "device", "started_at", "ended_at", "duration_s", "tags",
        "first_response_s", "agent", "rating", "rating_comment", "visitor_messages",
        "agent_messages", "visit_trail", "lead", "search_keyword", "summary", "region",
        "source", "platform", "grade", "channel"]
HEADER = ["编号", "客户", "IP", "设备", "开始时间 (Asia/Shanghai)", "结束时间 (Asia/Shanghai)",
          "持续时长（秒）", "对话标签", "首次响应（秒）", "接待客服", "满意度", "评价内容", "客户消息数",
          "客服消息数", "访问轨迹 (Asia/Shanghai)", "线索", "搜索关键词", "对话小结", "地区",
          "访问来源", "访问平台", "对话分级", "渠道"]
TRAIL = [{"url": "https://shop.example.com/p/1", "title": "商品页", "at": "2026-11-20T03:55:00Z"},
         {"url": "https://shop.example.com/cart", "title": "购物车", "at": "2026-11-20T03:56:10Z"}]


def seed(api: ApiClient, li_id: int | None = None) -> dict[str, Conversation]:
    team, admin = api.team["id"], api.agent["id"]
    evil = make_visitor(team, name="=HYPERLINK(\"http://evil.example\",\"点我\")",
                        search_keyword="-2+3", source="search_engine", ip="1.2.3.4",
                        trail=TRAIL)
    a = make_conversation(team, evil, handler=admin, ended_at=T0, summary="+1+1 小结",
                          tags=["@SUM(A1)", "退款"], rating="good",
                          rating_comment="=1+1 服务很好", messages=[
                              ("visitor", "退款还没到账，电话 131-2113-2323", 0),
                              ("agent", "马上为您查询", 30),
                              ("agent", "内部：找财务", 40, "internal"),
                              ("agent", "\t=1+2", 90)])
    b = make_conversation(team, make_visitor(team, name="李四"), handler=li_id or admin,
                          ended_at=T0 - datetime.timedelta(days=1),
                          messages=[("visitor", "发票怎么开？", 0)])
    return {"a": a, "b": b}


def read_export(api: ApiClient, export_id: int, fmt: str) -> list[list[str]]:
    response = api.get(f"/api/v1/history/exports/{export_id}/file")
    assert response.status_code == 200, response.get_json()
    data = response.get_data()
    response.close()
    if fmt == "csv":
        assert data.startswith(b"\xef\xbb\xbf")  # BOM: Excel opens UTF-8 Chinese correctly
        return list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    from openpyxl import load_workbook

    sheet = load_workbook(io.BytesIO(data), read_only=True).worksheets[0]
    rows = [[("" if v is None else str(v)) for v in row]
            for row in sheet.iter_rows(values_only=True)]
    for row in sheet.iter_rows(min_row=2):
        for cell in row:
            assert cell.data_type != "f"  # nothing is ever a formula
    return rows


def check_file(api: ApiClient, export: dict, convs: dict, fmt: str, content: bool) -> None:
    rows = read_export(api, export["id"], fmt)
    assert rows[0] == HEADER + (["聊天内容 (Asia/Shanghai)"] if content else [])
    keys = KEYS + (["messages"] if content else [])
    by_id = {row[0]: dict(zip(keys, row, strict=True)) for row in rows[1:]}
    assert set(by_id) == {str(convs["a"].id), str(convs["b"].id)}
    a = by_id[str(convs["a"].id)]
    assert a["visitor"] == "'=HYPERLINK(\"http://evil.example\",\"点我\")"
    assert a["summary"] == "'+1+1 小结" and a["search_keyword"] == "'-2+3"
    assert a["tags"] == "'@SUM(A1),退款"
    assert a["ended_at"] == "2026-11-20 12:00:00"  # the team's time, not UTC
    assert a["started_at"] == "2026-11-20 11:57:30"
    assert (a["duration_s"], a["first_response_s"]) == ("60", "30")  # the note at 40 s is not manual
    assert (a["visitor_messages"], a["agent_messages"]) == ("1", "2")
    assert a["lead"] == "131-2113-2323" and a["rating"] == "满意" and a["agent"] == "王管理"
    assert a["rating_comment"] == "'=1+1 服务很好"  # what he wrote, never a formula
    assert a["source"] == "搜索引擎" and a["ip"] == "1.2.3.4"
    assert a["visit_trail"] == ("2026-11-20 11:55:00 商品页 https://shop.example.com/p/1\n"
                                "2026-11-20 11:56:10 购物车 https://shop.example.com/cart")
    assert by_id[str(convs["b"].id)]["visit_trail"] == ""
    if content:
        transcript = a["messages"]
        assert "[2026-11-20 11:57:30] 访客: 退款还没到账" in transcript
        assert "王管理: 马上为您查询" in transcript
        assert "内部：找财务" not in transcript  # internal notes never leave
        assert by_id[str(convs["b"].id)]["messages"].endswith("访客: 发票怎么开？\n")


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
@pytest.mark.parametrize("content", [True, False])
def test_export_inline_on_both_databases(db_api, fmt, content):
    convs = seed(db_api)
    started = db_api.post("/api/v1/history/exports", json={
        "filters": {"ended_from": "2026-11-01"}, "format": fmt, "with_content": content})
    assert started.status_code == 202, started.get_json()
    export = db_api.get(f"/api/v1/history/exports/{started.get_json()['id']}").get_json()
    assert export["status"] == "done" and export["done"] == 2 and export["progress"] == 1.0
    assert export["download"] == f"/api/v1/history/exports/{export['id']}/file"
    check_file(db_api, export, convs, fmt, content)


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_export_on_the_embedded_worker_thread(tmp_path, fmt):
    app = make_app(tmp_path, JOBS_INLINE=False)
    try:
        with app.app_context():
            api = ApiClient.registered(app)
            convs = seed(api)
            started = api.post("/api/v1/history/exports", json={
                "format": fmt, "with_content": True})
            assert started.status_code == 202
            assert app.extensions["meiqia.jobs"].join()
            export = api.get(f"/api/v1/history/exports/{started.get_json()['id']}").get_json()
            assert export["status"] == "done"
            job = JobRecord.get_by_id(ExportJob.get_by_id(export["id"]).job_id)
            assert job.status == "finished" and job.progress == 1.0
            check_file(api, export, convs, fmt, True)
    finally:
        close_app(app)


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_export_on_an_rq_worker(tmp_path, redis_url, redis_prefix, fmt):
    import redis
    from rq import SimpleWorker

    app = make_app(tmp_path, REDIS_URL=redis_url, REDIS_PREFIX=redis_prefix, JOBS_INLINE=False)
    try:
        with app.app_context():
            api = ApiClient.registered(app)
            convs = seed(api)
            started = api.post("/api/v1/history/exports", json={
                "format": fmt, "with_content": True}).get_json()
            assert started["status"] == "queued" and started["download"] is None
            assert api.get(f"/api/v1/history/exports/{started['id']}/file").status_code == 404
            connection = redis.Redis.from_url(redis_url)
            SimpleWorker([app.extensions["meiqia.jobs"].name],
                         connection=connection).work(burst=True)
            connection.close()
            export = api.get(f"/api/v1/history/exports/{started['id']}").get_json()
            assert export["status"] == "done" and export["progress"] == 1.0
            check_file(api, export, convs, fmt, True)
    finally:
        close_app(app)


def test_only_the_requester_and_admins_see_an_export(api):
    li = api.new_agent(email="li@example.com", name="李客服", scope="self")
    zhao = api.new_agent(email="zhao@example.com", name="赵客服", scope="self")
    seed(api, li_id=li.agent["id"])
    mine = li.post("/api/v1/history/exports", json={"format": "csv"}).get_json()
    assert mine["total"] == 1  # his scope: only 李四's conversation
    rows = read_export(li, mine["id"], "csv")
    assert [r[1] for r in rows[1:]] == ["李四"]
    url = f"/api/v1/history/exports/{mine['id']}"
    for method in ("get", "delete"):
        assert getattr(zhao, method)(url).status_code == 404
    assert zhao.get(url + "/file").status_code == 404
    assert zhao.get("/api/v1/history/exports").get_json() == []
    assert [e["id"] for e in api.get("/api/v1/history/exports").get_json()] == [mine["id"]]
    assert len(read_export(api, mine["id"], "csv")) == 2  # admins may
    assert li.delete(url).status_code == 200
    assert li.get(url).status_code == 404 and ExportJob.select().count() == 0


def test_delete_removes_the_file(api):
    seed(api)
    export = api.post("/api/v1/history/exports", json={"format": "xlsx"}).get_json()
    path = api.app.instance_path + "/exports/" + ExportJob.get_by_id(export["id"]).file_name
    with open(path, "rb") as fh:
        assert fh.read(2) == b"PK"
    assert api.delete(f"/api/v1/history/exports/{export['id']}").status_code == 200
    import os

    assert not os.path.exists(path)


@pytest.mark.parametrize(("body", "field", "words"), [
    ({"format": "pdf"}, "format", "csv"),
    ({"filters": {"rating": "great"}}, "filters.rating", "good"),  # its JSON path
    ({"filters": {"customer_name": "没有这个人"}}, "filters", "no conversation"),
    ({"with_content": "yes"}, "with_content", "boolean"),
])
def test_bad_requests_are_refused_and_leave_nothing(api, body, field, words):
    seed(api)
    response = api.post("/api/v1/history/exports", json=body)
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["field"] == field and words in error["message"], error
    assert ExportJob.select().count() == 0


def test_more_than_20000_is_refused_before_the_job(api):
    import peewee

    from meiqia.db import database

    team, admin = api.team["id"], api.agent["id"]
    with database.atomic():
        for rows in peewee.chunked(({"team": team, "uid": f"bulk-{i}", "name": f"访客{i}"}
                                    for i in range(20_001)), 2000):
            Visitor.insert_many(rows).execute()
        visitors = [v.id for v in Visitor.select(Visitor.id).where(Visitor.team == team)]
        for rows in peewee.chunked(({"team": team, "visitor": v, "handler": admin,
                                     "status": "ended", "created_at": T0, "ended_at": T0}
                                    for v in visitors), 2000):
            Conversation.insert_many(rows).execute()
    response = api.post("/api/v1/history/exports", json={"format": "csv"})
    assert response.status_code == 422
    message = response.get_json()["error"]["message"]
    assert "20001" in message.replace(",", "") and "narrow the time range" in message
    assert ExportJob.select().count() == 0 and JobRecord.select().count() == 0
    narrowed = api.post("/api/v1/history/exports", json={
        "format": "csv", "filters": {"customer_name": "访客1999"}})
    assert narrowed.status_code == 202 and narrowed.get_json()["total"] == 11


def test_a_long_transcript_is_whole_in_csv_and_says_it_was_cut_in_xlsx(db_api):
    import re

    from meiqia.services.exports import XLSX_CELL_CHARS

    team = db_api.team["id"]
    long = make_conversation(team, make_visitor(team, name="话多的客户"),
                             handler=db_api.agent["id"], ended_at=T0,
                             messages=[("visitor", f"第{n}段：" + "退款" * 2500, n)
                                       for n in range(8)])  # 40,000+ characters
    cells = {}
    for fmt in ("csv", "xlsx"):
        export = db_api.post("/api/v1/history/exports", json={
            "format": fmt, "with_content": True}).get_json()
        assert export["status"] == "done", export
        rows = read_export(db_api, export["id"], fmt)
        cells[fmt] = dict(zip(KEYS + ["messages"], rows[1], strict=True))
        assert cells[fmt]["id"] == str(long.id)
    whole, cut = cells["csv"]["messages"], cells["xlsx"]["messages"]
    assert whole.count("访客: 第") == 8 and whole.endswith("退款\n")  # CSV: all of it
    assert len(whole) > XLSX_CELL_CHARS >= len(cut)
    note = re.search(r"…（已截断，还有 ([\d,]+) 个字符）$", cut)  # in the agent's language
    assert note, cut[-80:]
    kept = len(cut) - len(note.group(0))
    assert cut[:kept] == whole[:kept] and kept > 32_000
    assert int(note.group(1).replace(",", "")) == len(whole) - kept


def test_a_did_you_mean_keeps_its_questions_in_the_export_and_the_tickets_transcript(api):
    """The bot's "did you mean" holds the questions it offered in its payload; an
    export and a ticket's transcript read by someone who was not there show them."""
    from meiqia.models import Message
    from meiqia.models import Ticket

    team = api.team["id"]
    chat = make_conversation(team, make_visitor(team, name="问问题的客户"),
                             handler=api.agent["id"], ended_at=T0,
                             messages=[("visitor", "我要投诉，快递丢件了", 0),
                                       ("bot", "您是不是想问：", 2)])
    Message.update(payload={"bot": "suggest", "candidates": [
        {"entry_id": "complain", "question": "我要投诉"},
        {"entry_id": "lost", "question": "快递丢了怎么办？"}]}).where(
        Message.conversation == chat.id, Message.sender_kind == "bot").execute()
    offered = "机器人: 您是不是想问：\n· 我要投诉\n· 快递丢了怎么办？"

    export = api.post("/api/v1/history/exports", json={
        "format": "csv", "with_content": True}).get_json()
    assert export["status"] == "done", export
    rows = read_export(api, export["id"], "csv")
    assert offered in dict(zip(KEYS + ["messages"], rows[1], strict=True))["messages"]

    ticket = Ticket.create(team=team, conversation=chat.id, source="after_end",
                           content="请回电", created_at=T0)
    shown = api.get(f"/api/v1/tickets/{ticket.id}").get_json()
    assert [m["body"] for m in shown["transcript"]] == [
        "我要投诉，快递丢件了", "您是不是想问：\n· 我要投诉\n· 快递丢了怎么办？"]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def queued_app(request, tmp_path, redis_url, redis_prefix):
    """The app with exports queued on rq (Redis), run only when the test says so,
    on SQLite and on PostgreSQL."""
    from tests.conftest import truncate_all

    extra = {}
    if request.param == "postgres":
        extra["DATABASE_URL"] = request.getfixturevalue("pg_database_url")
    app = make_app(tmp_path, REDIS_URL=redis_url, REDIS_PREFIX=redis_prefix,
                   JOBS_INLINE=False, **extra)
    if extra:
        truncate_all(extra["DATABASE_URL"])
    try:
        with app.app_context():
            yield app
    finally:
        close_app(app)


def test_an_export_holds_what_was_counted_when_it_was_requested(queued_app, redis_url):
    """Between the request and the job, a conversation of the filter ends and an
    older one is edited into the filter: the file has exactly the counted rows."""
    import redis
    from rq import SimpleWorker

    from meiqia.models.base import utcnow

    api = ApiClient.registered(queued_app)
    team, admin = api.team["id"], api.agent["id"]

    def conv(summary, **fields):
        return make_conversation(team, make_visitor(team, name=f"客户{summary}"),
                                 handler=admin, summary=summary, messages=[
                                     ("visitor", "退款", 0)], **fields)

    still_open = conv("退款咨询", status="open")  # the lowest id: first in the file if let in
    first = conv("退款", ended_at=T0 - datetime.timedelta(days=2))
    second = conv("退款进度", ended_at=T0 - datetime.timedelta(days=1))
    later_edited = conv("发票", ended_at=T0)
    started = api.post("/api/v1/history/exports", json={
        "format": "csv", "filters": {"summary": "退款"}}).get_json()
    assert started["status"] == "queued" and started["total"] == 2

    Conversation.update(status="ended", ended_at=utcnow()).where(
        Conversation.id == still_open.id).execute()
    Conversation.update(summary="发票，也问了退款").where(
        Conversation.id == later_edited.id).execute()
    assert api.get("/api/v1/history?summary=退款").get_json()["total"] == 4  # the list moved on

    connection = redis.Redis.from_url(redis_url)
    SimpleWorker([queued_app.extensions["meiqia.jobs"].name],
                 connection=connection).work(burst=True)
    connection.close()
    export = api.get(f"/api/v1/history/exports/{started['id']}").get_json()
    assert export["status"] == "done" and export["done"] == export["total"] == 2
    rows = read_export(api, export["id"], "csv")
    assert {row[0] for row in rows[1:]} == {str(first.id), str(second.id)}


def test_a_failed_exports_reason_is_shown_in_the_readers_language(queued_app):
    """A worker killed during the export's last attempt leaves its job "started" and
    silent (what tests/reliability/test_export_faults.py makes for real): the next
    look reaps it, and the reason reads in the page's language, English kept."""
    from meiqia.jobs import ABANDONED
    from meiqia.models.base import utcnow

    api = ApiClient.registered(queued_app)
    team, admin = api.team["id"], api.agent["id"]
    make_conversation(team, make_visitor(team), handler=admin, ended_at=T0,
                      messages=[("visitor", "退款", 0)])
    started = api.post("/api/v1/history/exports", json={"format": "csv"}).get_json()
    job_id = ExportJob.get_by_id(started["id"]).job_id
    record = JobRecord.get_by_id(job_id)
    assert record.max_attempts == 3  # exports are retried (exports.RETRY)
    long_ago = utcnow() - datetime.timedelta(minutes=5)
    JobRecord.update(status="started", attempts=record.max_attempts, started_at=long_ago,
                     heartbeat_at=long_ago).where(JobRecord.id == job_id).execute()
    ExportJob.update(status="running").where(ExportJob.id == started["id"]).execute()

    zh = api.get(f"/api/v1/history/exports/{started['id']}",
                 headers={"X-Meiqia-Lang": "zh-CN"}).get_json()
    assert zh["status"] == "failed"
    assert zh["error"] == "运行这个任务的进程中途停止了（被终止或崩溃）"
    assert zh["error_en"] == ABANDONED
    listed = api.get("/api/v1/history/exports", headers={"X-Meiqia-Lang": "zh-CN"}).get_json()
    assert listed[0]["error"] == zh["error"]
    en = api.get(f"/api/v1/history/exports/{started['id']}",
                 headers={"X-Meiqia-Lang": "en"}).get_json()
    assert en["error"] == ABANDONED and "error_en" not in en


def test_an_english_agent_reads_his_export_in_english_in_the_teams_zone(api):
    """Headers, coded values, sender names and the unnamed visitor in the language of
    the agent who asked (his setting), every time in the team's zone, named above it."""
    team = api.team["id"]
    assert api.patch("/api/v1/team", json={"timezone": "America/New_York"}).status_code == 200
    assert api.get("/lang/en").status_code == 302  # his setting: English
    nameless = make_visitor(team, name="", source="search_engine", platform="mobile_web",
                            device="Desktop", region="Nanjing")
    convo = make_conversation(team, nameless, handler=api.agent["id"], ended_at=T0,
                              rating="bad", messages=[("visitor", "hello", 0),
                                                      ("bot", "Did you mean:", 5),
                                                      ("agent", "Hi there", 30)])
    started = api.post("/api/v1/history/exports", json={"format": "xlsx",
                                                        "with_content": True})
    assert started.status_code == 202, started.get_json()
    rows = read_export(api, started.get_json()["id"], "xlsx")
    assert rows[0][:7] == ["ID", "Customer", "IP", "Device", "Started (America/New_York)",
                           "Ended (America/New_York)", "Duration (s)"]
    assert rows[0][-1] == "Messages (America/New_York)"
    row = dict(zip(KEYS + ["messages"], rows[1], strict=True))
    assert row["id"] == str(convo.id)
    assert row["visitor"] == f"Visitor {nameless.id}"
    assert (row["rating"], row["source"], row["platform"]) == ("Bad", "Search engine",
                                                               "Mobile web")
    assert row["channel"] == "Web"  # the channel's name in his language, not its slug
    assert row["ended_at"] == "2026-11-19 23:00:00"  # 04:00 UTC is 23:00 the day before
    assert "[2026-11-19 22:58:35] Bot: Did you mean:" in row["messages"]
    assert "] Visitor: hello" in row["messages"]
    # No Chinese but what people typed (the agent's name, 王管理).
    cells = rows[0] + [value.replace("王管理", "") for value in rows[1]]
    assert not [c for c in cells if any("\u3400" <= ch <= "\u9fff" for ch in c)], cells


def test_an_exports_names_are_in_the_readers_language(api):
    """What a person reads of an export besides its cells: the job's name (GET
    /jobs/<id>, as the reindex job's), the file's name when downloaded (the
    reader's language) and the XLSX sheet's (the language of the file, the asker's)."""
    from urllib.parse import unquote

    team = api.team["id"]
    make_conversation(team, make_visitor(team), handler=api.agent["id"], ended_at=T0,
                      messages=[("visitor", "退款", 0)])
    started = api.post("/api/v1/history/exports", json={"format": "xlsx"}).get_json()
    number = started["id"]
    job_id = ExportJob.get_by_id(number).job_id
    zh = api.get(f"/api/v1/jobs/{job_id}", headers={"X-Meiqia-Lang": "zh-CN"}).get_json()
    assert (zh["name"], zh["name_en"]) == (f"历史记录导出 {number}", f"history export {number}")
    en = api.get(f"/api/v1/jobs/{job_id}", headers={"X-Meiqia-Lang": "en"}).get_json()
    assert en["name"] == f"history export {number}" and "name_en" not in en

    url = f"/api/v1/history/exports/{number}/file"
    for lang, name in (("zh-CN", f"历史记录-{number}.xlsx"), ("en", f"history-{number}.xlsx")):
        response = api.get(url, headers={"X-Meiqia-Lang": lang})
        disposition = response.headers["Content-Disposition"]
        data = response.get_data()
        response.close()
        said = disposition.split("filename*=UTF-8''")[-1] if "filename*=" in disposition \
            else disposition.split("filename=")[-1]
        assert unquote(said.strip('"')) == name, disposition
    from openpyxl import load_workbook

    assert load_workbook(io.BytesIO(data), read_only=True).sheetnames == ["历史记录"]
    assert api.get("/lang/en").status_code == 302  # his setting: English
    again = api.post("/api/v1/history/exports", json={"format": "xlsx"}).get_json()
    response = api.get(f"/api/v1/history/exports/{again['id']}/file")
    data = response.get_data()
    response.close()
    assert load_workbook(io.BytesIO(data), read_only=True).sheetnames == ["History"]


def test_a_file_made_under_a_wider_scope_is_refused_once_his_scope_is_narrowed(db_api):
    """Found from outside: an agent exported under scope ``all``, the admin set him to
    ``self``, and the file (other agents' customers, their transcripts) still
    downloaded while his history showed nothing (docs/security.md §1, §12). On SQLite
    and PostgreSQL."""
    api = db_api
    li = api.new_agent(email="li@example.com", name="李客服", scope="self")
    seed(api)  # both conversations are the admin's
    li_id = li.agent["id"]
    assert api.patch(f"/api/v1/agents/{li_id}", json={"scope": "all"}).status_code == 200
    wide = li.post("/api/v1/history/exports",
                   json={"format": "csv", "filters": {}, "with_content": True}).get_json()
    assert wide["total"] == 2 and len(read_export(li, wide["id"], "csv")) == 3
    assert api.patch(f"/api/v1/agents/{li_id}", json={"scope": "self"}).status_code == 200
    assert li.get("/api/v1/history").get_json()["items"] == []
    url = f"/api/v1/history/exports/{wide['id']}"
    refused = li.get(url + "/file", headers={"X-Meiqia-Lang": "zh-CN"})
    assert refused.status_code == 403
    assert refused.get_json()["error"]["message"] == \
        "此导出是在比您现在更大的权限范围下生成的：请重新导出"
    english = li.get(url + "/file", headers={"X-Meiqia-Lang": "en"}).get_json()["error"]
    assert english["message"] == \
        "this export was made under a wider scope than yours now: make it again"
    # The list and the export itself say so, with no download link.
    (listed,) = li.get("/api/v1/history/exports", headers={"X-Meiqia-Lang": "en"}).get_json()
    assert listed["download"] is None and listed["refused"] == english["message"]
    assert li.get(url).get_json()["download"] is None
    # The admin (who sees everything) still downloads it. A custom scope naming the
    # admin is still narrower than "all" (the team's pool, agents added later).
    assert len(read_export(api, wide["id"], "csv")) == 3
    admin_id = api.agent["id"]
    assert api.patch(f"/api/v1/agents/{li_id}", json={
        "scope": "custom", "scope_agents": [admin_id]}).status_code == 200
    assert li.get(url + "/file").status_code == 403
    custom = li.post("/api/v1/history/exports", json={"format": "csv"}).get_json()
    assert len(read_export(li, custom["id"], "csv")) == 3
    # Custom lists compared: a group instead of the admin refuses it, the admin and
    # the group (wider) cover it.
    group = api.post("/api/v1/groups", json={"name": "售后"}).get_json()
    assert api.patch(f"/api/v1/agents/{li_id}", json={
        "scope_agents": [], "scope_groups": [group["id"]]}).status_code == 200
    assert li.get(f"/api/v1/history/exports/{custom['id']}/file").status_code == 403
    assert api.patch(f"/api/v1/agents/{li_id}", json={
        "scope_agents": [admin_id], "scope_groups": [group["id"]]}).status_code == 200
    assert len(read_export(li, custom["id"], "csv")) == 3
    assert li.get(url + "/file").status_code == 403
    # Widened again: his.
    assert api.patch(f"/api/v1/agents/{li_id}", json={"scope": "all"}).status_code == 200
    assert len(read_export(li, wide["id"], "csv")) == 3
    assert li.get(url).get_json()["refused"] is None
