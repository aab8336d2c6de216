"""``meiqia run`` itself (gevent's server, SQLite) under concurrent writers (issue 19).

A real ``meiqia run`` subprocess on a temporary SQLite file, real sockets:

- visitors and an agent write at once, every sender in flight together, many
  rounds: every message is acknowledged, delivered once to the other side and
  stored once; nothing lost or repeated while the writers take turns for
  SQLite's one write lock (``db._WriterTurn``) on one thread;
- another process holds SQLite's write lock past the busy timeout: a visitor's
  message is answered ``unavailable`` (docs/protocol.md), the socket stays open,
  and the same message sent again once the lock is gone is stored once.
"""

from __future__ import annotations

import asyncio
import http.cookiejar
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.helpers import run_coroutine
from tests.helpers import wait_until

ROOT = Path(__file__).resolve().parents[2]
VISITORS = 12
ROUNDS = 6


class Http:
    def __init__(self, base: str) -> None:
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))
        self.csrf = ""

    def call(self, method: str, path: str, body: dict | None = None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method, headers={
            "Content-Type": "application/json", "X-CSRF-Token": self.csrf})
        with self.opener.open(req, timeout=30) as response:
            return json.loads(response.read())

    def cookie(self) -> str:
        return "; ".join(f"{c.name}={c.value}" for c in self.jar)


