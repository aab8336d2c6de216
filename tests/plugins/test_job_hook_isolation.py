"""Plugins that hang or are slow in the hooks run off the request path.

Found by a plugin author working from docs/plugins.md alone:

* a channel whose ``deliver`` hangs, with a few conversations on it, took every
  shared job thread (each delivery job waited its whole budget), so another
  channel's bot answer went out 29 s late; under rq each waited its budget one
  after the other on the one urgent loop. Now one call at a time is inside one
  channel (``plugin_runtime.job_gate``), the others fail at once as busy and are
  retried on their schedule, and a call that timed out keeps the channel closed
  for one more budget;
* the same for a ticket sink: after one delivery timed out, each later delivery to
  the sink waited its budget again, one after the other;
* ``track_event`` calls that ran within their budget were counted as timed out
  when they had waited in the plugin's backlog, and the plugin was suspended;
* Reset left the per-hook figures adding up.

Real plugins (a module given to the app, as plugins are loaded), real job threads
(``JOBS_INLINE`` off), real SQLite.
"""

from __future__ import annotations

import threading
import time
import types

from meiqia.channels import Channel
from meiqia.hookspecs import hookimpl
from meiqia.models import SinkDelivery
from tests.conftest import close_app
from tests.conftest import make_app
from tests.helpers import ApiClient
from tests.helpers import new_client_id
from tests.helpers import wait_until

RELEASE = threading.Event()
HUNG: list[int] = []
SENT: list[int] = []


class _Channel(Channel):
    @staticmethod
    def configuration_schema():
        return {"type": "object", "properties": {"endpoint": {"type": "string"}}}

    def test_connection(self):
        return "ok"


class StuckChannel(_Channel):
    type = "stuck"
    name = {"zh-CN": "卡住的短信", "en": "Stuck SMS"}

    def deliver(self, conversation, message):
        HUNG.append(message.id)
        RELEASE.wait(30)  # hangs past its budget
        return None


class GoodChannel(_Channel):
    type = "good"
    name = {"zh-CN": "正常的短信", "en": "Good SMS"}

    def deliver(self, conversation, message):
        SENT.append(message.id)
        return f"out-{message.id}"


def test_a_hanging_channel_holds_no_other_channels_reply(tmp_path):
    HUNG.clear()
    SENT.clear()
    RELEASE.clear()
    plugin = types.ModuleType("two_channels")
    plugin.register_channels = hookimpl(lambda app: [StuckChannel, GoodChannel])
    app = make_app(tmp_path, plugins=(plugin,), JOBS_INLINE=False, JOB_THREADS=2,
                   CHANNEL_DELIVER_TIMEOUT=60.0, CHANNEL_DELIVERY_RETRY=(5, (300,)))
    try:
        with app.app_context():
            from meiqia.channels import receive
            from meiqia.channels import registry
            from meiqia.models import Agent
            from meiqia.services import channels as channel_admin

            api = ApiClient.registered(app).without_bot()
            team = api.team["id"]
            admin = Agent.get_by_id(api.agent["id"])
            for slug in ("stuck", "good"):
                channel_admin.configure(admin, slug, {"enabled": True, "config": {}})
            agent = api.online_agent()
            stuck = registry.make_host(team, "stuck", app=app)
            good = registry.make_host(team, "good", app=app)
            good_cid = receive(good, "good-kehu", "人工", external_message_id="g-1").conversation_id
            cids = [receive(stuck, f"kehu-{n}", "人工", external_message_id=f"s-{n}").conversation_id
                    for n in range(4)]
            for cid in cids:  # four replies to the hanging channel, each a job
                sent = agent.post(f"/api/v1/conversations/{cid}/messages",
                                  json={"body": "您好", "client_msg_id": new_client_id()})
                assert sent.status_code == 201, sent.get_json()
            wait_until(lambda: HUNG, what="a delivery inside the hanging channel")
            reply = agent.post(f"/api/v1/conversations/{good_cid}/messages",
                               json={"body": "马上为您处理", "client_msg_id": new_client_id()})
            message_id = reply.get_json()["message"]["id"]
            # Before: both job threads waited their 60 s budget in the hanging
            # deliver(), so the reply could not go out before the deadline below.
            wait_until(lambda: message_id in SENT, timeout=45,
                       what="the other channel's reply while one channel hangs")
            assert len(HUNG) == 1, HUNG  # one call inside it; the others retry later
    finally:
        RELEASE.set()
        close_app(app)


