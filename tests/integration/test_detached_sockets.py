"""Sockets served after their request has returned (``meiqia/web/detached_sockets.py``).

Under gevent a socket's frame loop runs in a greenlet of its own once ``hello``
and the replay are sent, and the HTTP request returns. Two servers, real
processes, real sockets:

- ``meiqia run`` (gevent's WSGI server, SQLite) and gunicorn's gevent worker
  with deploy/gunicorn.conf.py (PostgreSQL, Redis);
- the race this opens: the request ends while the client already sends. Each
  client sends a ping and a message the moment it has ``hello``, in several
  rounds of sockets with some dropped at random right after sending: every
  frame of a socket still open is answered (gevent's handler used to read the
  connection "to prevent a reset" as the request ended, and ate them), every
  acknowledged message is stored once and reaches the agent;
- stopping the server (Ctrl+C for ``meiqia run``, SIGTERM, gunicorn's graceful
  stop): every open socket is closed with 1001 ("going away") at once, not
  after gunicorn's graceful timeout, and its handler's end ran (the visitors
  are offline in the database, the agent's socket row is ended);
- a Redis outage longer than an agent's heartbeat, on two gunicorn servers,
  with sockets dropped and resumed in the middle: nothing acknowledged is
  missed, and the agent whose socket stayed open (pinging) keeps his chats.

All run on the default (``WS_SERVE_AFTER_REQUEST``, on).
"""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import random
import signal
import sqlite3
import time

import pytest

from tests.helpers import run_coroutine
from tests.integration.test_embedded_server import Embedded
from tests.integration.test_embedded_server import Http
from tests.integration.test_embedded_server import team
from tests.integration.test_two_processes import Server
from tests.integration.test_two_processes import cluster_env

ROUNDS = 3
VISITORS = 8
#: Until when a conversation's visitor counts as online (his socket's end sets it).
VISITOR_ONLINE_UNTIL = ("SELECT v.online_until FROM visitor v JOIN conversation c "
                        "ON c.visitor_id = v.id WHERE c.id = %s")


async def _read(ws, into: list[dict], closed: dict) -> None:
    from websockets.exceptions import ConnectionClosed

    try:
        async for raw in ws:
            into.append(json.loads(raw))
    except ConnectionClosed:
        pass
    closed["code"] = ws.close_code


async def _until(predicate, seconds: float = 60) -> None:
    """Wait for ``predicate`` (a wait, not a timing assertion)."""
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


def scenario(ws_base: str, admin: Http, team_id: int, stop) -> dict:
    """Rounds of sockets that send at once after ``hello``, some dropped; then
    a stop of the server with the last round's sockets open."""
    from websockets.asyncio.client import connect

    rng = random.Random(19)
    result: dict = {"acked": set(), "open_visitors": [], "closed": []}

    async def run() -> None:
        agent = await connect(f"{ws_base}/ws/agent", additional_headers={"Cookie": admin.cookie()},
                              compression=None, ping_interval=None)
        agent_seen: list[dict] = []
        agent_closed: dict = {}
        tasks = [asyncio.create_task(_read(agent, agent_seen, agent_closed))]
        await _until(lambda: any(f["type"] == "hello" for f in agent_seen))
        for round_ in range(ROUNDS):
            last = round_ == ROUNDS - 1
            sockets = []
            for i in range(VISITORS):
                session = admin_less_session(ws_base, team_id)
                ws = await connect(f"{ws_base}/ws/visitor?token={session['token']}",
                                   compression=None, ping_interval=None)
                seen: list[dict] = []
                closed: dict = {}
                # The first frame read is hello: send at once, while the request that
                # opened the socket may still be returning on the server.
                first = json.loads(await asyncio.wait_for(ws.recv(), 30))
                assert first["type"] == "hello", first
                cid = f"r{round_}-v{i}"
                await ws.send(json.dumps({"type": "ping", "data": {}}))
                await ws.send(json.dumps({"type": "message", "data": {
                    "body": f"第 {round_} 轮 访客 {i}", "client_msg_id": cid}},
                    ensure_ascii=False))
                tasks.append(asyncio.create_task(_read(ws, seen, closed)))
                drop = not last and rng.random() < 0.3
                if drop:  # gone the moment it sent: its message may or may not be stored
                    await ws.close()
                sockets.append((ws, seen, closed, cid, drop, session))
            for _ws, seen, closed, cid, drop, session in sockets:
                if drop:
                    continue
                await _until(lambda seen=seen, cid=cid: any(
                    f["type"] == "ack" and f["data"].get("client_msg_id") == cid for f in seen)
                    and any(f["type"] == "pong" for f in seen))
                result["acked"].add(cid)
                if last:
                    result["open_visitors"].append((session["conversation"]["conversation_id"], closed))
        await _until(lambda: result["acked"] <= {
            f["data"].get("client_msg_id") for f in agent_seen if f["type"] == "message"})
        # Stop the server with the last round's sockets and the agent open.
        stop()
        await _until(lambda: agent_closed and all(c for _, c in result["open_visitors"]), 60)
        result["closed"] = [agent_closed["code"]] + [c["code"] for _, c in result["open_visitors"]]
        for task in tasks:
            task.cancel()

    run_coroutine(run)
    return result


