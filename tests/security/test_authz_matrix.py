"""The authorisation matrix (tests/security/matrix.py) applied to every route.

One world: an admin with an open conversation (a visitor message with a secret
word, an internal note, an attachment), an ended conversation in the history, a
ticket, an export and its job, a personal quick reply and an API token; an
agent with ``scope=self`` who owns none of it; a second visitor.
"""

from __future__ import annotations

import datetime
import json
import re
from typing import Any

import pytest

from meiqia.models import ExportJob
from meiqia.web.api import OPERATIONS
from meiqia.web.api.openapi import SECURITY
from tests.api.test_conversations import start
from tests.factories import make_conversation
from tests.factories import make_visitor
from tests.helpers import ApiClient
from tests.helpers import new_client_id
from tests.security.matrix import BODIES
from tests.security.matrix import ROUTES

SECRET = "机密词ALPHA"
NOTE = "内部备注OMEGA"
PAGE_KINDS = {"public", "page", "admin-page", "form", "ws"}


def app_routes(app: Any) -> set[tuple[str, str]]:
    return {(method, rule.rule) for rule in app.url_map.iter_rules()
            if rule.endpoint != "static"
            for method in rule.methods - {"HEAD", "OPTIONS"}}


@pytest.fixture
def world(api: ApiClient) -> dict[str, Any]:
    app = api.app
    admin_id = api.agent["id"]
    api.patch("/api/v1/team", json={"settings": {"bot_enabled": False}})
    api.patch(f"/api/v1/agents/{admin_id}", json={"status": "online", "max_concurrent": 5})
    api.workspace_open()
    li = api.new_agent(email="li@example.com", scope="self")
    client, token, cid, _ = start(app, api.team["id"], name="访客甲")
    vheaders = {"X-Visitor-Token": token}
    assert client.post(f"/api/v1/widget/conversations/{cid}/messages", headers=vheaders,
                       json={"client_msg_id": new_client_id(), "body": f"我的{SECRET}"}).status_code == 201
    assert api.post(f"/api/v1/conversations/{cid}/messages",
                    json={"client_msg_id": new_client_id(), "body": NOTE, "mode": "internal"}).status_code == 201
    upload = client.post(f"/api/v1/widget/conversations/{cid}/uploads?kind=file",
                         headers=vheaders, data={"file": (_file(b"hello"), "a.txt")},
                         content_type="multipart/form-data")
    assert upload.status_code == 201, upload.get_json()
    ticket = client.post("/api/v1/widget/tickets", headers=vheaders,
                         json={"content": f"留言{SECRET}", "phone": "13800138000"})
    assert ticket.status_code == 201, ticket.get_json()
    ticket = ticket.get_json()
    assert api.patch(f"/api/v1/tickets/{ticket['id']}",
                     json={"assignee_id": admin_id}).status_code == 200
    team = api.team["id"]
    old_visitor = make_visitor(team, name="老客户")
    ended = make_conversation(team, old_visitor, handler=admin_id,
                              ended_at=datetime.datetime(2026, 11, 20, 4, 0),
                              messages=[("visitor", f"历史{SECRET}", 0), ("agent", "好的", 10),
                                        ("agent", NOTE, 20, "internal")])
    export = api.post("/api/v1/history/exports", json={"format": "csv"}).get_json()
    reply = api.post("/api/v1/quick-replies", json={"keyword": "私人", "body": "我的话术"})
    tok = api.post("/api/v1/tokens", json={"name": "集成", "scope": "admin"}).get_json()
    other_client, other_token, other_cid, _ = start(app, api.team["id"], name="访客乙")
    return {
        "api": api, "li": li, "visitor": client, "token": token, "cid": cid,
        "ended": ended.id, "ticket": ticket["id"], "key": upload.get_json()["key"],
        "export": export["id"], "job": ExportJob.get_by_id(export["id"]).job_id,
        "reply": reply.get_json()["id"], "token_id": tok["id"], "admin": admin_id,
        "visitor_id": _visitor_id(api, cid),
        "other": other_client, "other_token": other_token, "other_cid": other_cid,
    }


def _file(data: bytes) -> Any:
    import io

    return io.BytesIO(data)


def _visitor_id(api: ApiClient, cid: int) -> int:
    from meiqia.models import Conversation

    return Conversation.get_by_id(cid).visitor_id


def fill(rule: str, world: dict[str, Any]) -> str:
    """The rule with the world's ids in it (the admin's things)."""
    values = {"conversation_id": world["cid"], "ticket_id": world["ticket"],
              "export_id": world["export"], "job_id": world["job"], "key": world["key"],
              "visitor_id": world["visitor_id"], "token_id": world["token_id"],
              "reply_id": world["reply"], "agent_id": world["admin"], "group_id": 1,
              "entry_id": 1, "sink_id": 1, "delivery_id": 1, "plugin_id": 1, "code": "en",
              "name": "default_routing", "slug": "web", "token": "no-such-link",
              "team_key": world["api"].team["id"]}
    return re.sub(r"<(?:\w+:)?(\w+)>", lambda m: str(values[m.group(1)]), rule)


