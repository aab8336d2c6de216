"""Fault (d): plugins that raise or hang, end to end.

tests/unit/test_plugins.py proves the manager skips a raising ``track_event``
and abandons a slow one. Here a whole conversation runs with a plugin that
raises in every run-time hook it can, and one that hangs in ``track_event`` and
``before_message_saved``: the visitor is routed, messages are stored and
answered, the sidebar, the top bar and API tokens still work, and every failure
is logged with the plugin's name. Hooks run under the time limit still see the
application context (a plugin may read its config there).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from flask import current_app

from meiqia.hookspecs import hookimpl
from tests.conftest import close_app
from tests.conftest import make_app
from tests.helpers import ApiClient
from tests.helpers import wait_until
from tests.reliability.test_database_faults import bodies
from tests.reliability.test_database_faults import say


class Broken:
    """Raises in each run-time hook."""

    __name__ = "broken_plugin"

    @hookimpl
    def track_event(self, event: dict) -> None:
        raise RuntimeError("track_event 坏了")

    @hookimpl
    def before_message_saved(self, message: dict, conversation: Any) -> dict:
        raise RuntimeError("before_message_saved 坏了")

    @hookimpl
    def assign_agent(self, conversation: Any, candidates: list) -> Any:
        raise RuntimeError("assign_agent 坏了")

    @hookimpl
    def sidebar_panels(self, conversation: Any, visitor: Any, actor: Any, request: Any) -> list:
        raise RuntimeError("sidebar_panels 坏了")

    @hookimpl
    def menu_links(self, actor: Any, request: Any) -> list:
        raise RuntimeError("menu_links 坏了")

    @hookimpl
    def actor_from_request(self, request: Any) -> Any:
        raise RuntimeError("actor_from_request 坏了")


class Hanging:
    """Hangs until the test lets it go (a plugin stuck on a dead server)."""

    __name__ = "hanging_plugin"

    def __init__(self) -> None:
        self.release = threading.Event()
        self.secret_seen: list[str] = []

    @hookimpl
    def track_event(self, event: dict) -> None:
        self.secret_seen.append(current_app.config["SECRET_KEY"])  # app context is there
        self.release.wait(30)

    @hookimpl
    def before_message_saved(self, message: dict, conversation: Any) -> dict:
        self.release.wait(30)
        return {"body": "不该出现"}


def test_a_conversation_goes_on_through_raising_and_hanging_plugins(tmp_path, caplog):
    hanging = Hanging()
    # The breaker would suspend both plugins after five failures; here every
    # hook must be reached (tests/reliability/test_plugin_chaos.py has the breaker).
    app = make_app(tmp_path, plugins=(Broken(), hanging), HOOK_TIMEOUT=0.3,
                   PLUGIN_BREAKER_FAILURES=1000)
    try:
        with app.app_context(), caplog.at_level(logging.ERROR):
            api = ApiClient.registered(app)
            api.patch("/api/v1/team", json={"settings": {"bot_enabled": False}})
            api.patch(f"/api/v1/agents/{api.agent['id']}",
                      json={"status": "online", "max_concurrent": 3})
            api.workspace_open()
            visitor = app.test_client()
            data = visitor.post("/api/v1/widget/session",
                                json={"team_id": api.team["id"]}).get_json()
            token, cid = data["token"], data["conversation"]["conversation_id"]
            assert data["conversation"]["status"] == "open"  # routed despite assign_agent

            sent = say(visitor, token, cid, "插件坏了我还能说话吗", "p1")
            assert sent.status_code == 201, sent.get_json()
            assert sent.get_json()["message"]["body"] == "插件坏了我还能说话吗"
            reply = api.post(f"/api/v1/conversations/{cid}/messages",
                             json={"body": "能，照常回复", "client_msg_id": "a1"})
            assert reply.status_code == 201
            assert bodies(api, cid) == ["插件坏了我还能说话吗", "能，照常回复"]

            panels = api.get(f"/api/v1/conversations/{cid}/sidebar-panels")
            assert panels.status_code == 200 and panels.get_json() == []
            assert api.get("/workspace").status_code == 200  # the top bar's menu_links
            created = api.post("/api/v1/tokens", json={"name": "集成"}).get_json()
            by_token = app.test_client().get(
                "/api/v1/me", headers={"Authorization": f"Bearer {created['token']}"})
            assert by_token.status_code == 200  # the built-in token auth still answers
            assert app.test_client().get("/api/v1/me").status_code == 401

            ended = api.post(f"/api/v1/conversations/{cid}/end")
            assert ended.status_code == 200 and ended.get_json()["status"] == "ended"
        for hook in ("track_event", "before_message_saved", "assign_agent",
                     "sidebar_panels", "menu_links", "actor_from_request"):
            wait_until(lambda hook=hook: f"plugin broken_plugin: hook {hook} raised"
                       in caplog.text, what=f"the log line of {hook}")
        assert "plugin hanging_plugin: hook before_message_saved timed out" in caplog.text
        assert "plugin hanging_plugin: hook track_event timed out" in caplog.text
        assert hanging.secret_seen and set(hanging.secret_seen) == {"test-secret-key"}
    finally:
        hanging.release.set()
        close_app(app)