def check_after_stop(query, result: dict, stopped_at: datetime.datetime) -> None:
    """What the database says after the stop (``query(sql, args)`` → rows, in
    PostgreSQL's placeholders): every acknowledged message stored once, nothing
    twice; the open sockets' visitors offline and the agent's socket row ended
    (no grace in these tests) at the stop, not at their heartbeat's end."""
    stored = dict(query("SELECT client_msg_id, COUNT(*) FROM message "
                        "WHERE client_msg_id LIKE 'r%%' GROUP BY client_msg_id", ()))
    assert all(stored.get(cid) == 1 for cid in result["acked"]), stored
    assert set(stored.values()) == {1}
    limit = stopped_at + datetime.timedelta(seconds=5)
    ends = [until for conversation_id, _ in result["open_visitors"]
            for (until,) in query(VISITOR_ONLINE_UNTIL, (conversation_id,))]
    ends += [alive for (alive,) in query("SELECT MAX(alive_until) FROM agent_socket", ())]
    assert len(ends) == VISITORS + 1
    for end in ends[:-1]:  # a visitor told offline at his close has none (NULL)
        assert end is None or datetime.datetime.fromisoformat(str(end)) <= limit, (
            end, stopped_at)
    assert ends[-1] is not None  # the agent's socket row, ended at the stop
    assert datetime.datetime.fromisoformat(str(ends[-1])) <= limit, (ends[-1], stopped_at)


def admin_less_session(ws_base: str, team_id: int) -> dict:
    return Http(ws_base.replace("ws://", "http://")).call(
        "POST", "/api/v1/widget/session", {"team_id": team_id})


def test_embedded_server_sends_at_once_drops_and_a_stop(tmp_path):
    server = Embedded(tmp_path, AGENT_AWAY_GRACE_SECONDS="0")  # the default serves after
    try:
        admin, team_id, _agent = team(server, max_concurrent=ROUNDS * VISITORS + 5)
        stopped_at: list[datetime.datetime] = []

        def stop() -> None:
            stopped_at.append(datetime.datetime.utcnow())
            os.killpg(server.proc.pid, signal.SIGINT)

        result = scenario(f"ws://127.0.0.1:{server.port}", admin, team_id, stop)
        assert server.proc.wait(timeout=60) == 0
        assert result["closed"] == [1001] * (1 + VISITORS)
        output = server.output()
        assert "Traceback" not in output, output
        with sqlite3.connect(server.database) as conn:
            check_after_stop(lambda sql, args: conn.execute(
                sql.replace("%s", "?").replace("%%", "%"), args).fetchall(),
                result, stopped_at[0])
    finally:
        server.stop()


@pytest.mark.usefixtures("redis_url")
def test_gunicorn_gevent_sends_at_once_drops_and_a_graceful_stop(
        tmp_path, pg_database_url, redis_url, redis_prefix):
    env = cluster_env(tmp_path, pg_database_url, redis_url, redis_prefix,
                      MEIQIA_AGENT_AWAY_GRACE_SECONDS="0")
    server = Server(env, tmp_path, "a")
    try:
        class Base:
            base = server.url("")

        admin, team_id, _agent = team(Base, max_concurrent=ROUNDS * VISITORS + 5)
        stopped_at: list[datetime.datetime] = []

        def stop() -> None:
            stopped_at.append(datetime.datetime.utcnow())
            # SIGTERM: gunicorn's graceful stop (graceful_timeout 30 s): the sockets
            # are closed by the worker's exit, not waited for.
            os.killpg(server.proc.pid, signal.SIGTERM)

        result = scenario(server.ws(""), admin, team_id, stop)
        assert server.proc.wait(timeout=60) == 0
        assert result["closed"] == [1001] * (1 + VISITORS)
        output = server.output()
        assert "Traceback" not in output, output
        assert "closing" in output and "open websockets" in output
        from playhouse.db_url import connect as db_connect

        db = db_connect(pg_database_url)
        try:
            check_after_stop(lambda sql, args: db.execute_sql(sql, args).fetchall(),
                             result, stopped_at[0])
        finally:
            db.close()
    finally:
        server.stop()


