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
  are offline in the database, the agent's socket row is ended).
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
    for end in ends:
        assert end is not None
        assert datetime.datetime.fromisoformat(str(end)) <= limit, (end, stopped_at)


def admin_less_session(ws_base: str, team_id: int) -> dict:
    return Http(ws_base.replace("ws://", "http://")).call(
        "POST", "/api/v1/widget/session", {"team_id": team_id})


def test_embedded_server_sends_at_once_drops_and_a_stop(tmp_path):
    server = Embedded(tmp_path, AGENT_AWAY_GRACE_SECONDS="0", WS_SERVE_AFTER_REQUEST="true")
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
                      MEIQIA_AGENT_AWAY_GRACE_SECONDS="0",
                      MEIQIA_WS_SERVE_AFTER_REQUEST="true")
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
