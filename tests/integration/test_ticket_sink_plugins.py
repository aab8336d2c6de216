"""A third-party ticket sink in one file: the Jira example of docs/plugins.md, copied
verbatim from the page into a test instance's ``plugins/`` folder, configured by an admin
through the API, and delivering to a local stand-in for Jira's REST API.

Because the file is taken from the page, the documented example is the one that runs.
"""

from __future__ import annotations

import http.server
import json
import re
import threading
import urllib.parse
from pathlib import Path

import pytest

from meiqia.models import SinkDelivery
from tests.api.test_conversations import start
from tests.conftest import close_app
from tests.conftest import make_app
from tests.helpers import ApiClient

DOC = Path(__file__).resolve().parents[2] / "docs" / "plugins.md"
TOKEN = "jira-api-token-123"
NOTE = "内部：别告诉客户库存的事"


def documented_plugin() -> str:
    """The code block under "`instance/plugins/jira_sink.py`" in docs/plugins.md."""
    found = re.search(r"^`instance/plugins/jira_sink\.py`[^\n]*\n(?:[^\n]+\n)*?\n```python\n"
                      r"(.*?)^```$", DOC.read_text(encoding="utf-8"), re.S | re.M)
    assert found, "docs/plugins.md has no jira_sink.py example"
    return found.group(1)


class FakeJira:
    """Just enough of Jira's REST API v2: create an issue, search by label, comment."""

    def __init__(self) -> None:
        self.issues: dict[str, dict] = {}
        self.comments: dict[str, list[str]] = {}
        self.requests: list[dict] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _record(self) -> dict | None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                outer.requests.append({"method": self.command, "path": self.path,
                                       "auth": self.headers.get("Authorization"),
                                       "body": body})
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    self._answer(401, {"errorMessages": ["not logged in"]})
                    return None
                return body or {}

            def do_POST(self):  # noqa: N802 - http.server's name
                body = self._record()
                if body is None:
                    return
                path = urllib.parse.urlparse(self.path).path
                if path == "/rest/api/2/issue":
                    key = f"{body['fields']['project']['key']}-{len(outer.issues) + 1}"
                    outer.issues[key] = body["fields"]
                    self._answer(201, {"id": str(len(outer.issues)), "key": key})
                    return
                match = re.fullmatch(r"/rest/api/2/issue/([A-Z]+-\d+)/comment", path)
                if match and match.group(1) in outer.issues:
                    outer.comments.setdefault(match.group(1), []).append(body["body"])
                    self._answer(201, {"id": "1", "body": body["body"]})
                    return
                self._answer(404, {"errorMessages": ["no such issue"]})

            def do_GET(self):  # noqa: N802
                if self._record() is None:
                    return
                parsed = urllib.parse.urlparse(self.path)
                jql = urllib.parse.parse_qs(parsed.query).get("jql", [""])[0]
                label = jql.removeprefix("labels = ").strip()
                keys = [k for k, f in outer.issues.items() if label in f.get("labels", [])]
                self._answer(200, {"issues": [{"key": k} for k in keys]})

            def log_message(self, *args):
                pass

        self.server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def jira():
    server = FakeJira()
    yield server
    server.close()


@pytest.fixture
def plugin_app(tmp_path):
    """An instance whose plugins folder holds the documented jira_sink.py."""
    plugins = tmp_path / "instance" / "plugins"
    plugins.mkdir(parents=True)
    (plugins / "jira_sink.py").write_text(documented_plugin(), encoding="utf-8")
    app = make_app(tmp_path)
    with app.app_context():
        yield app
    close_app(app)


def test_the_documented_jira_sink_loads_from_the_plugins_folder_and_delivers(plugin_app, jira):
    described = {p["name"]: p for p in plugin_app.extensions["meiqia.plugins"].describe()}
    assert "register_ticket_sinks" in described["instance:jira_sink"]["hooks"]

    admin = ApiClient.registered(plugin_app)
    admin.patch("/api/v1/team", json={"settings": {"bot_enabled": False}})
    types = {t["type"]: t for t in admin.get("/api/v1/ticket-sinks/types").get_json()}
    assert types["jira"]["name"] == "Jira issue"
    assert types["jira"]["schema"]["secret"] == ["token"]  # drives the admin form
    refused = admin.post("/api/v1/ticket-sinks", json={
        "type": "jira", "name": "Jira", "config": {"url": jira.url, "project": "SUP"}})
    assert refused.status_code == 422  # the schema's required token
    sink = admin.post("/api/v1/ticket-sinks", json={
        "type": "jira", "name": "Jira", "config": {"url": jira.url, "project": "SUP",
                                                   "token": TOKEN}})
    assert sink.status_code == 201, sink.get_json()
    assert sink.get_json()["config"]["token"] == "********"

    client, token, cid, _ = start(plugin_app, admin.team["id"])
    created = client.post("/api/v1/widget/tickets", headers={"X-Visitor-Token": token},
                          json={"content": "耳机左边没声音\n订单 A1024", "phone": "13800138000",
                                "conversation_id": cid})
    assert created.status_code == 201, created.get_json()
    ticket_id = created.get_json()["id"]
    assert list(jira.issues) == ["SUP-1"]
    issue = jira.issues["SUP-1"]
    assert issue["summary"] == f"[meiqia #{ticket_id}] 耳机左边没声音"
    assert issue["description"] == "耳机左边没声音\n订单 A1024"
    assert issue["labels"] == [f"meiqia-{ticket_id}"]

    url = f"/api/v1/tickets/{ticket_id}"
    admin.patch(url, json={"status": "pending"})
    admin.post(f"{url}/comments", json={"body": NOTE, "visibility": "internal"})
    admin.post(f"{url}/comments", json={"body": "已安排换货", "visibility": "public"})
    assert jira.comments == {"SUP-1": ["status: open → pending", "已安排换货"]}
    assert all(r["auth"] == f"Bearer {TOKEN}" for r in jira.requests)
    assert NOTE not in json.dumps([r["body"] for r in jira.requests], ensure_ascii=False)
    deliveries = admin.get("/api/v1/ticket-sinks/deliveries").get_json()
    assert [(d["sink_type"], d["event"], d["status"]) for d in reversed(deliveries)] == [
        ("jira", "created", "delivered"), ("jira", "updated", "delivered"),
        ("jira", "updated", "delivered")]
    assert SinkDelivery.select().count() == 3


