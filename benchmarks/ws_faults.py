"""Fault runs: delivery through a killed worker, a Redis outage and a PostgreSQL restart.

The production shape on one machine, loopback only: two gunicorn gevent processes
(``deploy/gunicorn.conf.py``, as docs/deploy.md runs them) on a PostgreSQL server and a
Redis server that this script starts for itself on free ports (initdb + pg_ctl in a
temporary directory, ``redis-server --save '' --appendonly no``), so it can kill and
restart them without touching the shared ones. One asyncio process holds VISITORS
visitor sockets and AGENTS agent sockets, written only from docs/protocol.md:

* every message carries a ``client_msg_id`` and stays pending until its ``ack``; an
  ``unavailable`` error is answered by sending it again (same id) half a second later;
* a closed socket reconnects (0.1 s, doubling to 2 s) with ``after_seq=``: the
  highest ``seq`` it has of its conversation (an agent: of each conversation it knows)
  and sends its pending messages again;
* every socket sends a ``ping`` frame every PING seconds (25, as the protocol asks).
  An agent whose client does not is gone for routing once AGENT_HEARTBEAT_SECONDS
  (75) pass without a frame: the presence sweep marks him away and his open chats go
  back to the queue, to the other agents. A run of this script without pings found
  exactly that and took it for a delivery fault (an agent that wrote nothing "missed"
  the messages of his requeued chats).

Half of the conversations are written by their visitor, half by their agent (one writer
per conversation), RATE messages per second in all, while these phases run one after
the other, each followed by a settle of at least SETTLE seconds:

1. ``baseline``: no fault (the reference of the same run);
2. ``worker kill -9``: the gunicorn worker holding the most sockets is SIGKILLed;
   the master starts a new one, its clients reconnect;
3. ``Redis down 10 s``: redis-server is killed, started again on the same port 10 s
   later; ``/healthz`` is polled all along;
4. ``PostgreSQL restart``: ``pg_ctl restart -m fast``.

After each settle, from the database and the clients' own records: **lost** (a
message a client sent that is not stored), **duplicated** (stored twice, or the same
id twice as a ``message`` frame on one client), **undelivered** (a stored message of a
client's conversations that never reached it: its visitor socket (public messages),
and its agent's socket (the messages after it connected), through a ``message`` frame,
the replay, or its own ``ack``), **out of order** (a message id lower than one the
client already had in the same conversation), **agents away** (agents the presence
sweep marked away although their socket stayed open: it must stay 0 as well, since it
moves their chats). Counts are cumulative: each must stay 0.

Run: ``.venv/bin/python benchmarks/ws_faults.py`` (about 2 minutes; ``--no-write``
prints the figures and leaves docs/benchmarks.md alone).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._report import write_section  # noqa: E402
from benchmarks.ws_load import Http  # noqa: E402
from benchmarks.ws_load import bench_team  # noqa: E402
from benchmarks.ws_load import free_port  # noqa: E402
from benchmarks.ws_load import progress  # noqa: E402
from benchmarks.ws_load import start_server  # noqa: E402
from tests.servers import PostgresServer  # noqa: E402
from tests.servers import RedisServer  # noqa: E402

#: Seconds between a client's ``ping`` frames (docs/protocol.md: every 25 s).
PING = 25.0


class Client:
    """One socket as docs/protocol.md asks a client to behave (module docstring)."""

    def __init__(self, url: str, cookie: str | None = None) -> None:
        self.url = url
        self.cookie = cookie
        self.last = 0
        #: (conversation id, message id) in the order they reached the client.
        self.arrivals: list[tuple[int, int]] = []
        self.frames: Counter[int] = Counter()  # message frames per id
        self.own: set[int] = set()  # ids of its own messages (acks)
        self.echoed = 0  # its own message again as a message frame after the ack
        self.refused = 0  # unavailable errors (resent)
        self.pending: dict[str, dict] = {}
        self.sent: dict[str, dict] = {}
        self.ws = None
        self.connects = 0
        self.last_frame = time.monotonic()
        self.start_position = 0
        self.greeted = False  # got its first hello: an agent's starting point
        #: The highest ``seq`` received per conversation: where it resumes from
        #: (docs/protocol.md, "Positions and resume"; an agent's hello rows give
        #: the starting position of every conversation it lists).
        self.positions: dict[int, int] = {}

    def resume_query(self) -> str:
        """``after_seq=`` as the protocol asks: the visitor's one position, or the
        agent's ``cid:seq`` list (nothing yet: start from hello)."""
        if "/ws/visitor" in self.url:
            return f"after_seq={max(self.positions.values(), default=0)}"
        named = ",".join(f"{c}:{s}" for c, s in sorted(self.positions.items())[:200])
        return f"after_seq={named}" if named else ""

    async def run(self, stop: asyncio.Event) -> None:
        from websockets.asyncio.client import connect

        backoff = 0.1
        while not stop.is_set():
            sep = "&" if "?" in self.url else "?"
            try:
                query = self.resume_query()
                async with connect(f"{self.url}{sep}{query}" if query else self.url,
                                   additional_headers={"Cookie": self.cookie} if self.cookie
                                   else None, compression=None, ping_interval=None,
                                   open_timeout=15, max_size=2**24) as ws:
                    self.ws = ws
                    self.connects += 1
                    backoff = 0.1
                    pinger = asyncio.create_task(self.ping(ws))
                    try:
                        for data in list(self.pending.values()):
                            await ws.send(json.dumps({"type": "message", "data": data}))
                        async for raw in ws:
                            self.on_frame(json.loads(raw))
                    finally:
                        pinger.cancel()
            except Exception:  # noqa: BLE001, S110 - any close: reconnect, as the protocol says
                pass
            self.ws = None
            if stop.is_set():
                return
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 2.0)

    @staticmethod
    async def ping(ws) -> None:  # noqa: ANN001 - a websockets connection
        """A ``ping`` frame every PING seconds while this connection lasts."""
        while True:
            await asyncio.sleep(PING)
            await ws.send(json.dumps({"type": "ping", "data": {}}))

    def on_frame(self, frame: dict) -> None:
        self.last_frame = time.monotonic()
        kind, data = frame["type"], frame["data"]
        if kind == "hello":
            self.greeted = True
            for rows in data.values():
                for row in rows if isinstance(rows, list) else []:
                    if isinstance(row, dict) and row.get("last_seq") is not None \
                            and row.get("id") is not None:
                        self.positions.setdefault(row["id"], row["last_seq"])
        message = data.get("message") if kind == "ack" else data if kind == "message" else None
        if message and message.get("seq") is not None and message.get("conversation_id"):
            cid = message["conversation_id"]
            self.positions[cid] = max(self.positions.get(cid, 0), message["seq"])
        if kind == "message" and frame.get("id"):
            mid = frame["id"]
            if mid in self.own:
                self.echoed += 1  # issue 13 item 3, not a delivery fault
                return
            self.frames[mid] += 1
            self.arrivals.append((data.get("conversation_id"), mid))
            self.last = max(self.last, mid)
        elif kind == "ack":
            mid = data["message"]["id"]
            self.pending.pop(data["client_msg_id"], None)
            if mid not in self.own:
                self.own.add(mid)
                if self.frames[mid]:
                    self.echoed += 1  # the message frame came before its ack
                else:
                    self.arrivals.append((data["message"].get("conversation_id"), mid))
            self.last = max(self.last, mid)
        elif kind == "error" and data.get("code") == "unavailable" \
                and data.get("ref") in self.pending:
            self.refused += 1
            asyncio.get_running_loop().call_later(
                0.5, lambda ref=data["ref"]: asyncio.ensure_future(self.resend(ref)))

    async def resend(self, ref: str) -> None:
        if ref in self.pending and self.ws is not None:
            try:
                await self.ws.send(json.dumps({"type": "message", "data": self.pending[ref]}))
            except Exception:  # noqa: BLE001, S110 - resent again after the reconnect
                pass

    async def send(self, data: dict) -> None:
        self.pending[data["client_msg_id"]] = data
        self.sent[data["client_msg_id"]] = data
        if self.ws is not None:
            try:
                await self.ws.send(json.dumps({"type": "message", "data": data}))
            except Exception:  # noqa: BLE001, S110 - pending: sent again on reconnect
                pass