def test_a_sink_that_timed_out_is_not_waited_for_again_by_each_delivery(tmp_path):
    """One job thread, as one default loop of `meiqia worker`: after the first
    delivery to the hanging sink timed out, the next ones fail at once (busy, retried
    later) instead of each waiting its budget in turn before the other sink's."""
    from tests.reliability import test_sink_isolation as sinks

    sinks.HUNG.clear()
    sinks.DELIVERED.clear()
    sinks.RELEASE.clear()
    plugin = types.ModuleType("two_desks")
    plugin.register_ticket_sinks = hookimpl(lambda app: [sinks.HangingSink, sinks.GoodSink])
    app = make_app(tmp_path, plugins=(plugin,), JOBS_INLINE=False, JOB_THREADS=1,
                   HOOK_BUDGETS={"create_ticket": 5.0}, SINK_RETRY_SECONDS=[300])
    try:
        with app.app_context():
            api = ApiClient.registered(app)
            for kind in ("hanging_crm", "good_crm"):  # it hangs 20 s, past its budget
                made = api.post("/api/v1/ticket-sinks", json={
                    "type": kind, "name": kind, "config": {"url": "https://desk.example.cn"}})
                assert made.status_code == 201, made.get_json()
            tickets = []
            for n in range(4):
                created = api.post("/api/v1/tickets", json={"content": f"第{n}张留言"})
                assert created.status_code == 201, created.get_json()
                tickets.append(created.get_json()["id"])
            # Before: 4 x 5 s in the hanging sink, one after the other, first.
            wait_until(lambda: sorted(sinks.DELIVERED) == sorted(tickets), 15,
                       "the other sink's deliveries after one timeout")
            assert len(sinks.HUNG) == 1, sinks.HUNG
            busy = [d for d in SinkDelivery.select() if "still busy" in d.last_error]
            assert len(busy) == 3 and all(d.status == "pending" for d in busy)
    finally:
        sinks.RELEASE.set()
        close_app(app)


class SlowTracker:
    __name__ = "slow_tracker"

    def __init__(self) -> None:
        self.done = 0

    @hookimpl
    def track_event(self, event):
        time.sleep(0.6)  # within its 3 s budget, but slower than the events come
        self.done += 1


def test_track_event_budget_is_the_calls_own_run_and_a_full_backlog_drops(tmp_path):
    tracker = SlowTracker()
    app = make_app(tmp_path, plugins=(tracker,), PLUGIN_THREADS=1, PLUGIN_BACKLOG=6,
                   HOOK_BUDGETS={"track_event": 3.0})
    try:
        with app.app_context():
            from meiqia.services import events

            pm = app.extensions["meiqia.plugins"]
            name = next(n for n in pm.runtime.origins if n.endswith("slow_tracker"))
            # One runs, six wait (the last 3.6 s: past the budget, which counted it
            # before), two dropped.
            for n in range(9):
                events.emit("test.event", 1, data={"n": n})
            wait_until(lambda: tracker.done == 7, 20, "the queued events tracked")
            wait_until(lambda: pm.runtime.figures(name)["track_event"]["calls"] == 7, 5,
                       "the calls counted")
            fig = pm.runtime.figures(name)["track_event"]
            assert fig["timeouts"] == 0 and fig["errors"] == 0, fig
            assert fig["dropped"] == 2, fig
            assert pm.runtime.skip_reason(name, None) is None  # not suspended
    finally:
        close_app(app)


def test_reset_starts_the_figures_again(tmp_path):
    tracker = SlowTracker()
    app = make_app(tmp_path, plugins=(tracker,), HOOK_BUDGETS={"track_event": 1.0})
    try:
        with app.app_context():
            from meiqia.services import events

            pm = app.extensions["meiqia.plugins"]
            name = next(n for n in pm.runtime.origins if n.endswith("slow_tracker"))
            events.emit("test.event", 1, data={})
            wait_until(lambda: pm.runtime.figures(name).get("track_event", {}).get("calls"),
                       5, "the call counted")
            admin = ApiClient.registered(app)
            assert admin.post(f"/api/v1/plugins/{name}/reset").status_code == 200
            listed = {p["name"]: p for p in admin.get("/api/v1/plugins").get_json()}
            assert listed[name]["figures"].get("track_event", {}).get("calls", 0) == 0
    finally:
        close_app(app)
