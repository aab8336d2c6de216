"""GET /metrics: off by default, a bearer token when on, the figures issue 18 asks for."""

from __future__ import annotations

import threading

from meiqia.hookspecs import hookimpl
from tests.conftest import close_app
from tests.conftest import make_app
from tests.helpers import ApiClient
from tests.helpers import wait_until
from tests.reliability.test_database_faults import say


class SlowObserver:
    __name__ = "metrics_observer"

    def __init__(self) -> None:
        self.seen = threading.Event()

    @hookimpl
    def track_event(self, event: dict) -> None:
        self.seen.set()
        raise RuntimeError("观察者坏了")


def _value(text: str, prefix: str) -> float:
    lines = [line for line in text.splitlines() if line.startswith(prefix)]
    assert lines, f"no sample {prefix!r}"
    return sum(float(line.rsplit(" ", 1)[1]) for line in lines)


def test_metrics_are_off_by_default(client):
    assert client.get("/metrics").status_code == 404


def test_metrics_need_the_token_and_report_messages_plugins_queue_and_jobs(tmp_path):
    observer = SlowObserver()
    app = make_app(tmp_path, plugins=(observer,), METRICS_TOKEN="s3cret-scrape",
                   PLUGIN_BREAKER_FAILURES=1000)
    try:
        with app.app_context():
            api = ApiClient.registered(app)
            api.without_bot()
            anonymous = app.test_client()
            assert anonymous.get("/metrics").status_code == 401
            assert anonymous.get("/metrics", headers={
                "Authorization": "Bearer wrong"}).status_code == 401
            visitor = app.test_client()
            data = visitor.post("/api/v1/widget/session",
                                json={"team_id": api.team["id"]}).get_json()
            token, cid = data["token"], data["conversation"]["conversation_id"]
            assert say(visitor, token, cid, "你好，在吗", "m1").status_code == 201
            wait_until(observer.seen.is_set, what="the observer called")
            text = wait_until(lambda: (lambda t: t if 'outcome="raised"' in t else None)(
                anonymous.get("/metrics", headers={"Authorization": "Bearer s3cret-scrape"})
                .get_data(as_text=True)), what="the failed call counted")
            assert _value(text, 'meiqia_messages_total{sender_kind="visitor"') >= 1
            assert _value(text, 'meiqia_plugin_calls_total{hook="track_event",'
                                'outcome="raised",plugin="metrics_observer"}') >= 1
            assert "meiqia_plugin_call_seconds_bucket" in text
            assert "meiqia_conversations_queued " in text  # read from the database
            assert "meiqia_open_sockets" in text and "meiqia_ack_seconds" in text
    finally:
        close_app(app)