def body_for(key: tuple[str, str], world: dict[str, Any]) -> dict | None:
    body = BODIES.get(key)
    if body is None:
        return None
    return {k: (world["li"].agent["id"] if v == "{li}" else v) for k, v in body.items()}


def text(response: Any) -> str:
    """A JSON response as readable text (Flask escapes non-ASCII as \\uXXXX)."""
    return json.dumps(response.get_json(), ensure_ascii=False)


def call(client: Any, method: str, url: str, headers: dict | None = None,
         json: Any = None) -> Any:
    response = client.open(url, method=method, headers=headers or {}, json=json)
    response.close()
    return response


# --- the matrix covers every route ----------------------------------------------------


def test_every_route_has_a_matrix_entry(app):
    missing = sorted(app_routes(app) - set(ROUTES))
    assert not missing, f"routes without an authorisation decision in matrix.py: {missing}"


def test_api_auth_kinds_match_the_openapi_document(app, client):
    declared = {(op.method.upper(), "/api/v1" + op.rule): op.auth for op in OPERATIONS}
    for key, (kind, _) in ROUTES.items():
        if key in declared:
            assert declared[key] == kind, (key, declared[key], kind)
    spec = client.get("/api/v1/openapi.json").get_json()
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            rule = re.sub(r"\{(\w+)\}", r"<\1>", path)
            rule = rule if rule.startswith("/api/v1") else "/api/v1" + rule
            known = {(m, re.sub(r"<\w+:(\w+)>", r"<\1>", r)): v for (m, r), v in ROUTES.items()}
            assert (method.upper(), rule) in known, f"{method} {path} not in the matrix"
            kind = known[(method.upper(), rule)][0]
            assert operation["security"] == SECURITY[kind], (method, path)


# --- anonymous ----------------------------------------------------------------------------


def test_anonymous_gets_401_or_the_login_page(world):
    app = world["api"].app
    for (method, rule), (kind, _) in sorted(ROUTES.items()):
        if (method, rule) not in app_routes(app) or kind in {"none", "public", "ws"}:
            continue
        response = call(app.test_client(), method, fill(rule, world))
        where = f"{method} {rule}"
        if kind in {"page", "admin-page"}:
            assert response.status_code == 302, where
            assert "/login" in response.headers["Location"], where
        elif kind == "form":
            assert response.status_code in {401, 403, 422}, where  # no CSRF token: refused
        else:
            assert response.status_code == 401, (where, response.status_code)
            assert response.get_json()["error"]["code"] == "unauthorized", where


def test_a_visitor_token_is_no_agent_credential(world):
    app = world["api"].app
    headers = {"X-Visitor-Token": world["token"]}
    for (method, rule), (kind, _) in sorted(ROUTES.items()):
        if (method, rule) in app_routes(app) and kind in {"agent", "admin"}:
            response = call(app.test_client(), method, fill(rule, world), headers)
            assert response.status_code == 401, (method, rule, response.status_code)


def test_an_agent_session_is_no_visitor_credential(world):
    li = world["li"]
    for (method, rule), (kind, _) in sorted(ROUTES.items()):
        if (method, rule) in app_routes(li.app) and kind == "visitor":
            response = call(li.client, method, fill(rule, world),
                            {"X-CSRF-Token": li.csrf})
            assert response.status_code == 401, (method, rule, response.status_code)


# --- an agent outside the scope, admin-only routes ------------------------------------


def test_agent_outside_the_scope_or_not_admin(world):
    li = world["li"]
    for (method, rule), (_kind, expected) in sorted(ROUTES.items()):
        if (method, rule) not in app_routes(li.app) or expected == "ok":
            continue
        response = call(li.client, method, fill(rule, world), {"X-CSRF-Token": li.csrf},
                        json=body_for((method, rule), world))
        where = f"{method} {rule}"
        if expected == "filtered":
            assert response.status_code == 200 and response.get_json() == [], where
        elif expected == "404":
            assert response.status_code == 404, (where, response.status_code)
        else:
            assert response.status_code in {403, 404}, (where, response.status_code)
    # and nothing was changed by any of it
    api = world["api"]
    messages = api.get(f"/api/v1/conversations/{world['cid']}/messages").get_json()["messages"]
    assert all(m["body"] != "越权" for m in messages)
    assert api.get(f"/api/v1/conversations/{world['cid']}").get_json()["status"] == "open"
    assert api.get(f"/api/v1/history/exports/{world['export']}").status_code == 200