def test_a_jira_that_refuses_the_token_is_a_failed_delivery_admins_see(plugin_app, jira):
    admin = ApiClient.registered(plugin_app)
    admin.post("/api/v1/ticket-sinks", json={
        "type": "jira", "name": "Jira", "config": {"url": jira.url, "project": "SUP",
                                                   "token": "wrong-token"}})
    admin.post("/api/v1/tickets", json={"content": "电话里说的问题"})
    failed = admin.get("/api/v1/ticket-sinks/deliveries?status=failed").get_json()
    assert len(failed) == 1 and "401" in failed[0]["last_error"]
    assert jira.issues == {} and len(jira.requests) == 5  # the first try and four retries


def test_a_sink_whose_plugin_is_turned_off_for_the_team_fails_and_is_retried_by_hand(
        plugin_app, jira):
    """docs/plugins.md "The Plugins page" and "Ticket sinks": a delivery made while the
    sink's plugin is off for the team fails at once (no call, no automatic retry), with
    its reason in the admin's language (it read "the plugin … is turned off" in English
    beside Chinese reasons); once the plugin is on again an admin's retry delivers it."""
    admin = ApiClient.registered(plugin_app)
    admin.post("/api/v1/ticket-sinks", json={
        "type": "jira", "name": "Jira", "config": {"url": jira.url, "project": "SUP",
                                                   "token": TOKEN}})
    off = admin.patch("/api/v1/plugins/instance:jira_sink", json={"enabled": False})
    assert off.status_code == 200, off.get_json()
    admin.post("/api/v1/tickets", json={"content": "电话里说的问题"})

    def delivery(lang: str) -> dict:
        rows = admin.get("/api/v1/ticket-sinks/deliveries",
                         headers={"X-Meiqia-Lang": lang}).get_json()
        assert len(rows) == 1
        return rows[0]

    zh = delivery("zh-CN")
    assert (zh["status"], zh["attempts"]) == ("failed", 1)
    assert zh["last_error"] == "插件 instance:jira_sink 已对本团队关闭（插件页）"
    english = "the plugin instance:jira_sink is turned off for this team (Plugins page)"
    assert zh["last_error_en"] == english and delivery("en")["last_error"] == english
    assert jira.requests == []

    assert admin.patch("/api/v1/plugins/instance:jira_sink",
                       json={"enabled": True}).status_code == 200
    assert delivery("en")["status"] == "failed"  # turning it on sends nothing by itself
    assert admin.post(f"/api/v1/ticket-sinks/deliveries/{zh['id']}/retry").status_code == 200
    assert (delivery("en")["status"], list(jira.issues)) == ("delivered", ["SUP-1"])


def test_a_retry_by_hand_counts_its_attempts_from_zero(plugin_app, jira):
    """docs/plugins.md "Ticket sinks": ``attempts`` counts the attempts since the
    delivery was made or last retried by hand; a manual retry starts the count and the
    automatic schedule again (two failed retries by hand then a success: 1)."""
    admin = ApiClient.registered(plugin_app)
    sink = admin.post("/api/v1/ticket-sinks", json={
        "type": "jira", "name": "Jira", "config": {"url": jira.url, "project": "SUP",
                                                   "token": "wrong-token"}}).get_json()
    admin.post("/api/v1/tickets", json={"content": "电话里说的问题"})
    rounds = []
    for _ in range(2):
        row = admin.get("/api/v1/ticket-sinks/deliveries").get_json()[0]
        rounds.append((row["status"], row["attempts"], len(jira.requests)))
        assert admin.post(f"/api/v1/ticket-sinks/deliveries/{row['id']}/retry"
                          ).status_code == 200
    # The first try and four automatic retries each time (SINK_RETRY_SECONDS' four).
    assert rounds == [("failed", 5, 5), ("failed", 5, 10)]
    row = admin.get("/api/v1/ticket-sinks/deliveries").get_json()[0]
    assert (row["status"], row["attempts"]) == ("failed", 5)
    fixed = admin.patch(f"/api/v1/ticket-sinks/{sink['id']}", json={
        "config": {"url": jira.url, "project": "SUP", "token": TOKEN}})
    assert fixed.status_code == 200, fixed.get_json()
    assert admin.post(f"/api/v1/ticket-sinks/deliveries/{row['id']}/retry").status_code == 200
    row = admin.get("/api/v1/ticket-sinks/deliveries").get_json()[0]
    assert (row["status"], row["attempts"]) == ("delivered", 1)