def worker_pids(master: int) -> list[int]:
    text = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return [int(pid) for pid in text]


def sockets_of(pid: int) -> int:
    try:
        return sum(os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
                   for fd in os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def healthz(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def check(clients: dict, stored: list[tuple], handlers: dict[int, int]) -> dict:
    """Cumulative figures from the database rows (id, conversation, visibility,
    client_msg_id) and the clients' records."""
    by_cmid = Counter(row[3] for row in stored if row[3])
    sent = {cmid for c in clients.values() for cmid in c["client"].sent}
    lost = len(sent - set(by_cmid))
    duplicated = sum(n - 1 for n in by_cmid.values() if n > 1)
    undelivered = out_of_order = 0
    for info in clients.values():
        client = info["client"]
        duplicated += sum(n - 1 for n in client.frames.values() if n > 1)
        got = {mid for _, mid in client.arrivals}
        if info["kind"] == "visitor":
            expected = {row[0] for row in stored
                        if row[1] == info["conversation"] and row[2] == "public"}
        else:
            expected = {row[0] for row in stored if handlers.get(row[1]) == info["agent"]
                        and row[0] > client.start_position}
        missing = expected - got
        undelivered += len(missing)
        if missing:
            progress(f"undelivered to {info['kind']} {info.get('conversation') or info['agent']}: "
                     f"{sorted(missing)[:10]}")
        highest: dict[int, int] = {}
        seen: set[int] = set()
        for conv, mid in client.arrivals:
            if mid in seen:
                continue
            seen.add(mid)
            if mid < highest.get(conv, 0):
                out_of_order += 1
            highest[conv] = max(highest.get(conv, 0), mid)
    return {"sent": len(sent), "stored": len(stored), "lost": lost, "duplicated": duplicated,
            "undelivered": undelivered, "out_of_order": out_of_order}


async def run(args: argparse.Namespace, env: dict, port: int, master: int,
              pg: PostgresServer, redis_server: RedisServer) -> list[dict]:
    base = f"http://127.0.0.1:{port}"
    loop = asyncio.get_running_loop()
    admin, data, agents = bench_team(base, "故障演练", args.agents,
                                     args.visitors // args.agents + 1)
    admin.call("PATCH", f"/api/v1/agents/{data['agent']['id']}", {"status": "offline"})
    clients: dict[str, dict] = {}
    for agent_id, cookie in agents.items():
        clients[f"agent-{agent_id}"] = {"kind": "agent", "agent": agent_id, "client": Client(
            f"ws://127.0.0.1:{port}/ws/agent", cookie)}
    stop = asyncio.Event()
    start_max = max_message_id(pg.url)
    tasks = []

    async def open_all(which: list[dict]) -> None:
        """Start these clients and wait for every hello (an agent socket without
        after= starts from its hello: no load before it)."""
        for info in which:
            info["client"].start_position = start_max if info["kind"] == "agent" else 0
            tasks.append(asyncio.create_task(info["client"].run(stop)))
        until = time.monotonic() + 120
        while not all(i["client"].greeted for i in which) and time.monotonic() < until:
            await asyncio.sleep(0.2)

    # Routing serves agents with a workspace open (docs/protocol.md, "Agent
    # presence"): the agents' sockets are open before the visitors arrive.
    await open_all(list(clients.values()))
    await asyncio.sleep(1)
    writers = []
    visitors = []
    for n in range(args.visitors):
        s = await loop.run_in_executor(None, lambda: Http(base).call(
            "POST", "/api/v1/widget/session", {"team_id": data["team"]["id"]}))
        conv = s["conversation"]["conversation_id"]
        client = Client(f"ws://127.0.0.1:{port}/ws/visitor?token={s['token']}")
        clients[f"visitor-{conv}"] = {"kind": "visitor", "conversation": conv, "client": client}
        visitors.append(clients[f"visitor-{conv}"])
        writers.append((conv, n % 2 == 0))  # True: the visitor writes; False: the agent
    await open_all(visitors)
    await asyncio.sleep(1)
    handlers = conversation_handlers(pg.url)
    progress(f"{len(clients)} sockets open, {len(worker_pids(master))} worker processes")

    counter = 0

    async def load(seconds: float) -> None:
        nonlocal counter
        deadline = time.monotonic() + seconds
        interval = 1 / args.rate
        while time.monotonic() < deadline:
            conv, visitor_writes = random.choice(writers)
            counter += 1
            cmid = f"f{counter}"
            if visitor_writes:
                await clients[f"visitor-{conv}"]["client"].send(
                    {"body": f"访客消息 {counter}", "client_msg_id": cmid})
            else:
                agent = clients[f"agent-{handlers[conv]}"]["client"]
                await agent.send({"conversation_id": conv, "body": f"客服回复 {counter}",
                                  "client_msg_id": cmid})
            await asyncio.sleep(interval)

    async def settle() -> None:
        """At least SETTLE seconds, then until every message is acknowledged and no
        frame arrived for 2 s (at most 90 s)."""
        await asyncio.sleep(args.settle)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            c = [info["client"] for info in clients.values()]
            quiet = all(time.monotonic() - x.last_frame > 2 for x in c)
            if quiet and not any(x.pending for x in c):
                return
            await asyncio.sleep(0.5)

    results = []

    async def phase(name: str, fault) -> None:  # noqa: ANN001 - a coroutine function or None
        before = counter
        progress(f"phase: {name}")
        note = ""
        if fault is None:
            await load(args.phase)
        else:
            note = await fault()
        await settle()
        fig = check(clients, stored_rows(pg.url), handlers)
        fig.update(agents_away=agents_away(pg.url, [i["agent"] for i in clients.values()
                                                     if i["kind"] == "agent"]))
        fig.update(phase=name, phase_sent=counter - before, note=note,
                   reconnects=sum(i["client"].connects - 1 for i in clients.values()),
                   refused=sum(i["client"].refused for i in clients.values()),
                   echoed=sum(i["client"].echoed for i in clients.values()))
        progress(str(fig))
        results.append(fig)

    async def kill_worker() -> str:
        loader = asyncio.create_task(load(args.phase))
        await asyncio.sleep(args.phase / 3)
        pids = worker_pids(master)
        victim = max(pids, key=sockets_of)
        held = sockets_of(victim)
        os.kill(victim, signal.SIGKILL)
        await loader
        return f"pid {victim} held {held} sockets; {len(worker_pids(master))} workers after"

    async def redis_down() -> str:
        loader = asyncio.create_task(load(args.phase + args.outage))
        await asyncio.sleep(args.phase / 3)
        redis_server.stop()
        down = time.monotonic()
        codes = []
        while time.monotonic() - down < args.outage:
            codes.append(await loop.run_in_executor(None, healthz, port))
            await asyncio.sleep(0.5)
        await loop.run_in_executor(None, redis_server.start)
        back = time.monotonic()
        while await loop.run_in_executor(None, healthz, port) != 200 \
                and time.monotonic() - back < 30:
            await asyncio.sleep(0.1)
        healthy_after = time.monotonic() - back
        await loader
        return (f"`/healthz` 503 in {codes.count(503)} of {len(codes)} polls during the "
                f"outage; 200 again {healthy_after:.1f} s after Redis was back")

    async def pg_restart() -> str:
        loader = asyncio.create_task(load(args.phase))
        await asyncio.sleep(args.phase / 3)
        began = time.monotonic()
        await loop.run_in_executor(None, pg.restart)
        took = time.monotonic() - began
        await loader
        return f"pg_ctl restart -m fast took {took:.1f} s"

    await phase("baseline (no fault)", None)
    await phase("worker kill -9", kill_worker)
    await phase(f"Redis down {args.outage:g} s", redis_down)
    await phase("PostgreSQL restart", pg_restart)
    stop.set()
    for info in clients.values():
        if info["client"].ws is not None:
            await info["client"].ws.close()
    for task in tasks:
        task.cancel()
    return results


def _query(url: str, sql: str) -> list[tuple]:
    import psycopg2

    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchall()


def stored_rows(url: str) -> list[tuple]:
    return _query(url, "SELECT id, conversation_id, visibility, client_msg_id FROM message "
                       "ORDER BY id")


def agents_away(url: str, agent_ids: list[int]) -> int:
    """How many of these agents (each with a socket open all along) the presence
    sweep has marked away."""
    ids = ",".join(str(int(a)) for a in agent_ids) or "0"
    return _query(url, f"SELECT count(*) FROM agent WHERE id IN ({ids}) "
                       "AND connected = false")[0][0]


def conversation_handlers(url: str) -> dict[int, int]:
    return dict(_query(url, "SELECT id, handler_id FROM conversation"))


def max_message_id(url: str) -> int:
    return _query(url, "SELECT COALESCE(MAX(id), 0) FROM message")[0][0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--visitors", type=int, default=60)
    parser.add_argument("--agents", type=int, default=4)
    parser.add_argument("--rate", type=float, default=60, help="messages per second in all")
    parser.add_argument("--phase", type=float, default=15, help="seconds of load per phase")
    parser.add_argument("--outage", type=float, default=10, help="seconds Redis stays down")
    parser.add_argument("--settle", type=float, default=6,
                        help="seconds after each phase before the check (at least)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-write", action="store_true",
                        help="print the figures, leave docs/benchmarks.md alone")
    args = parser.parse_args()
    random.seed(13)
    tmp = Path(tempfile.mkdtemp(prefix="meiqia-faults-"))
    pg = PostgresServer()
    redis_server = RedisServer(tmp)
    proc = None
    try:
        progress("starting PostgreSQL and Redis of our own")
        pg.init()
        redis_server.start()
        env = {k: v for k, v in os.environ.items() if not k.startswith("MEIQIA_")}
        env.update({"MEIQIA_INSTANCE_PATH": str(tmp), "MEIQIA_SECRET_KEY": "bench",
                    "MEIQIA_LOGIN_MAX_FAILURES": "1000",
                "MEIQIA_LOGIN_RATE_PER_CLIENT": "100000/minute", "MEIQIA_DATABASE_URL": pg.url,
                    "MEIQIA_REDIS_URL": redis_server.url, "MEIQIA_REDIS_PREFIX": "faults",
                    "MEIQIA_BOT_WARM_UP": "false"})
        subprocess.run([sys.executable, "-m", "meiqia.cli", "db", "upgrade"], env=env,
                       cwd=ROOT, check=True, capture_output=True)
        port = free_port()
        proc = start_server(env, port, "gevent", args.workers)
        results = asyncio.run(run(args, env, port, proc.pid, pg, redis_server))
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        redis_server.stop()
        pg.stop()
        kept = Path(tempfile.gettempdir()) / "ws_faults-server.log"
        if (tmp / "server.log").exists():
            shutil.copy(tmp / "server.log", kept)
            progress(f"server log kept: {kept}")
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(results, ensure_ascii=False, indent=1))
    if args.no_write:
        return
    clean = all(r[k] == 0 for r in results
                for k in ("lost", "duplicated", "undelivered", "out_of_order", "agents_away"))
    rows = [f"| {r['phase']} | {r['phase_sent']:,} | {r['stored']:,} | {r['lost']} | "
            f"{r['duplicated']} | {r['undelivered']} | {r['out_of_order']} | "
            f"{r['agents_away']} | "
            f"{r['reconnects']} | {r['refused']} | {r['note']} |" for r in results]
    body = "\n".join([
        f"{args.workers} gunicorn gevent processes (`deploy/gunicorn.conf.py`) on a PostgreSQL "
        "and a Redis server of the run's own, loopback only; one asyncio client process holds "
        f"{args.visitors} visitor and {args.agents} agent sockets that follow docs/protocol.md "
        "(pending until `ack`, resend on `unavailable`, reconnect with `after=` and resend on "
        f"any close, a `ping` every {PING:g} s) and sends {args.rate:g} messages/s, one "
        "writer per conversation (half the visitors, half the agents); sockets are served "
        "after their request (`WS_SERVE_AFTER_REQUEST`, the default). The phases run one after the other, each followed by a "
        "settle; the figures are cumulative from the start of the run, so each fault must "
        f"leave them at 0. **{'0 lost, 0 duplicated, 0 undelivered, 0 out of order, no agent marked away after every fault' if clean else 'Faults left messages behind in this run'}.**",
        "",
        "| phase | sent in the phase | stored (all) | lost | duplicated | undelivered | "
        "out of order | agents away | reconnects (all) | `unavailable`, resent (all) | "
        "what happened |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        f"Own messages also sent to their sender as a `message` frame, besides the `ack` "
        f"(issue 13 item 3, counted apart, not as duplicates): "
        f"{results[-1]['echoed']}.",
    ])
    cmd = ".venv/bin/python benchmarks/ws_faults.py"
    write_section("ws-faults", "Websocket delivery through faults (worker kill -9, Redis down, "
                  "PostgreSQL restart)", cmd, body)


if __name__ == "__main__":
    main()
