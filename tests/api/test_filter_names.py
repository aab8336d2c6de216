"""Unknown filter names are refused, never ignored (outside check hapi, defect 1).

A misspelled export filter (``ended_form``) used to be dropped silently, and the
export held the whole history; so did ``{"agent": …, "phone_number": …}``. Every
place that takes filters (the export's ``filters`` object, the history list's and
the ticket list's query) now answers 422 naming the unknown names and the
accepted ones, in the caller's language; the OpenAPI document says the same.
"""

from __future__ import annotations

import datetime

from meiqia.models import ExportJob
from meiqia.services import history
from tests.factories import make_conversation
from tests.factories import make_visitor

ZH = {"X-Meiqia-Lang": "zh-CN"}


def test_an_export_with_an_unknown_filter_is_refused_in_the_callers_language(db_api):
    api = db_api
    team = api.team["id"]
    make_conversation(team, make_visitor(team, name="张三"), handler=api.agent["id"],
                      ended_at=datetime.datetime(2026, 11, 20, 4, 0),
                      messages=[("visitor", "退款还没到账", 0)])
    typo = api.post("/api/v1/history/exports", headers=ZH,
                    json={"format": "csv", "filters": {"ended_form": "2030-01-01"}})
    assert typo.status_code == 422, typo.get_json()
    error = typo.get_json()["error"]
    assert error["code"] == "invalid" and error["field"] == "filters.ended_form", error
    assert error["message"].startswith("筛选条件：未知的筛选条件 ended_form"), error
    assert "可用的筛选条件" in error["message"] and "ended_from" in error["message"], error
    assert "ended_form" in error["message_en"] and "ended_from" in error["message_en"]

    two = api.post("/api/v1/history/exports", headers=ZH, json={
        "format": "csv", "filters": {"agent": "小王", "phone_number": "139", "phone": "139"}})
    assert two.status_code == 422, two.get_json()
    error = two.get_json()["error"]
    assert "agent、phone_number" in error["message"], error
    assert error["field"] == "filters.agent", error
    english = api.post("/api/v1/history/exports",
                       json={"format": "csv", "filters": {"Agent_Name": "小王"}})
    assert english.get_json()["error"]["message"] == (
        "filters: unknown filter Agent_Name (accepted: " + ", ".join(history.FILTERS)
        + ")")
    assert ExportJob.select().count() == 0  # nothing was exported

    # Spelt right, the same filters work as before.
    none = api.post("/api/v1/history/exports",
                    json={"format": "csv", "filters": {"ended_from": "2030-01-01"}})
    assert none.status_code == 422 and none.get_json()["error"]["field"] == "filters"
    some = api.post("/api/v1/history/exports",
                    json={"format": "csv", "filters": {"ended_from": "2026-11-01",
                                                       "customer_name": "张", "lead": None}})
    assert some.status_code == 202, some.get_json()
    assert some.get_json()["total"] == 1


def test_the_history_and_ticket_lists_refuse_unknown_query_names(api):
    typo = api.get("/api/v1/history?ended_form=2030-01-01&page=1", headers=ZH)
    assert typo.status_code == 422, typo.get_json()
    error = typo.get_json()["error"]
    assert error["field"] == "ended_form", error
    assert error["message"].startswith("未知的参数 ended_form（可用的参数："), error
    assert "ended_from" in error["message"] and "per_page" in error["message"], error
    # the names every request may carry (the language) are no filter to refuse
    assert api.get("/api/v1/history?ended_from=2026-01-01&page=1&per_page=20&lang=zh-CN"
                   ).status_code == 200
    tickets = api.get("/api/v1/tickets?stauts=open&assigne_id=none", headers=ZH)
    assert tickets.status_code == 422, tickets.get_json()
    error = tickets.get_json()["error"]
    assert error["message"].startswith("未知的参数 stauts、assigne_id（可用的参数："), error
    assert "status" in error["message"] and "assignee_id" in error["message"]
    assert api.get("/api/v1/tickets?status=open&assignee_id=none&mine=false&lang=en"
                   ).status_code == 200


def test_the_openapi_document_describes_every_filter_and_no_other(api):
    doc = api.get("/api/v1/openapi.json").get_json()
    body = doc["paths"]["/api/v1/history/exports"]["post"]["requestBody"]["content"][
        "application/json"]["schema"]
    filters = body["properties"]["filters"]
    assert filters["type"] == "object" and filters["additionalProperties"] is False
    assert sorted(filters["properties"]) == sorted(history.FILTERS)
    assert filters["properties"]["source"]["enum"][:3] == ["direct", "link", "search_engine"]
    for path in ("/api/v1/history", "/api/v1/tickets"):
        described = doc["paths"][path]["get"].get("description", "")
        assert "does not take" in described and "422" in described, (path, described)