class Embedded:
    """``meiqia run --port 0`` in a process group of its own, on a fresh instance."""

    def __init__(self, tmp: Path, **settings: str) -> None:
        self.instance = tmp / "instance"
        env = {k: v for k, v in os.environ.items() if not k.startswith("MEIQIA_")}
        env.update({"MEIQIA_INSTANCE_PATH": str(self.instance), "MEIQIA_SECRET_KEY": "embedded",
                    "MEIQIA_BOT_WARM_UP": "false", "PYTHONUNBUFFERED": "1",
                    **{f"MEIQIA_{k}": v for k, v in settings.items()}})
        subprocess.run([sys.executable, "-m", "meiqia.cli", "db", "upgrade"], env=env,
                       cwd=ROOT, check=True, capture_output=True, timeout=300)
        self.log_path = tmp / "run.log"
        self.log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([sys.executable, "-m", "meiqia.cli", "run", "--port", "0"],
                                     env=env, cwd=ROOT, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        # A wait for start-up (importing scikit-learn on a busy machine is slow).
        banner = wait_until(lambda: self.proc.poll() is None and re.search(
            r"on http://127\.0\.0\.1:(\d+)/", self.output()), 120, "the banner of meiqia run")
        assert self.proc.poll() is None, self.output()
        self.port = int(banner.group(1))
        self.base = f"http://127.0.0.1:{self.port}"
        wait_until(lambda: self._healthy(), 60, "/healthz")

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.base + "/healthz", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    @property
    def database(self) -> Path:
        return self.instance / "meiqia.sqlite3"

    def output(self) -> str:
        self.log.flush()
        return self.log_path.read_text()

    def stop(self) -> int | None:
        """Ctrl+C, as a person stops it; returns its exit status."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.log.close()
        return self.proc.returncode


@pytest.fixture
def embedded(tmp_path):
    servers: list[Embedded] = []

    def start(**settings: str) -> Embedded:
        servers.append(Embedded(tmp_path, **settings))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def team(server: Embedded, max_concurrent: int) -> tuple[Http, int, int]:
    admin = Http(server.base)
    data = admin.call("POST", "/api/v1/auth/register", {
        "team_name": "内嵌", "name": "管理员", "email": "admin@example.com",
        "password": "embedded-1"})
    admin.csrf = data["csrf_token"]
    admin.call("PATCH", "/api/v1/team", {"settings": {"bot_enabled": False}})
    admin.call("PATCH", f"/api/v1/agents/{data['agent']['id']}",
               {"status": "online", "max_concurrent": max_concurrent})
    return admin, data["team"]["id"], data["agent"]["id"]


async def frames(ws, into: list[dict]) -> None:
    from websockets.exceptions import ConnectionClosed

    try:
        async for raw in ws:
            into.append(json.loads(raw))
    except ConnectionClosed:
        return


async def send_until_acked(ws, seen: list[dict], kind_data: dict, cid: str) -> dict:
    """Send a frame and wait for its ack; on ``unavailable`` send the same frame
    again (what the widget does, docs/protocol.md). Returns the ack."""
    await ws.send(json.dumps({"type": "message", "data": kind_data}, ensure_ascii=False))
    start = len(seen)
    while True:
        for frame in seen[start:]:
            data = frame["data"]
            if frame["type"] == "ack" and data.get("client_msg_id") == cid:
                return frame
            if frame["type"] == "error" and data.get("ref") == cid:
                assert data["code"] == "unavailable", frame
                start = len(seen)
                await asyncio.sleep(0.2)
                await ws.send(json.dumps({"type": "message", "data": kind_data},
                                         ensure_ascii=False))
                break
        else:
            await asyncio.sleep(0.01)


def stored(database: Path, prefix: str) -> dict[str, int]:
    with sqlite3.connect(database) as conn:
        rows = conn.execute("SELECT client_msg_id, COUNT(*) FROM message "
                            "WHERE client_msg_id LIKE ? GROUP BY client_msg_id",
                            (prefix + "%",)).fetchall()
    return dict(rows)


def test_visitors_and_an_agent_write_at_once_nothing_lost_or_repeated(embedded):
    from websockets.asyncio.client import connect

    server = embedded()
    admin, team_id, _agent_id = team(server, max_concurrent=VISITORS + 5)
    sessions = [Http(server.base).call("POST", "/api/v1/widget/session", {"team_id": team_id})
                for _ in range(VISITORS)]
    ws_base = f"ws://127.0.0.1:{server.port}"

    async def scenario() -> tuple[list[dict], list[list[dict]]]:
        agent = await connect(f"{ws_base}/ws/agent",
                              additional_headers={"Cookie": admin.cookie()},
                              compression=None, ping_interval=None)
        agent_seen: list[dict] = []
        readers = [asyncio.create_task(frames(agent, agent_seen))]
        visitors, visitor_seen = [], []
        for s in sessions:
            ws = await connect(f"{ws_base}/ws/visitor?token={s['token']}", compression=None,
                               ping_interval=None)
            seen: list[dict] = []
            visitors.append(ws)
            visitor_seen.append(seen)
            readers.append(asyncio.create_task(frames(ws, seen)))
        for round_ in range(ROUNDS):
            # Every visitor and the agent (once per conversation) in flight at once.
            sends = []
            for i, (s, ws) in enumerate(zip(sessions, visitors, strict=True)):
                cid = f"v-{i}-{round_}"
                sends.append(send_until_acked(ws, visitor_seen[i],
                                              {"body": f"访客 {i} 第 {round_} 条",
                                               "client_msg_id": cid}, cid))
                conv = s["conversation"]["conversation_id"]
                acid = f"a-{i}-{round_}"
                sends.append(send_until_acked(agent, agent_seen, {
                    "conversation_id": conv, "body": f"客服回 {i} 第 {round_} 条",
                    "client_msg_id": acid}, acid))
            await asyncio.wait_for(asyncio.gather(*sends), 120)

        def complete() -> bool:
            at_agent = {f["data"].get("client_msg_id") for f in agent_seen
                        if f["type"] == "message" and f["data"].get("sender_kind") == "visitor"}
            at_visitors = [{f["data"].get("body") for f in seen
                            if f["type"] == "message" and f["data"].get("sender_kind") == "agent"}
                           for seen in visitor_seen]
            return (len(at_agent) == VISITORS * ROUNDS
                    and all(len(got) == ROUNDS for got in at_visitors))

        deadline = time.monotonic() + 60
        while not complete() and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)  # a duplicate, if any, arrives after its original
        for ws in [agent, *visitors]:
            await ws.close()
        for task in readers:
            task.cancel()
        return agent_seen, visitor_seen

    agent_seen, visitor_seen = run_coroutine(scenario)
    at_agent = [f["data"]["client_msg_id"] for f in agent_seen
                if f["type"] == "message" and f["data"].get("sender_kind") == "visitor"]
    assert sorted(at_agent) == sorted(f"v-{i}-{r}" for i in range(VISITORS)
                                      for r in range(ROUNDS))
    for i, seen in enumerate(visitor_seen):
        # The visitor's view of an agent's message has no client id: by body.
        replies = [f["data"]["body"] for f in seen
                   if f["type"] == "message" and f["data"].get("sender_kind") == "agent"]
        assert sorted(replies) == sorted(f"客服回 {i} 第 {r} 条" for r in range(ROUNDS)), i
        assert not [f for f in seen if f["type"] == "error" and f["data"]["code"] != "unavailable"]
    assert not [f for f in agent_seen if f["type"] == "error"
                and f["data"]["code"] != "unavailable"]
    assert stored(server.database, "v-") == {f"v-{i}-{r}": 1 for i in range(VISITORS)
                                             for r in range(ROUNDS)}
    assert stored(server.database, "a-") == {f"a-{i}-{r}": 1 for i in range(VISITORS)
                                             for r in range(ROUNDS)}
    assert "Traceback" not in server.output()
    assert server.stop() == 0  # Ctrl+C stops it cleanly


def test_a_frame_that_cannot_get_the_write_lock_is_answered_unavailable(embedded):
    from websockets.asyncio.client import connect

    server = embedded(DATABASE_BUSY_TIMEOUT="1")
    _admin, team_id, _agent_id = team(server, max_concurrent=5)
    session = Http(server.base).call("POST", "/api/v1/widget/session", {"team_id": team_id})

    async def scenario() -> tuple[list[dict], str]:
        ws = await connect(f"ws://127.0.0.1:{server.port}/ws/visitor?token={session['token']}",
                           compression=None, ping_interval=None)
        seen: list[dict] = []
        reader = asyncio.create_task(frames(ws, seen))
        while not any(f["type"] == "hello" for f in seen):
            await asyncio.sleep(0.01)
        # Another process (a `meiqia` command, a backup) holds SQLite's write lock.
        holder = sqlite3.connect(server.database, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            await ws.send(json.dumps({"type": "message", "data": {
                "body": "锁住时发送", "client_msg_id": "locked-1"}}, ensure_ascii=False))
            while not any(f["type"] in ("error", "ack") for f in seen) and not ws.close_code:
                await asyncio.sleep(0.05)
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        refusal = next((f for f in seen if f["type"] in ("error", "ack")), None)
        assert ws.close_code is None, ws.close_code  # never 1011: the socket stays
        assert refusal is not None and refusal["type"] == "error", seen
        assert refusal["data"]["code"] == "unavailable" and refusal["data"]["ref"] == "locked-1"
        # Sent again once the lock is gone, as the widget does: stored once.
        ack = await send_until_acked(ws, seen, {"body": "锁住时发送",
                                                "client_msg_id": "locked-1"}, "locked-1")
        await ws.close()
        reader.cancel()
        return seen, ack["data"]["client_msg_id"]

    _seen, acked = run_coroutine(scenario)
    assert acked == "locked-1"
    assert stored(server.database, "locked-") == {"locked-1": 1}
    assert server.stop() == 0


def test_a_url_over_the_servers_limit_is_told_why(embedded):
    """gevent refuses a request line over 8 KB before reading any header; its
    empty 414 now carries our error, in both languages (none was asked for yet)."""
    server = embedded()
    try:
        urllib.request.urlopen(server.base + "/api/v1/team?q=" + urllib.parse.quote("长" * 1000), timeout=10)
        raise AssertionError("a 9 KB request line was taken")
    except urllib.error.HTTPError as refused:
        assert refused.code == 414
        assert refused.headers["Content-Type"] == "application/json; charset=utf-8"
        error = json.loads(refused.read())["error"]
    assert error["code"] == "uri_too_long"
    assert error["message"].startswith("网址太长") and "8,192 bytes" in error["message_en"]


SEED_ENDED = """
import sys
from meiqia import create_app
from meiqia.db import connection
from meiqia.models import Conversation
from tests.factories import make_conversation, make_visitor
import datetime

app = create_app()
with app.app_context(), connection():
    team, handler, n = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    ended = datetime.datetime.utcnow() - datetime.timedelta(hours=1)
    first = make_conversation(team, make_visitor(team, name="导出客户"), handler=handler,
                              ended_at=ended, messages=[("visitor", "发票怎么开", 0)])
    row = Conversation.select().where(Conversation.id == first.id).dicts().get()
    row.pop("id")
    Conversation.insert_many([row] * (n - 1)).execute()
print("seeded", n)
"""


def test_an_export_does_not_hold_the_chats_of_the_embedded_server(embedded):
    """Found from outside: on ``meiqia run`` an export of 3,000 conversations held
    every visitor's ``ack`` (and /healthz) until the file was written: the job's
    rows are CPU work on the server's one thread. The job now yields between rows,
    so a visitor writing while it runs is acknowledged while it is still running
    (an order, read from the database, not a time)."""
    from websockets.asyncio.client import connect

    server = embedded()
    admin, team_id, agent_id = team(server, max_concurrent=2)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEIQIA_")}
    env.update({"MEIQIA_INSTANCE_PATH": str(server.instance), "MEIQIA_SECRET_KEY": "embedded"})
    seeded = subprocess.run([sys.executable, "-c", SEED_ENDED, str(team_id), str(agent_id),
                             "4000"], env=env, cwd=ROOT, capture_output=True, text=True,
                            timeout=300)
    assert seeded.returncode == 0, seeded.stderr
    session = Http(server.base).call("POST", "/api/v1/widget/session", {"team_id": team_id})

    def export_status(export_id: int) -> str:
        with sqlite3.connect(server.database, timeout=30) as db:
            return db.execute("SELECT status FROM export_job WHERE id = ?",
                              (export_id,)).fetchone()[0]

    async def scenario() -> tuple[str, str]:
        seen: list[dict] = []
        async with connect(f"ws://127.0.0.1:{server.port}/ws/visitor?token={session['token']}",
                           compression=None, ping_interval=None) as ws:
            reader = asyncio.create_task(frames(ws, seen))
            export = admin.call("POST", "/api/v1/history/exports",
                                {"format": "xlsx", "with_content": True})
            wait_until(lambda: export_status(export["id"]) in ("running", "done"), 30,
                       "the export job started")
            await send_until_acked(ws, seen, {"body": "导出的时候我还在", "client_msg_id": "during"},
                                   "during")
            during = export_status(export["id"])
            wait_until(lambda: export_status(export["id"]) == "done", 120, "the export done")
            reader.cancel()
            return during, export_status(export["id"])

    during, after = run_coroutine(scenario)
    assert (during, after) == ("running", "done")
