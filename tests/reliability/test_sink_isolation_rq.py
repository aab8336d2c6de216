"""In production (rq), a ticket sink that hangs holds one worker loop, never a
customer's reply.

Found by a plugin author working from docs/plugins.md alone, on PostgreSQL, Redis
and ``meiqia worker``: with one worker and three deliveries to a sink whose
``create_ticket`` hangs, a channel customer's answer went out after 90 s (each
delivery ran its whole 30 s budget, one after the other, and the reply waited
behind them); with two workers and four, 60 s. Two faults: every job shared one rq
queue and one loop per worker, and the sink's one-at-a-time gate was a lock in
memory, which rq's new work horse per job never shares.

Now (a) the jobs a customer waits for have a queue and loops of their own
(``jobs.URGENT_JOBS``; ``meiqia worker`` runs a loop per queue class, each in a
process of its own), and (b) the gate is a key in Redis: a second delivery to the
sink waits 2 s, then fails as "still busy" and is retried later.

Real ``meiqia worker`` processes, real Redis and PostgreSQL, an instance plugin
(a channel and a sink that hangs) loaded by the test's app and the workers alike.
"""

from __future__ import annotations

import json
import time

import pytest

from meiqia.models import SinkDelivery
from tests.conftest import close_app
from tests.conftest import make_app
from tests.conftest import truncate_all
from tests.helpers import ApiClient
from tests.helpers import new_client_id
from tests.helpers import wait_until
from tests.reliability.conftest import WorkerProcess
from tests.reliability.conftest import meiqia_env

#: An instance plugin: a channel whose deliver() writes what it sends to sent.log,
#: and a sink whose create_ticket() notes itself in hung.log and hangs.
PLUGIN = '''
import os
import threading
import time

from meiqia.channels import Channel
from meiqia.hookspecs import hookimpl

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _note(name, line):
    with open(os.path.join(HERE, name), "a") as fh:
        fh.write(line + "\\n")


class Pigeon(Channel):
    type = "pigeon"
    name = {"zh-CN": "信鸽", "en": "Pigeon"}

    @staticmethod
    def configuration_schema():
        return {"type": "object", "properties": {"endpoint": {"type": "string"}}}

    def deliver(self, conversation, message):
        _note("sent.log", f"{message.id} {time.time():.3f}")
        return f"out-{message.id}@pigeon"

    def test_connection(self):
        return "ok"


class HangingDesk:
    type = "hanging_desk"
    name = "卡住的工单系统"

    @staticmethod
    def configuration_schema():
        return {"type": "object", "properties": {"url": {"type": "string"}}}

    def create_ticket(self, ticket, config):
        _note("hung.log", f"{ticket['ticket']['id']} {os.getpid()}")
        threading.Event().wait(120)  # hangs: its budget ends the attempt

    def update_ticket(self, ticket, config, changes):
        pass


@hookimpl
def register_channels(app):
    return [Pigeon]


@hookimpl
def register_ticket_sinks(app):
    return [HangingDesk]
'''

N = 3  # hanging deliveries to the one sink
BUDGET = 10.0  # create_ticket's budget: each old attempt held a worker this long
FAST = 6.0  # "within a few seconds"


def lines(path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


@pytest.mark.parametrize("commands", [1, 2])
def test_hanging_sink_deliveries_hold_no_channel_reply_on_rq_workers(
        tmp_path, pg_database_url, redis_url, redis_prefix, workers, commands):
    plugins = tmp_path / "instance" / "plugins"
    plugins.mkdir(parents=True)
    (plugins / "pigeon_desk.py").write_text(PLUGIN)
    hung, sent = tmp_path / "instance" / "hung.log", tmp_path / "instance" / "sent.log"
    config = {"DATABASE_URL": pg_database_url, "REDIS_URL": redis_url,
              "REDIS_PREFIX": redis_prefix, "HOOK_BUDGETS": {"create_ticket": BUDGET},
              "SINK_RETRY_SECONDS": [300], "JOB_RECOVER_SECONDS": 1}
    app = make_app(tmp_path, JOBS_INLINE=False, **config)
    truncate_all(pg_database_url)
    env = meiqia_env(tmp_path, **{**config, "HOOK_BUDGETS": json.dumps(config["HOOK_BUDGETS"]),
                                  "SINK_RETRY_SECONDS": "300"})
    try:
        with app.app_context():
            from meiqia.channels import receive
            from meiqia.channels import registry
            from meiqia.models import Agent
            from meiqia.services import channels as channel_admin

            api = ApiClient.registered(app).without_bot()
            team = api.team["id"]
            admin = Agent.get_by_id(api.agent["id"])
            channel_admin.configure(admin, "pigeon", {"enabled": True, "config": {}})
            agent = api.online_agent()
            made = api.post("/api/v1/ticket-sinks", json={
                "type": "hanging_desk", "name": "desk", "config": {"url": "https://desk.example.cn"}})
            assert made.status_code == 201, made.get_json()

            # A channel customer asks for a person before anything hangs: his
            # conversation, routed to the agent.
            host = registry.make_host(team, "pigeon", app=app)
            cid = receive(host, "pigeon-kehu", "人工", external_message_id="in-1").conversation_id

            for _ in range(commands):
                workers.append(WorkerProcess(env, tmp_path))
            client = app.test_client()
            wait_until(lambda: (q := client.get("/healthz").get_json()["queue"])["workers"]
                       == commands and q.get("urgent_workers", commands) >= commands,
                       timeout=60, what="the workers seen by /healthz")
            for n in range(N):
                created = api.post("/api/v1/tickets", json={"content": f"第{n}张留言"})
                assert created.status_code == 201, created.get_json()
            wait_until(lambda: lines(hung), what="a delivery inside the hanging sink")

            # The agent answers the channel customer while the sink hangs.
            began = time.monotonic()
            reply = agent.post(f"/api/v1/conversations/{cid}/messages",
                               json={"body": "您好，马上为您处理", "client_msg_id": new_client_id()})
            assert reply.status_code == 201, reply.get_json()
            message_id = reply.get_json()["message"]["id"]
            wait_until(lambda: any(line.split()[0] == str(message_id) for line in lines(sent)),
                       timeout=FAST, what="the channel reply sent while the sink hangs")
            took = time.monotonic() - began
            assert took < FAST, took

            # One delivery at a time inside the sink, whatever the processes: the
            # others are refused as busy (with a second worker) or wait their turn.
            # With a second worker, each other delivery waits its 2 s at the gate and is
            # refused: once all are, any that slipped past the gate would be inside.
            if commands > 1:
                busy = wait_until(lambda: len(b := [d for d in SinkDelivery.select()
                                                    if "still busy with another delivery"
                                                    in d.last_error]) == N - 1 and b,
                                  what="the others refused as busy")
                assert all(d.status == "pending" for d in busy)  # retried later
            assert len(lines(hung)) == 1, lines(hung)
    finally:
        close_app(app)
