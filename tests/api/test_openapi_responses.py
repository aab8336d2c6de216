"""Every GET of the API answers what the OpenAPI document says it answers.

A team is seeded (an entry, a token, a group, a visitor's conversation and
ticket with a reply, an export, a job), then every GET operation of the document
is called with real ids and its answer checked against the document: the media
type is one it lists for the status, and a JSON body validates against its
schema. A route that returns a list while its document says object (or a file
type the document does not list) fails here, naming it. Views annotated
``-> list`` cannot even be declared as objects (``web.api._response_schema``).
"""

from __future__ import annotations

import re

import jsonschema_rs
import pytest

from meiqia.models import Conversation
from meiqia.web.api import route
from tests.api.test_conversations import start
from tests.api.test_exports import seed as seed_history
from tests.api.test_tickets import leave

#: The GETs that answered a list while documented as an object, and the files that
#: were documented as JSON: each must be called (with a 200) and match.
MUST_MATCH = {
    "/api/v1/channels", "/api/v1/history/exports", "/api/v1/tokens", "/api/v1/ticket-sinks",
    "/api/v1/ticket-sinks/deliveries", "/api/v1/ticket-sinks/types",
    "/api/v1/visitors/{visitor_id}/conversations", "/api/v1/visitors/{visitor_id}/tickets",
    "/api/v1/widget/tickets", "/api/v1/knowledge/export",
    "/api/v1/history/exports/{export_id}/file",
}


def _seed(api) -> tuple[dict[str, object], dict[str, str]]:
    """Ids for the path parameters, and the visitor's headers."""
    entry = api.post("/api/v1/knowledge", json={"key": "k1", "questions": ["发货时间"],
                                                "answer": "48 小时内"}).get_json()
    api.post("/api/v1/tokens", json={"name": "ci", "scope": "read"})
    group = api.post("/api/v1/groups", json={"name": "售后"}).get_json()
    client, token, cid, _ = start(api.app, api.team["id"])
    ticket = leave(client, token, conversation_id=cid).get_json()
    api.post(f"/api/v1/tickets/{ticket['id']}/comments", json={"body": "已处理"})
    seed_history(api)  # ended conversations to export
    export = api.post("/api/v1/history/exports", json={"format": "xlsx", "filters": {
        "ended_from": "2026-11-01"}})
    assert export.status_code == 202, export.get_json()
    export = export.get_json()
    job = api.post("/api/v1/knowledge/reindex").get_json()
    channels = api.get("/api/v1/channels").get_json()
    ids = {"agent_id": api.agent["id"], "group_id": group["id"], "conversation_id": cid,
           "visitor_id": Conversation.get_by_id(cid).visitor_id,
           "ticket_id": ticket["id"], "entry_id": entry["id"], "export_id": export["id"],
           "job_id": job["job_id"], "slug": channels[0]["type"] if channels else None}
    return ids, {"X-Visitor-Token": token}


def _queries(path: str) -> list[str]:
    if path == "/api/v1/knowledge/export":
        return ["?format=yaml", "?format=csv", "?format=xlsx"]
    return [""]


def test_every_get_answers_what_the_document_says(api):
    ids, visitor = _seed(api)
    doc = api.get("/api/v1/openapi.json").get_json()
    called, problems = set(), []
    for path, item in doc["paths"].items():
        operation = item.get("get")
        if operation is None:
            continue
        names = re.findall(r"\{(\w+)\}", path)
        if any(ids.get(name) is None for name in names):
            continue  # nothing of the kind seeded (an attachment, an iframe plugin)
        url = path
        for name in names:
            url = url.replace("{" + name + "}", str(ids[name]))
        headers = visitor if operation["security"] == [{"visitor": []}] else {}
        for query in _queries(path):
            response = api.get(url + query, headers=headers)
            documented = operation["responses"].get(str(response.status_code)) or \
                operation["responses"].get(f"{str(response.status_code)[0]}XX")
            where = f"GET {path}{query} -> {response.status_code}"
            if documented is None:
                problems.append(f"{where}: status not documented")
                continue
            media = response.mimetype
            if media not in documented["content"]:
                problems.append(f"{where}: {media} not among {sorted(documented['content'])}")
                continue
            if media == "application/json":
                schema = documented["content"][media]["schema"]
                try:
                    jsonschema_rs.validator_for({**schema, "components": doc["components"]}
                                                ).validate(response.get_json())
                except jsonschema_rs.ValidationError as exc:
                    problems.append(f"{where}: {exc.message} (document: {schema.get('type')})")
            if response.status_code == 200:
                called.add(path)
            response.close()
    assert not problems, "\n".join(problems)
    assert MUST_MATCH <= called, sorted(MUST_MATCH - called)
    assert len(called) > 35, sorted(called)


def test_the_export_answers_the_media_type_of_its_format(api):
    api.post("/api/v1/knowledge", json={"key": "k1", "questions": ["发货时间"], "answer": "48 小时内"})
    types = {}
    for fmt in ("yaml", "csv", "xlsx"):
        response = api.get(f"/api/v1/knowledge/export?format={fmt}")
        types[fmt] = response.mimetype
        response.close()
    assert types == {"yaml": "application/yaml", "csv": "text/csv", "xlsx":
                     "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}


def test_a_list_view_cannot_be_declared_an_object():
    def listing() -> list:
        return []

    with pytest.raises(ValueError, match="returns list but its response is declared as object"):
        route("/test-only-listing", summary="x", response={"type": "object"})(listing)