#: Seconds of the Redis outage, and the agents' heartbeat in that test: the outage
#: outlasts a heartbeat, so an agent whose pings were lost would be swept away.
OUTAGE = 7.0
HEARTBEAT = 4


@pytest.mark.usefixtures("pg_database_url")
def test_a_redis_outage_with_sockets_served_after_their_request(tmp_path, pg_database_url,
                                                                 own_redis):
    """The short version of ``benchmarks/ws_faults.py``'s Redis phase, on the default
    (no setting: gevent serves sockets after their request): two gunicorn gevent
    servers on one PostgreSQL, Redis killed for longer than an agent's heartbeat
    while visitors on both servers and their agent write, some visitors dropped and
    reconnecting with ``after_seq`` in the middle of it. Every client pings as the
    protocol asks. Once Redis is back: every acknowledged message reached the other
    side once and in order, and the agent, whose socket stayed open, was never taken
    for gone (still connected, still handling every chat)."""
    env = cluster_env(tmp_path, pg_database_url, own_redis.url, "outage",
                      MEIQIA_AGENT_AWAY_GRACE_SECONDS="0",
                      MEIQIA_AGENT_HEARTBEAT_SECONDS=str(HEARTBEAT),
                      MEIQIA_REDIS_TIMEOUT="0.3")
    servers = [Server(env, tmp_path, "a"), Server(env, tmp_path, "b")]
    try:
        class Base:
            base = servers[0].url("")

        admin, team_id, agent_id = team(Base, max_concurrent=VISITORS + 5)

        def check(acked: set[str]) -> None:
            """The database while every socket is still open (closing the agent's
            would end his presence: no grace in this test)."""
            from playhouse.db_url import connect as db_connect

            db = db_connect(pg_database_url)
            try:
                connected = db.execute_sql("SELECT connected FROM agent WHERE id = %s",
                                           (agent_id,)).fetchone()[0]
                handlers = {h for (h,) in db.execute_sql(
                    "SELECT DISTINCT handler_id FROM conversation").fetchall()}
                stored = dict(db.execute_sql(
                    "SELECT client_msg_id, COUNT(*) FROM message "
                    "WHERE client_msg_id IS NOT NULL GROUP BY client_msg_id").fetchall())
            finally:
                db.close()
            assert connected is True
            assert handlers == {agent_id}
            assert acked and all(stored.get(c) == 1 for c in acked), stored

        run_coroutine(lambda: _outage(servers, admin, team_id, own_redis, check))
        for server in servers:
            assert "Traceback" not in server.output(), server.output()
    finally:
        for server in servers:
            server.stop()


async def _pinging(ws) -> None:
    """A ``ping`` frame every second (the heartbeat is HEARTBEAT s in this test)."""
    from websockets.exceptions import ConnectionClosed

    try:
        while True:
            await asyncio.sleep(1)
            await ws.send(json.dumps({"type": "ping", "data": {}}))
    except ConnectionClosed:
        return


class _Visitor:
    """A visitor socket that reconnects with ``after_seq`` when told to drop, and
    sends again what was not acknowledged (docs/protocol.md)."""

    def __init__(self, base: str, token: str) -> None:
        self.base, self.token = base, token
        self.seen: list[dict] = []
        self.sent: dict[str, dict] = {}
        self.ws = None
        self.reader: asyncio.Task | None = None
        self.tasks: list[asyncio.Task] = []

    def position(self) -> int:
        seqs = [f["data"].get("seq") or 0 for f in self.seen if f["type"] == "message"]
        seqs += [f["data"]["message"].get("seq") or 0 for f in self.seen if f["type"] == "ack"]
        return max(seqs, default=0)

    async def connect(self) -> None:
        from websockets.asyncio.client import connect

        self.ws = await connect(f"{self.base}/ws/visitor?token={self.token}&after_seq="
                                f"{self.position()}", compression=None, ping_interval=None)
        self.reader = asyncio.create_task(_read(self.ws, self.seen, {}))
        self.tasks += [self.reader, asyncio.create_task(_pinging(self.ws))]
        acked = {f["data"].get("client_msg_id") for f in self.seen if f["type"] == "ack"}
        for ref, data in self.sent.items():
            if ref not in acked:
                await self.ws.send(json.dumps({"type": "message", "data": data},
                                              ensure_ascii=False))

    async def send(self, data: dict) -> None:
        self.sent[data["client_msg_id"]] = data
        await self.ws.send(json.dumps({"type": "message", "data": data}, ensure_ascii=False))

    async def drop_and_return(self) -> None:
        """Close, read what the old socket still had, reconnect from there."""
        await self.ws.close()
        await self.reader
        await self.connect()


