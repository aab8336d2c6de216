"""A ticket sink that hangs holds one of the process's job threads, never all.

Found by a plugin author working from docs/plugins.md alone: each delivery to a
hanging sink held a shared job thread for its whole budget (30 s), so a few of
them held every thread, and another sink's deliveries (and a channel customer's
bot answer) waited half a minute. Now at most one job thread of a process is
inside one sink plugin at a time (``plugin_runtime.job_gate``); the others
are retried later and the threads go on with the rest of the queue.

Real job threads (``JOBS_INLINE`` off), real SQLite, two sink plugins.
"""

from __future__ import annotations

import threading
import types

from meiqia.hookspecs import hookimpl
from meiqia.models import SinkDelivery
from tests.conftest import close_app
from tests.conftest import make_app
from tests.helpers import ApiClient
from tests.helpers import wait_until

RELEASE = threading.Event()
HUNG: list[int] = []
DELIVERED: list[int] = []


class _Base:
    @staticmethod
    def configuration_schema():
        return {"type": "object", "properties": {"url": {"type": "string"}}}

    def update_ticket(self, ticket, config, changes):
        pass


class HangingSink(_Base):
    type = "hanging_crm"
    name = "卡住的系统"

    def create_ticket(self, ticket, config):
        HUNG.append(ticket["ticket"]["id"])
        RELEASE.wait(20)  # within its budget: it holds whatever thread runs it


class GoodSink(_Base):
    type = "good_crm"
    name = "正常的系统"

    def create_ticket(self, ticket, config):
        DELIVERED.append(ticket["ticket"]["id"])


def test_a_hanging_sink_leaves_the_other_job_threads_to_the_rest(tmp_path):
    HUNG.clear()
    DELIVERED.clear()
    RELEASE.clear()
    plugin = types.ModuleType("two_sinks")
    plugin.register_ticket_sinks = hookimpl(lambda app: [HangingSink, GoodSink])
    app = make_app(tmp_path, plugins=(plugin,), JOBS_INLINE=False, JOB_THREADS=2,
                   HOOK_BUDGETS={"create_ticket": 25.0})
    try:
        with app.app_context():
            api = ApiClient.registered(app)
            for kind in ("hanging_crm", "good_crm"):
                made = api.post("/api/v1/ticket-sinks", json={
                    "type": kind, "name": kind, "config": {"url": "https://crm.example.cn"}})
                assert made.status_code == 201, made.get_json()
            tickets = []
            for n in range(4):  # each: one delivery to each sink, hanging one first
                created = api.post("/api/v1/tickets", json={"content": f"第{n}张留言"})
                assert created.status_code == 201, created.get_json()
                tickets.append(created.get_json()["id"])
            # Two job threads, four deliveries to a sink that hangs for 20 s: before,
            # both threads hung and the good sink waited. Now it gets all four.
            wait_until(lambda: sorted(DELIVERED) == sorted(tickets), 15,
                       "the good sink's deliveries while the other hangs")
            assert len(HUNG) == 1 and not RELEASE.is_set()  # one thread inside it, still
            waiting = SinkDelivery.select().join_from(SinkDelivery, SinkDelivery.sink.rel_model) \
                .where(SinkDelivery.status != "delivered").count()
            assert waiting == 4  # the hanging sink's: to be retried, none lost
            busy = [d.last_error for d in SinkDelivery.select() if "busy" in d.last_error]
            assert busy and "one at a time" in busy[0]
    finally:
        RELEASE.set()
        close_app(app)
