"""The OpenAPI document says what every answer holds, and the answers hold it.

(a) No operation documents its success body as a bare object or an array of bare
objects: each names its properties (``bare_schemas``).
(b) A representative run on a real SQLite file (a team with agents, a group, a
visitor's conversation with messages and uploads, a ticket with a public reply and
an internal note, ended history, an export, a knowledge entry, quick replies,
tokens, a password reset, iframe plugins, a channel plugin, and three ticket sinks:
a webhook, an e-mail one whose ``port`` and ``starttls`` are not strings, and the
WeCom example plugin, whose form fields carry other keywords than the built-ins')
calls every GET list and detail route and the writes, and every JSON success body
is validated against the schema the document gives its operation (``$ref`` resolved
in the document's components). A field the code adds, drops or retypes without the
document fails here, naming the operation; so does an answer that only some
situations give (``null`` for a note, a plugin's own form). An object the document
describes by its properties is validated closed (``closed``): a property the answer
has and the document does not name fails too, unless the document says it allows
others (``additionalProperties``).
"""

from __future__ import annotations

import io
import json
import os
import socket
from collections.abc import Iterator
from typing import Any

import jsonschema_rs
import pytest

from meiqia.models import Conversation
from meiqia.testing.api import AGENT_PASSWORD
from meiqia.testing.api import ApiClient
from meiqia.testing.app import close_app
from meiqia.testing.app import make_app
from tests.api.test_conversations import start
from tests.api.test_exports import seed as seed_history
from tests.api.test_tickets import leave

#: Operations that must be called with a 2xx in the run and match the document.
MUST_CALL = {
    "accounts_me", "accounts_get_team", "accounts_update_team", "accounts_list_agents",
    "accounts_get_agent", "accounts_create_agent", "accounts_list_tokens",
    "accounts_create_token", "accounts_revoke_token", "accounts_login",
    "conversations_lists", "conversations_get_one", "conversations_list_messages",
    "conversations_send", "conversations_end", "conversations_transfer",
    "conversations_summary", "conversations_update_card", "conversations_read",
    "conversations_rating_invite", "conversations_last_suggestions",
    "conversations_mentions_seen",
    "tickets_list_tickets", "tickets_create_ticket", "tickets_get_ticket",
    "tickets_update_ticket", "tickets_comment", "tickets_visitor_tickets",
    "history_search", "history_set_columns", "history_customer_conversations",
    "history_get_rules", "history_put_rules", "exports_start_export", "exports_list_exports",
    "exports_get_export", "exports_delete_export", "dashboard_home",
    "knowledge_list_entries", "knowledge_reindex", "knowledge_calibration",
    "knowledge_import_entries", "knowledge_delete_entry", "jobs_get_job",
    "bot_ask", "bot_unrecognised_groups",
    "channels_list_channels", "ticket_sinks_sink_types", "ticket_sinks_list_sinks",
    "ticket_sinks_create_sink", "ticket_sinks_get_sink", "ticket_sinks_update_sink",
    "ticket_sinks_deliveries", "ticket_sinks_delete_sink",
    "widget_session", "widget_list_messages", "widget_send", "widget_read", "widget_human",
    "widget_rating", "widget_tickets_ticket_form", "widget_tickets_widget_create",
    "widget_tickets_widget_list", "widget_tickets_widget_get", "widget_tickets_widget_read",
    "accounts_delete_group", "quick_replies_delete", "openapi_openapi_json",
    "accounts_end_all_sessions", "accounts_logout",
    "accounts_register", "accounts_update_group", "knowledge_update_entry",
    "quick_replies_create", "quick_replies_update", "quick_replies_search",
    "quick_replies_list_replies", "setup_get_setup", "setup_dismiss_setup",
    "plugins_list_plugins", "plugins_switch", "plugins_reset",
    "password_reset_create_link", "password_reset_use_link",
    "iframe_plugins_create", "iframe_plugins_list_plugins", "iframe_plugins_get_one",
    "iframe_plugins_update", "iframe_plugins_rotate_secret", "iframe_plugins_sidebar_panels",
    "iframe_plugins_delete", "uploads_agent_upload", "uploads_visitor_upload",
    "widget_tickets_widget_ticket_upload", "widget_renew_token",
    "channels_get_channel", "channels_configure_channel", "channels_test_channel",
    "channels_conversation_deliveries", "ticket_sinks_retry_delivery",
}