def _agent_body(ref: str) -> str:
    return f"客服回复 {ref}"


async def _outage(servers: list, admin: Http, team_id: int, redis, check) -> None:
    from websockets.asyncio.client import connect

    rng = random.Random(23)
    loop = asyncio.get_running_loop()
    agent = await connect(servers[0].ws("/ws/agent"), additional_headers={
        "Cookie": admin.cookie()}, compression=None, ping_interval=None)
    agent_seen: list[dict] = []
    tasks = [asyncio.create_task(_read(agent, agent_seen, {})),
             asyncio.create_task(_pinging(agent))]
    await _until(lambda: any(f["type"] == "hello" for f in agent_seen))
    visitors: dict[int, _Visitor] = {}
    for i in range(VISITORS):
        server = servers[i % 2]
        session = await loop.run_in_executor(None, admin_less_session, server.ws(""), team_id)
        visitor = _Visitor(server.ws(""), session["token"])
        await visitor.connect()
        visitors[session["conversation"]["conversation_id"]] = visitor
    acked: set[str] = set()
    from_visitors: dict[int, list[str]] = {cid: [] for cid in visitors}
    from_agent: dict[int, list[str]] = {cid: [] for cid in visitors}

    async def write(n: int, agent_answers: bool = True) -> None:
        """Each conversation: the visitor writes, then the agent answers."""
        for cid, visitor in visitors.items():
            mine = f"v{n}-{cid}"
            await visitor.send({"body": f"访客 {n}", "client_msg_id": mine})
            from_visitors[cid].append(mine)
            if not agent_answers:
                continue
            theirs = f"a{n}-{cid}"
            await agent.send(json.dumps({"type": "message", "data": {
                "conversation_id": cid, "body": _agent_body(theirs), "client_msg_id": theirs}},
                ensure_ascii=False))
            from_agent[cid].append(theirs)

    def ack_of(seen: list[dict], ref: str) -> bool:
        return any(f["type"] == "ack" and f["data"].get("client_msg_id") == ref for f in seen)

    await write(0)
    redis.stop()
    began = time.monotonic()
    n = 1
    while time.monotonic() - began < OUTAGE:
        # The agent answers at the outage's start only: for the rest of it (longer
        # than his heartbeat) his pings are his only sign of life.
        await write(n, agent_answers=n == 1)
        n += 1
        for visitor in rng.sample(list(visitors.values()), 2):
            await visitor.drop_and_return()
        await asyncio.sleep(0.5)
    await loop.run_in_executor(None, redis.start)
    await write(n)
    # Everything acknowledged (the database is the truth, Redis or not)...
    for cid, visitor in visitors.items():
        for ref in from_visitors[cid]:
            await _until(lambda v=visitor, ref=ref: ack_of(v.seen, ref))
            acked.add(ref)
        for ref in from_agent[cid]:
            await _until(lambda ref=ref: ack_of(agent_seen, ref))
            acked.add(ref)

    def messages(seen: list[dict], cid: int) -> list[dict]:
        return [f["data"] for f in seen if f["type"] == "message"
                and f["data"].get("conversation_id") == cid]

    # ... then delivered to the other side: once each, in seq order.
    for cid, visitor in visitors.items():
        await _until(lambda cid=cid: {m.get("client_msg_id") for m in messages(
            agent_seen, cid)} >= set(from_visitors[cid]))
        # A visitor is not shown the agent's client_msg_id: his answers by their text.
        await _until(lambda v=visitor, cid=cid: {m.get("body") for m in messages(
            v.seen, cid)} >= {_agent_body(ref) for ref in from_agent[cid]})
        for seen in (agent_seen, visitor.seen):
            seqs = [m["seq"] for m in messages(seen, cid)]
            assert seqs == sorted(set(seqs)), (cid, seqs)
    await loop.run_in_executor(None, check, acked)
    for ws in [agent, *(v.ws for v in visitors.values())]:
        await ws.close()
    for task in tasks + [t for v in visitors.values() for t in v.tasks]:
        task.cancel()
    await asyncio.gather(*tasks, *(t for v in visitors.values() for t in v.tasks),
                         return_exceptions=True)