def test_lists_and_search_show_nothing_outside_the_scope(world):
    li, api = world["li"], world["api"]
    hidden = {world["cid"], world["ended"]}
    lists = li.get("/api/v1/conversations").get_json()
    assert SECRET not in json.dumps(lists, ensure_ascii=False)
    assert NOTE not in json.dumps(lists, ensure_ascii=False)
    for bucket in lists.values():
        if isinstance(bucket, list):
            assert not hidden & {row.get("id") for row in bucket if isinstance(row, dict)}
    for query in ("", f"?content={SECRET}", "?content=OMEGA", "?customer_name=老客户"):
        found = li.get(f"/api/v1/history{query}")
        assert found.status_code == 200, (query, found.get_json())
        assert found.get_json()["total"] == 0 and found.get_json()["items"] == [], \
            (query, found.get_json())
        # the admin finds it with the same filter (so there was something to find)
        seen = api.get(f"/api/v1/history{query}").get_json()["items"]
        assert world["ended"] in [r["id"] for r in seen], query
    assert SECRET not in text(li.get("/api/v1/tickets"))
    assert li.get("/api/v1/history/exports").get_json() == []
    dashboard = li.get("/api/v1/dashboard")
    assert dashboard.status_code in {200, 422}


# --- visitors --------------------------------------------------------------------------


def test_a_visitor_cannot_reach_another_visitors_things(world):
    other = world["other"]
    headers = {"X-Visitor-Token": world["other_token"]}
    for (method, rule), (kind, _) in sorted(ROUTES.items()):
        if (method, rule) not in app_routes(other.application) or "<" not in rule:
            continue
        if kind not in {"visitor", "agent_or_visitor"}:
            continue
        response = call(other, method, fill(rule, world), headers,
                        json=body_for((method, rule), world))
        assert response.status_code == 404, (method, rule, response.status_code)
    listed = other.get("/api/v1/widget/tickets", headers=headers).get_json()
    assert listed == []
    by_query = other.get(f"/api/v1/attachments/{world['key']}?token={world['other_token']}")
    assert by_query.status_code == 404


def test_internal_notes_never_reach_a_visitor_payload(world):
    from meiqia.models import Ticket
    from meiqia.services import ticket_payload

    api, visitor, token, cid = world["api"], world["visitor"], world["token"], world["cid"]
    headers = {"X-Visitor-Token": token}
    api.post(f"/api/v1/tickets/{world['ticket']}/comments",
             json={"body": NOTE, "visibility": "internal"})
    api.post(f"/api/v1/tickets/{world['ticket']}/comments",
             json={"body": "公开回复", "visibility": "public"})
    payloads = [
        visitor.get(f"/api/v1/widget/conversations/{cid}/messages", headers=headers),
        visitor.post("/api/v1/widget/session", json={"team_id": api.team["id"],
                                                     "token": token}),
        visitor.get("/api/v1/widget/tickets", headers=headers),
        visitor.get(f"/api/v1/widget/tickets/{world['ticket']}", headers=headers),
    ]
    for response in payloads:
        assert response.status_code in {200, 201}
        assert NOTE not in text(response)
    assert "公开回复" in text(payloads[3])  # (the text is searchable: no escapes)
    ticket = Ticket.get_by_id(world["ticket"])
    for event in ("created", "updated"):
        sent = str(ticket_payload.payload_for(ticket, event, {}))
        assert NOTE not in sent and SECRET in sent  # the public side is there
    # the agent does see the note (so it was there to leak)
    assert NOTE in text(api.get(f"/api/v1/conversations/{cid}/messages"))


# --- CSRF ------------------------------------------------------------------------------


def test_every_cookie_authenticated_write_needs_the_csrf_header(world):
    """A forged cross-site request carries the cookie but not the header."""
    api = world["api"]
    for (method, rule), (kind, _) in sorted(ROUTES.items()):
        if method == "GET" or (method, rule) not in app_routes(api.app):
            continue
        if kind not in {"agent", "admin", "agent_or_visitor", "form"}:
            continue
        url = fill(rule, world)
        if kind == "form":
            response = api.client.post(url, data={"email": "admin@example.com",
                                                  "password": "x"})
            assert response.status_code in {401, 403, 422}, (method, rule)
            continue
        response = call(api.client, method, url, json=body_for((method, rule), world) or {})
        assert response.status_code == 403, (method, rule, response.status_code)
        assert "CSRF" in response.get_json()["error"]["message"], (method, rule)
    # still logged in and nothing happened
    assert api.get("/api/v1/me").status_code == 200
    assert api.get(f"/api/v1/conversations/{world['cid']}").get_json()["status"] == "open"
