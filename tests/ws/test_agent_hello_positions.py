"""An agent socket opened without ``after_seq`` starts each conversation where its
``hello`` says it stood: the first live message is ``last_seq + 1``, never
``last_seq`` again, never later.

Found from outside on production (gunicorn gevent, 2 workers, PostgreSQL, Redis;
8 of 480 openings while three visitors wrote): ``hello`` said ``last_seq=410`` and
the first live message was seq 410, which a client that loads history up to
``last_seq`` (docs/protocol.md, "Positions and resume") shows twice. The stream's
starting positions and the ``hello`` lists were read by separate statements, and
under READ COMMITTED a message committed between them was in the lists and came
live too. Now they are read in one snapshot (``db.snapshot_reads``).

The message is committed in that window on purpose, every trial: ``hello``'s lists
are read by ``conversations.lists``, which the test wraps to send a visitor's
message (and wait for its answer) first; meanwhile other visitors write every
30-120 ms. On SQLite, and on PostgreSQL with the socket on one app and the visitors
on another, both on one Redis.
"""

from __future__ import annotations

import random
import threading

import pytest

from meiqia.services import conversations
from meiqia.testing.clients import AgentClient
from meiqia.testing.clients import VisitorClient
from tests.conftest import make_app
from tests.conftest import truncate_all
from tests.ws.conftest import Socket
from tests.ws.conftest import live_apps

TRIALS = 8


@pytest.fixture(params=["sqlite", "postgres-redis"])
def servers(request, tmp_path):
    """(the agent's server, the visitors' server): one app on SQLite; on PostgreSQL
    two apps on one Redis, as two processes of a deployment."""
    settings: dict = {}
    if request.param != "sqlite":
        settings = {"DATABASE_URL": request.getfixturevalue("pg_database_url"),
                    "REDIS_URL": request.getfixturevalue("redis_url"),
                    "REDIS_PREFIX": request.getfixturevalue("redis_prefix")}
    apps = [make_app(tmp_path, **settings)]
    if request.param != "sqlite":
        apps.append(make_app(tmp_path, **settings))
        truncate_all(settings["DATABASE_URL"])
    with live_apps(apps) as lives:
        yield lives[0], lives[-1]


def _row(hello: dict, cid: int) -> dict | None:
    for rows in hello.values():
        for row in rows if isinstance(rows, list) else ():
            if row["id"] == cid:
                return row
    return None


def test_the_first_live_message_follows_hellos_last_seq(servers, monkeypatch):
    agents_server, visitors_server = servers
    admin = AgentClient(agents_server).register()
    admin.set_team_settings(bot_enabled=False)
    admin.patch(f"/api/v1/agents/{admin.agent['id']}", json={"max_concurrent": 50})
    admin.go_online()
    visitors = [VisitorClient(visitors_server, admin.team["id"]).start() for _ in range(3)]
    for n, visitor in enumerate(visitors):
        visitor.send(f"第一句{n}")
    stop = threading.Event()
    errors: list = []

    def write(visitor: VisitorClient, rng: random.Random) -> None:
        count = 0
        while not stop.wait(rng.uniform(0.03, 0.12)):  # a visitor typing, not a wait
            count += 1
            answer = visitor.post(f"/api/v1/widget/conversations/{visitor.conversation_id}"
                                  "/messages", json={"body": f"又一句{count}",
                                                     "client_msg_id": f"bg-{count}"})
            if answer.status != 201:
                errors.append(answer)

    window: dict = {}
    real_lists = conversations.lists

    def lists_after_a_message(actor):
        """The stream's positions are read: a visitor's message commits now."""
        visitor = window.pop("visitor", None)
        if visitor is not None:
            answer = visitor.post(f"/api/v1/widget/conversations/{visitor.conversation_id}"
                                  "/messages", json={"body": "就在这时",
                                                     "client_msg_id": window.pop("id")})
            assert answer.status == 201, answer
        return real_lists(actor)

    monkeypatch.setattr(conversations, "lists", lists_after_a_message)
    writers = [threading.Thread(target=write, args=(v, random.Random(n)), daemon=True)
               for n, v in enumerate(visitors[1:])]
    for thread in writers:
        thread.start()
    try:
        for trial in range(TRIALS):
            racing = visitors[0]
            window["visitor"], window["id"] = racing, f"window-{trial}"
            socket = Socket(agents_server.url("/ws/agent"), admin.cookie_header())
            hello = socket.expect("hello", timeout=15)["data"]
            assert "visitor" not in window  # the message was sent in the window
            for visitor in visitors:
                cid = visitor.conversation_id
                row = _row(hello, cid)
                assert row is not None, (trial, cid)
                first = socket.saw("message", lambda d, c=cid: d["conversation_id"] == c) \
                    or socket.expect("message", timeout=15,
                                     where=lambda d, c=cid: d["conversation_id"] == c)
                # Loaded by HTTP up to last_seq, then live: nothing twice, nothing missing.
                assert first["data"]["seq"] == row["last_seq"] + 1, (
                    trial, cid, row["last_seq"], first["data"]["seq"])
            socket.close()
    finally:
        stop.set()
        for thread in writers:
            thread.join(10)
    assert errors == []
