"""The circuit breaker on a real ``meiqia run`` server, with an instance plugin.

Found from outside (docs only): a plugin whose redactor (``before_message_saved``)
hung on every message but whose ``track_event`` succeeded was never suspended: each
successful event reset the plugin's "failures in a row", so every visitor message
waited the redactor's whole budget for ever, and ``/healthz`` said ``"failing": []``.
docs/plugins.md promises a plugin that keeps failing is suspended and that from then
on every message gets the fallback at once.
"""

from __future__ import annotations

import json
import time
import urllib.request

from tests.helpers import wait_until
from tests.integration.test_embedded_server import Embedded
from tests.integration.test_embedded_server import team

WATCHER = '''
import threading

from meiqia.hookspecs import hookimpl


@hookimpl
def before_message_saved(message, conversation):
    threading.Event().wait(60)  # hangs: the budget (0.4 s) ends it


@hookimpl
def track_event(event):
    return None
'''

BUDGET = 0.4


def _get(base: str, path: str) -> dict:
    with urllib.request.urlopen(base + path, timeout=10) as response:
        return json.loads(response.read())


def _say(base: str, token: str, cid: str, body: str, client_msg_id: str) -> tuple[int, dict, float]:
    request = urllib.request.Request(
        f"{base}/api/v1/widget/conversations/{cid}/messages", method="POST",
        data=json.dumps({"body": body, "client_msg_id": client_msg_id}).encode(),
        headers={"Content-Type": "application/json", "X-Visitor-Token": token})
    began = time.monotonic()
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, json.loads(response.read()), time.monotonic() - began


def test_a_hanging_redactor_is_suspended_although_its_track_event_succeeds(tmp_path):
    plugins = tmp_path / "instance" / "plugins"
    plugins.mkdir(parents=True)
    (plugins / "watcher.py").write_text(WATCHER)
    server = Embedded(tmp_path, HOOK_BUDGETS=json.dumps({"before_message_saved": BUDGET}),
                      ENTRY_POINT_PLUGINS="[]", PLUGIN_STATE_REFRESH="0.2")
    try:
        admin, team_id, _agent_id = team(server, max_concurrent=5)

        def watcher() -> dict:
            rows = admin.call("GET", "/api/v1/plugins")
            return next(row for row in rows if row["name"] == "instance:watcher")

        session = admin.__class__(server.base).call("POST", "/api/v1/widget/session",
                                                    {"team_id": team_id})
        token, cid = session["token"], session["conversation"]["conversation_id"]
        took = []
        for n in range(10):
            status, answer, seconds = _say(server.base, token, cid,
                                           f"第{n}条 电话13800138{n:03d}", f"w{n}")
            assert status == 201, answer
            assert "13800138" not in answer["message"]["body"]  # the fallback mask
            took.append(seconds)
            if n < 4:  # (a suspended plugin's track_event is skipped too)
                # Each message's events reach track_event, which succeeds in between.
                wait_until(lambda n=n: (watcher()["figures"].get("track_event") or {})
                           .get("calls", 0) > n, what="the message's event observed")
            if n == 1:
                # Its redactor's last call failed: failing, although track_event
                # succeeded after it.
                health = _get(server.base, "/healthz")
                assert health["plugins"]["failing"] == ["instance:watcher"], health
        row = watcher()
        assert row["figures"]["track_event"]["errors"] == 0
        assert row["figures"]["track_event"]["timeouts"] == 0
        # Suspended after 5 failed redactor calls; the later messages were skipped.
        assert row["state"] == "suspended", (row, took)
        assert row["figures"]["before_message_saved"]["timeouts"] == 5, row
        assert row["figures"]["before_message_saved"]["skipped"] >= 5, row
        # The first messages waited the redactor's budget (the conversation's
        # opening line may have been one of the 5 failed calls); from the suspension
        # on, every message got the fallback at once.
        slow = [seconds >= BUDGET for seconds in took]
        assert slow == sorted(slow, reverse=True) and 4 <= sum(slow) <= 5, took
        assert max(took[5:]) < BUDGET, took
        health = _get(server.base, "/healthz")
        assert health["plugins"]["suspended"] == ["instance:watcher"], health
        assert health["status"] == "degraded"
    finally:
        server.stop()