#: The example plugins the run loads (installed entry points, as a server loads
#: them): a ticket sink and a channel written outside meiqia.
PLUGINS = ["example_wecom_sink", "example_webhook_channel"]


@pytest.fixture
def run_app(tmp_path: Any) -> Iterator[Any]:
    """The app on a SQLite file, the example plugins loaded, and 127.0.0.0/8
    reachable (the operator's setting) so sinks and channels may point here."""
    app = make_app(tmp_path, plugins=PLUGINS, OUTBOUND_ALLOWED_NETWORKS=["127.0.0.0/8"])
    with app.app_context():
        yield app
    close_app(app)


def closed_port() -> int:
    """A local port nobody listens on (deliveries to it fail at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def bare_schemas(doc: dict[str, Any]) -> list[str]:
    """Operations whose JSON success body is documented as a bare object, an array
    of bare objects, or not at all."""
    bare = []
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            for status, response in operation["responses"].items():
                if not status.startswith("2"):
                    continue
                content = response.get("content", {})
                if "application/json" not in content:
                    continue
                schema = _resolve(doc, content["application/json"].get("schema") or {})
                if schema.get("type") == "array":
                    schema = _resolve(doc, schema.get("items") or {})
                if schema.get("type") == "object" and not (
                        schema.get("properties") or schema.get("additionalProperties")):
                    bare.append(f"{method.upper()} {path}")
    return bare


def _resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def test_no_success_body_is_a_bare_object(api):
    doc = api.get("/api/v1/openapi.json").get_json()
    assert bare_schemas(doc) == []


def closed(schema: Any) -> Any:
    """``schema`` with ``additionalProperties: false`` on every object that names its
    properties and says nothing about others, so an undocumented field is reported."""
    if isinstance(schema, list):
        return [closed(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = dict(schema)
    if isinstance(out.get("properties"), dict):
        out["properties"] = {name: closed(sub) for name, sub in out["properties"].items()}
        out.setdefault("additionalProperties", False)
    for key in ("items", "additionalProperties"):
        if isinstance(out.get(key), dict):
            out[key] = closed(out[key])
    for key in ("anyOf", "oneOf", "allOf"):
        if key in out:
            out[key] = closed(out[key])
    return out


class Recorder:
    """Every JSON 2xx answer of the run, by operation id."""

    def __init__(self, app: Any) -> None:
        self.adapter = app.url_map.bind("localhost")
        self.seen: list[tuple[str, str, int, Any]] = []

    def __call__(self, response: Any, method: str, url: str) -> Any:
        if 200 <= response.status_code < 300 and response.is_json:
            endpoint, _ = self.adapter.match(url.split("?")[0], method=method)
            self.seen.append((endpoint.removeprefix("api."), f"{method} {url}",
                              response.status_code, response.get_json()))
        return response


def _calls(api: Any, record: Recorder) -> None:  # noqa: PLR0915 - one story, in order
    def call(method: str, url: str, client: Any = None, ok: int | None = None,
             **kw: Any) -> Any:
        target = client or api
        response = getattr(target, method.lower())(url, **kw)
        assert response.status_code < 300, (method, url, response.get_json())
        if ok is not None:
            assert response.status_code == ok, (method, url, response.get_json())
        return record(response, method, url).get_json()

    team_id = api.team["id"]
    call("GET", "/api/v1/openapi.json")
    call("GET", "/api/v1/me")
    call("PATCH", "/api/v1/team", json={"settings": {"bot_enabled": True}})
    call("GET", "/api/v1/team")
    agent = call("POST", "/api/v1/agents", json={"name": "李客服", "email": "li@example.com",
                                                 "password": "li-password-123"})
    call("GET", "/api/v1/agents")
    call("GET", f"/api/v1/agents/{agent['id']}")
    call("PATCH", f"/api/v1/agents/{api.agent['id']}", json={"status": "online"})
    api.workspace_open()
    group = call("POST", "/api/v1/groups", json={"name": "售后"})
    call("PATCH", f"/api/v1/groups/{group['id']}", json={"name": "售后一组"})
    call("GET", "/api/v1/groups")
    doomed = call("POST", "/api/v1/groups", json={"name": "临时"})
    call("DELETE", f"/api/v1/groups/{doomed['id']}")
    token = call("POST", "/api/v1/tokens", json={"name": "集成", "scope": "read"})
    call("GET", "/api/v1/tokens")
    call("DELETE", f"/api/v1/tokens/{token['id']}")
    reply = call("POST", "/api/v1/quick-replies", json={"keyword": "hi", "title": "问候",
                                                        "body": "您好，请问有什么可以帮您？"})
    call("GET", "/api/v1/quick-replies")
    call("DELETE", f"/api/v1/quick-replies/{reply['id']}")
    kept = call("POST", "/api/v1/quick-replies", ok=201, json={
        "keyword": "bye", "title": "告别", "body": "感谢您的咨询", "category": "售后"})
    call("PATCH", f"/api/v1/quick-replies/{kept['id']}", json={"body": "感谢咨询，再见"})
    call("GET", "/api/v1/quick-replies/search?q=bye")
    call("GET", "/api/v1/setup")
    # An agent forgets his password and uses his reset link.
    forgetful = call("POST", "/api/v1/agents", json={
        "name": "周客服", "email": "zhou@example.com", "password": "zhou-password-1"})
    link = call("POST", f"/api/v1/agents/{forgetful['id']}/password-reset", ok=201)
    call("POST", "/api/v1/auth/password-reset", client=api.app.test_client(), json={
        "token": link["url"].rstrip("/").rsplit("/", 1)[1], "password": "zhou-password-2"})
    # Plugins, as an admin manages them.
    call("GET", "/api/v1/plugins")
    call("PATCH", f"/api/v1/plugins/{PLUGINS[0]}", json={"enabled": False})
    call("PATCH", f"/api/v1/plugins/{PLUGINS[0]}", json={"enabled": True})
    call("POST", f"/api/v1/plugins/{PLUGINS[0]}/reset")
    entry = call("POST", "/api/v1/knowledge", json={"key": "k1", "questions": ["发货时间"],
                                                    "answer": "48 小时内发货"})
    call("GET", "/api/v1/knowledge")
    call("GET", f"/api/v1/knowledge/{entry['id']}")
    call("PATCH", f"/api/v1/knowledge/{entry['id']}", json={
        "answer": "48 小时内发货，节假日顺延", "tags": ["物流"]})
    call("POST", "/api/v1/knowledge/import", data={"file": (io.BytesIO(
        "id,question,answer\nk2,怎么退货,七天无理由\n".encode()), "问答.csv")},
        content_type="multipart/form-data")
    job = call("POST", "/api/v1/knowledge/reindex")
    call("GET", f"/api/v1/jobs/{job['job_id']}")
    call("GET", "/api/v1/knowledge/calibration")
    call("POST", "/api/v1/bot/ask", json={"question": "什么时候发货"})
    call("POST", "/api/v1/bot/ask", json={"question": "你好"})
    call("GET", "/api/v1/bot/unrecognised")

    # A visitor chats with the admin, then leaves a message.
    client, vtoken, cid, session = start(api.app, team_id, name="张三",
                                         custom={"会员等级": "金卡"})
    record(client.post("/api/v1/widget/session", json={"team_id": team_id, "token": vtoken}),
           "POST", "/api/v1/widget/session")
    visitor = {"X-Visitor-Token": vtoken}
    call("POST", f"/api/v1/widget/conversations/{cid}/messages", client=client,
         headers=visitor, json={"body": "我的订单还没发货", "client_msg_id": "m-1"})
    call("POST", f"/api/v1/widget/conversations/{cid}/human", client=client, headers=visitor)
    call("GET", "/api/v1/conversations")
    call("GET", f"/api/v1/conversations/{cid}")
    call("GET", f"/api/v1/conversations/{cid}/suggestions")
    sent = call("POST", f"/api/v1/conversations/{cid}/messages",
                json={"body": "马上为您查询 😀", "client_msg_id": "a-1"})
    call("POST", f"/api/v1/conversations/{cid}/messages",
         json={"body": "内部：查物流", "mode": "internal", "client_msg_id": "a-2"})
    call("GET", f"/api/v1/conversations/{cid}/messages")
    call("POST", f"/api/v1/conversations/{cid}/uploads", ok=201, data={
        "file": (io.BytesIO("订单截图说明".encode()), "订单.txt")},
        content_type="multipart/form-data")
    call("POST", f"/api/v1/widget/conversations/{cid}/uploads", client=client, ok=201,
         headers=visitor, data={"file": (io.BytesIO(b"receipt"), "receipt.txt")},
         content_type="multipart/form-data")
    call("GET", f"/api/v1/conversations/{cid}/deliveries")
    # A sidebar iframe plugin, shown beside this conversation.
    panel = call("POST", "/api/v1/iframe-plugins", ok=201, json={
        "name": "CRM", "url": "https://crm.example.com/panel"})
    call("GET", "/api/v1/iframe-plugins")
    call("GET", f"/api/v1/iframe-plugins/{panel['id']}")
    call("PATCH", f"/api/v1/iframe-plugins/{panel['id']}", json={"height": 400})
    call("POST", f"/api/v1/iframe-plugins/{panel['id']}/rotate-secret")
    call("GET", f"/api/v1/conversations/{cid}/sidebar-panels")
    call("DELETE", f"/api/v1/iframe-plugins/{panel['id']}")
    call("GET", f"/api/v1/widget/conversations/{cid}/messages", client=client, headers=visitor)
    call("POST", f"/api/v1/widget/conversations/{cid}/read", client=client, headers=visitor,
         json={"up_to": sent["message"]["id"]})
    call("POST", f"/api/v1/conversations/{cid}/read", json={"up_to": sent["message"]["id"]})
    call("POST", f"/api/v1/conversations/{cid}/mentions/seen")
    call("PATCH", f"/api/v1/conversations/{cid}/summary", json={"summary": "催发货",
                                                                "tags": ["物流"]})
    visitor_id = Conversation.get_by_id(cid).visitor_id
    call("PATCH", f"/api/v1/visitors/{visitor_id}", json={"note": "老客户", "tags": ["VIP"]})
    call("POST", f"/api/v1/conversations/{cid}/rating-invite")
    li = ApiClient(api.app)
    assert li.login("li@example.com", "li-password-123").status_code == 200
    li.go_online()
    call("GET", "/api/v1/agents", client=li)  # as a colleague sees them
    call("GET", f"/api/v1/agents/{api.agent['id']}", client=li)
    call("POST", f"/api/v1/conversations/{cid}/transfer", json={"agent_id": agent["id"]})
    call("POST", f"/api/v1/conversations/{cid}/end", client=li)
    call("POST", f"/api/v1/widget/conversations/{cid}/rating", client=client, headers=visitor,
         json={"rating": "good", "comment": "很快"})
    call("GET", "/api/v1/widget/ticket-form", client=client, headers=visitor)
    mine = call("POST", "/api/v1/widget/tickets", client=client, headers=visitor,
                json={"content": "请尽快联系我，订单没收到", "phone": "13800138000",
                      "conversation_id": cid})
    ticket = leave(client, vtoken).get_json()
    call("POST", "/api/v1/tickets", json={"subject": "电话来的", "content": "客户来电催单",
                                          "conversation_id": cid})
    call("GET", "/api/v1/tickets")
    call("GET", f"/api/v1/tickets/{ticket['id']}")
    call("PATCH", f"/api/v1/tickets/{ticket['id']}", json={"status": "pending",
                                                           "group_id": group["id"]})
    comment = call("POST", f"/api/v1/tickets/{ticket['id']}/comments",
                   json={"body": "已为您补发", "visibility": "public"})
    call("POST", f"/api/v1/tickets/{ticket['id']}/comments", ok=201,
         json={"body": "内部：已联系仓库", "visibility": "internal"})
    call("GET", f"/api/v1/visitors/{visitor_id}/tickets")
    call("GET", "/api/v1/widget/tickets", client=client, headers=visitor)
    call("GET", f"/api/v1/widget/tickets/{ticket['id']}", client=client, headers=visitor)
    call("POST", f"/api/v1/widget/tickets/{ticket['id']}/read", client=client,
         headers=visitor, json={"up_to": comment["id"]})
    call("POST", f"/api/v1/widget/conversations/{cid}/ticket-uploads", client=client, ok=201,
         headers=visitor, data={"file": (io.BytesIO(b"photo"), "photo.txt")},
         content_type="multipart/form-data")
    call("POST", "/api/v1/widget/token", client=client,
         json={"token": vtoken, "renew_key": session["renew_key"]})
    assert mine["id"]

    # History, rules, exports, the dashboard.
    seed_history(api)
    call("GET", "/api/v1/history")
    call("GET", "/api/v1/history?rating=good&lead=false&duration_min=0&ended_from=2000-01-01")
    call("PUT", "/api/v1/history/columns", json={"columns": ["visitor", "agent", "rating"]})
    call("GET", f"/api/v1/visitors/{visitor_id}/conversations")
    rules = call("GET", "/api/v1/conversation-rules")
    call("PUT", "/api/v1/conversation-rules", json={"grades": rules["grades"]})
    export = call("POST", "/api/v1/history/exports", json={"format": "csv", "filters": {}})
    call("GET", "/api/v1/history/exports")
    call("GET", f"/api/v1/history/exports/{export['id']}")
    call("DELETE", f"/api/v1/history/exports/{export['id']}")
    call("GET", "/api/v1/dashboard")
    call("GET", "/api/v1/dashboard?from=2026-01-01&to=2026-01-31")

    # Channels and ticket sinks (admins).
    call("GET", "/api/v1/channels")
    call("GET", "/api/v1/channels/webhook")
    call("PUT", "/api/v1/channels/webhook", json={"enabled": True, "config": {
        "outbound_url": f"http://127.0.0.1:{closed_port()}/replies",
        "secret": "channel-secret-0123456789"}})
    call("POST", "/api/v1/channels/webhook/test", json={})
    call("GET", "/api/v1/ticket-sinks/types")
    sink = call("POST", "/api/v1/ticket-sinks", json={
        "type": "webhook", "name": "工单推送",
        "config": {"url": "https://hooks.example.com/meiqia", "secret": "s3cret-value-0123456789"}})
    call("GET", "/api/v1/ticket-sinks")
    call("GET", f"/api/v1/ticket-sinks/{sink['id']}")
    call("PATCH", f"/api/v1/ticket-sinks/{sink['id']}", json={"name": "工单推送 2"})
    call("GET", "/api/v1/ticket-sinks/deliveries")
    call("DELETE", f"/api/v1/ticket-sinks/{sink['id']}")
    # An e-mail sink (its port a number, starttls a boolean) and the WeCom example's,
    # both pointing at a port nobody listens on: the next change fails to reach them.
    port = closed_port()
    mail = call("POST", "/api/v1/ticket-sinks", ok=201, json={
        "type": "email", "name": "客服邮箱", "config": {
            "host": "127.0.0.1", "port": port, "starttls": False, "user": "bot",
            "password": "smtp-password", "from": "bot@shop.example",
            "to": "team@shop.example"}})
    call("GET", f"/api/v1/ticket-sinks/{mail['id']}")
    call("PATCH", f"/api/v1/ticket-sinks/{mail['id']}", json={"config": {
        **mail["config"], "to": "help@shop.example"}})
    call("POST", "/api/v1/ticket-sinks", ok=201, json={
        "type": "wecom_robot", "name": "售后群", "config": {
            "url": f"http://127.0.0.1:{port}/cgi-bin/webhook/send?key=k1"}})
    call("GET", "/api/v1/ticket-sinks")
    call("PATCH", f"/api/v1/tickets/{ticket['id']}", json={"priority": "high"})
    # In Chinese: the notes and reasons read translated, the English kept beside them.
    chinese = {"X-Meiqia-Lang": "zh-CN"}
    call("POST", f"/api/v1/tickets/{ticket['id']}/comments", ok=201, headers=chinese,
         json={"body": "已催仓库", "visibility": "public"})
    call("GET", f"/api/v1/tickets/{ticket['id']}", headers=chinese)
    call("GET", "/api/v1/ticket-sinks/deliveries?status=failed", headers=chinese)
    undelivered = call("GET", "/api/v1/ticket-sinks/deliveries")
    assert undelivered and all(d["status"] != "delivered" for d in undelivered), undelivered
    call("POST", f"/api/v1/ticket-sinks/deliveries/{undelivered[0]['id']}/retry")
    call("DELETE", f"/api/v1/knowledge/{entry['id']}")

    call("GET", "/api/v1/setup")
    call("PATCH", "/api/v1/team", json={"settings": {
        "welcome_message": "您好，欢迎光临", "working_hours": {"mode": "always"}}})
    call("POST", "/api/v1/setup/dismiss")  # every step is done by now

    # Sessions last: they end this client's session.
    other = api.new_agent(email="zhao@example.com", name="赵客服")
    record(other.login("zhao@example.com", AGENT_PASSWORD), "POST", "/api/v1/auth/login")
    call("POST", "/api/v1/auth/sessions/end-all", client=other)
    call("POST", "/api/v1/auth/logout")


def test_every_answer_of_a_run_is_what_the_document_says(run_app):
    record = Recorder(run_app)
    api = ApiClient(run_app)  # the first team's admin registers (then it is closed)
    registered = record(api.client.post("/api/v1/auth/register", json={
        "team_name": "测试团队", "name": "王管理", "email": "admin@example.com",
        "password": AGENT_PASSWORD}), "POST", "/api/v1/auth/register")
    assert registered.status_code == 201, registered.get_json()
    api.login("admin@example.com", AGENT_PASSWORD)
    _calls(api, record)
    doc = next(seen[3] for seen in record.seen if seen[0] == "openapi_openapi_json")
    operations = {item[method]["operationId"]: item[method]
                  for item in doc["paths"].values() for method in item}
    if os.environ.get("MEIQIA_DUMP_RESPONSES"):
        with open(os.environ["MEIQIA_DUMP_RESPONSES"], "w") as out:
            json.dump(record.seen, out, ensure_ascii=False, indent=1, default=str)
    components = {"schemas": {name: closed(schema)
                              for name, schema in doc["components"]["schemas"].items()}}
    problems = []
    for operation_id, where, status, body in record.seen:
        documented = operations[operation_id]["responses"].get(str(status))
        if documented is None:
            problems.append(f"{where}: {status} not documented")
            continue
        schema = documented["content"]["application/json"]["schema"]
        validator = jsonschema_rs.validator_for({**closed(schema), "components": components})
        for error in validator.iter_errors(body):
            problems.append(f"{where} ({operation_id}): {error.message} at "
                            f"{'/'.join(map(str, error.instance_path))}")
    assert not problems, "\n".join(problems[:60])
    missing = MUST_CALL - {seen[0] for seen in record.seen}
    assert not missing, sorted(missing)
    # The answers only some situations give were among those validated.
    bodies = {operation_id: [seen[3] for seen in record.seen if seen[0] == operation_id]
              for operation_id in operations}
    assert {c["visibility"]: c["email"] for c in bodies["tickets_comment"]}["internal"] is None
    mail = next(s for s in bodies["ticket_sinks_get_sink"] if s["type"] == "email")
    assert isinstance(mail["config"]["port"], int) and mail["config"]["starttls"] is False
    forms = {t["type"]: t["schema"] for t in bodies["ticket_sinks_sink_types"][0]}
    assert "maxLength" not in forms["wecom_robot"]["properties"]["url"], forms


def _query_schemas(doc: dict[str, Any], path: str) -> dict[str, dict[str, Any]]:
    return {p["name"]: p["schema"] for p in doc["paths"][path]["get"]["parameters"]
            if p["in"] == "query"}


def test_history_filters_are_documented_as_the_server_checks_them(api):
    doc = api.get("/api/v1/openapi.json").get_json()
    history = _query_schemas(doc, "/api/v1/history")
    assert history["rating"] == {"type": "string", "enum": ["good", "neutral", "bad", "none"]}
    assert history["source"]["enum"] == ["direct", "link", "search_engine"]
    assert history["platform"]["enum"] == ["pc_web", "mobile_web"]
    for flag in ("lead", "invalid", "missed"):
        assert history[flag] == {"type": "boolean"}
    for number in ("agent_id", "duration_min", "duration_max", "first_response_min",
                   "first_response_max"):
        assert history[number]["type"] == "integer" and history[number]["minimum"] == 0
    assert "pattern" in history["ended_from"] and "pattern" in history["ended_to"]
    # What the document refuses, the server refuses; what it allows, the server takes.
    for query in ("rating=超好", "lead=maybe", "agent_id=abc", "ended_from=昨天",
                  "source=微信", "duration_min=1.5", "duration_min=-1", "platform=电视"):
        response = api.get("/api/v1/history?" + query, headers={"X-Meiqia-Lang": "zh-CN"})
        assert response.status_code == 422, (query, response.get_json())
    for query in ("rating=none", "lead=true", "agent_id=7", "ended_from=2026-11-24",
                  "ended_to=2026-11-24T08:00%2B08:00", "source=search_engine",
                  "duration_min=30", "grade=A", "channel=web", "to="):
        assert api.get("/api/v1/history?" + query).status_code == 200, query


def test_page_has_one_bound_in_document_code_and_message(api):
    doc = api.get("/api/v1/openapi.json").get_json()
    for path in ("/api/v1/history", "/api/v1/tickets", "/api/v1/knowledge"):
        page = _query_schemas(doc, path)["page"]
        assert page == {"type": "integer", "minimum": 1, "maximum": 2147483647}, path
        bounds = f"page: must be between {page['minimum']} and {page['maximum']}"
        for value in (0, page["maximum"] + 1):
            response = api.get(f"{path}?page={value}")
            assert response.status_code == 422, (path, value)
            assert response.get_json()["error"]["message"] == bounds, (path, value)
        last = api.get(f"{path}?page={page['maximum']}")
        assert last.status_code == 200, (path, last.get_json())


def test_widget_custom_is_refused_past_its_documented_size(api):
    doc = api.get("/api/v1/openapi.json").get_json()
    body = doc["paths"]["/api/v1/widget/session"]["post"]["requestBody"]
    custom = body["content"]["application/json"]["schema"]["properties"]["custom"]
    limit = custom["maxProperties"]
    client = api.app.test_client()
    over = {f"字段{i:02d}": f"值{i}" for i in range(limit + 11)}
    response = client.post("/api/v1/widget/session", json={"team_id": api.team["id"],
                                                           "custom": over},
                           headers={"X-Meiqia-Lang": "zh-CN"})
    assert response.status_code == 422, response.get_json()
    assert response.get_json()["error"]["field"] == "custom"
    assert response.get_json()["error"]["message"] == f"自定义信息：最多 {limit} 个键"
    at_limit = dict(list(over.items())[:limit])
    response = client.post("/api/v1/widget/session", json={"team_id": api.team["id"],
                                                           "custom": at_limit})
    assert response.status_code == 200, response.get_json()
    conversation = api.get(f"/api/v1/conversations/"
                           f"{response.get_json()['conversation']['conversation_id']}")
    assert conversation.get_json()["customer"]["attributes"] == at_limit


def test_an_empty_query_value_is_documented_as_absent(api):
    doc = api.get("/api/v1/openapi.json").get_json()
    to = next(p for p in doc["paths"]["/api/v1/dashboard"]["get"]["parameters"]
              if p["name"] == "to")
    assert to["allowEmptyValue"] is True and to["schema"]["format"] == "date"
    assert "empty query parameter" in doc["info"]["description"]
    assert api.get("/api/v1/dashboard?to=").status_code == 200
