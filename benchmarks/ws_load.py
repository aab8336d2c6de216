"""Websocket load: many visitor and agent sockets, sustained messages, a reconnect storm.

Starts meiqia on the embedded default (SQLite, in-process hub, ``meiqia run``
itself: gevent's WSGI server) or with ``--production`` on PostgreSQL +
Redis (gunicorn with ``deploy/gunicorn.conf.py``: the gevent worker class,
``--workers`` processes), opens VISITORS visitor sockets and AGENTS agent
sockets from one asyncio client process, then:

1. sends RATE visitor messages per second for DURATION seconds; each is stored,
   published and delivered to the handling agent's socket; the benchmark counts
   every message at the agent (lost, duplicated) and times send → delivery;
2. drops RECONNECT visitor sockets, has agents write to each of those
   conversations, and reconnects them all within 10 s with ``after=<last id>``:
   each must get exactly its missed message;
3. reads the server's RSS before and after the sockets open (memory per socket)
   and its CPU time over the sustained phase (CPU per message);
4. counts the visitor messages stored in the database: each sent message must
   be stored exactly once;
5. in the same run, measures a bare asyncio ``websockets`` echo server with the
   same client (sockets held, memory per socket, echo throughput): our distance
   from the limit (``--reference`` runs only that part).

``--deflate``: the clients offer permessage-deflate, as every browser does (the
server declines it: docs/protocol.md "No compression").

Run: ``.venv/bin/python benchmarks/ws_load.py [--production [--workers 2]]``
(defaults: 2,000 visitors, 50 agents, 300 msg/s for 300 s, 500 reconnects).
Only 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._report import write_section  # noqa: E402

ECHO = '''
import asyncio, sys
from websockets.asyncio.server import serve
async def echo(ws):
    async for m in ws:
        await ws.send(m)
async def main():
    async with serve(echo, "127.0.0.1", int(sys.argv[1]), compression=None, max_queue=64):
        await asyncio.get_running_loop().create_future()
asyncio.run(main())
'''


def built_in_plugins() -> list[str]:
    """The entry points meiqia itself installs. The examples/ packages are in the
    development venv too (``make .venv/.installed``); a server loads every
    installed entry point, so without this list the benchmark measured six
    example plugins (an event log of every event, a routing plugin asked on
    every assignment, an answerer) on every message."""
    from importlib.metadata import entry_points

    return sorted(ep.name for ep in entry_points(group="meiqia")
                  if ep.value.startswith("meiqia."))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found += [int(child) for child in text]
    return found


def rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants (gunicorn workers)."""
    total = 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            total += int(line.split()[1]) / 1024
    for child in _children(pid):
        try:
            total += rss_mb(child)
        except FileNotFoundError:
            pass
    return total


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its descendants, in seconds."""
    ticks = os.sysconf("SC_CLK_TCK")
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    total = (int(fields[11]) + int(fields[12])) / ticks
    for child in _children(pid):
        try:
            total += cpu_seconds(child)
        except FileNotFoundError:
            pass
    return total


def stored_count(env: dict) -> int:
    """Visitor messages of the sustained phase in the database (client ids ``b…``)."""
    sql = ("SELECT COUNT(*) FROM message WHERE sender_kind = 'visitor' "
           "AND client_msg_id LIKE 'b%'")
    url = env.get("MEIQIA_DATABASE_URL", "")
    if url.startswith("postgres"):
        import psycopg2

        with psycopg2.connect(url) as conn, conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchone()[0]
    import sqlite3

    path = Path(env["MEIQIA_INSTANCE_PATH"]) / "meiqia.sqlite3"
    with sqlite3.connect(path) as conn:
        return conn.execute(sql).fetchone()[0]


class MinuteWatch(threading.Thread):
    """What else happened in each minute of the sustained phase, to explain a
    minute whose tail is slow: the server's CPU (cores busy), the machine's load
    average at the minute's end and, on PostgreSQL, the seconds in which an
    autovacuum worker ran on the run's database and on which tables (sampled
    once a second from ``pg_stat_activity``)."""

    def __init__(self, env: dict, pid: int, start: float) -> None:
        super().__init__(daemon=True)
        self.url = env.get("MEIQIA_DATABASE_URL", "")
        self.pid, self.t0 = pid, start
        self.stop = threading.Event()
        #: minute -> {"cores": float, "load": float, "vacuum_s": int, "tables": set}
        self.minutes: dict[int, dict] = {}

    def _minute(self, m: int) -> dict:
        return self.minutes.setdefault(m, {"cores": 0.0, "load": 0.0, "vacuum_s": 0,
                                            "tables": set()})

    def run(self) -> None:
        cur = None
        if self.url.startswith("postgres"):
            import psycopg2

            conn = psycopg2.connect(self.url)
            conn.autocommit = True
            cur = conn.cursor()
        cpu_then, minute_then = cpu_seconds(self.pid), 0
        while not self.stop.wait(1.0):
            m = int((time.perf_counter() - self.t0) // 60)
            if m != minute_then:
                cpu_now = cpu_seconds(self.pid)
                row = self._minute(minute_then)
                row["cores"] = (cpu_now - cpu_then) / 60
                row["load"] = os.getloadavg()[0]
                cpu_then, minute_then = cpu_now, m
            if cur is not None:
                cur.execute("SELECT query FROM pg_stat_activity WHERE datname = "
                            "current_database() AND backend_type = 'autovacuum worker'")
                found = [q for (q,) in cur.fetchall()]
                if found:
                    row = self._minute(m)
                    row["vacuum_s"] += 1
                    row["tables"].update(q.split(" ")[-1] for q in found if q)

    def text(self, m: int) -> str:
        row = self.minutes.get(m)
        if row is None:
            return ""
        vacuum = (f", autovacuum {row['vacuum_s']} s ({', '.join(sorted(row['tables']))})"
                  if row["vacuum_s"] else "")
        return f", server {row['cores']:.2f} cores, load {row['load']:.1f}{vacuum}"


class Http:
    def __init__(self, base: str) -> None:
        import http.cookiejar

        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))
        self.csrf = ""

    def call(self, method: str, path: str, body: dict | None = None) -> dict:
        req = urllib.request.Request(self.base + path, method=method,
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Content-Type": "application/json",
                                              "X-CSRF-Token": self.csrf})
        with self.opener.open(req, timeout=30) as r:
            return json.loads(r.read())

    def cookie(self) -> str:
        return "; ".join(f"{c.name}={c.value}" for c in self.jar)


def bench_team(base: str, team_name: str, agents: int, per_agent: int
               ) -> tuple[Http, dict, dict[int, str]]:
    """Register a team on a running server, the bot off, and ``agents`` agents set
    online taking up to ``per_agent`` chats each: (the admin's client, the
    registration answer, {agent id: his session cookie}). The ws benchmarks share
    it; routing serves an agent once his workspace socket is open."""
    admin = Http(base)
    data = admin.call("POST", "/api/v1/auth/register", {
        "team_name": team_name, "name": "管理员", "email": "admin@example.com",
        "password": "bench-pass-1"})
    admin.csrf = data["csrf_token"]
    admin.call("PATCH", "/api/v1/team", {"settings": {"bot_enabled": False}})
    cookies: dict[int, str] = {}
    for n in range(agents):
        made = admin.call("POST", "/api/v1/agents", {
            "name": f"客服{n}", "email": f"a{n}@example.com", "password": "bench-pass-1",
            "max_concurrent": per_agent, "status": "online"})
        h = Http(base)
        h.call("POST", "/api/v1/auth/login", {"email": f"a{n}@example.com",
                                              "password": "bench-pass-1"})
        cookies[made["id"]] = h.cookie()
    return admin, data, cookies


def server_command(server: str, workers: int, port: int) -> list[str]:
    """``embedded`` is ``meiqia run``; ``gthread``/``gevent`` are gunicorn with
    ``deploy/gunicorn.conf.py``, as docs/deploy.md runs it."""
    if server in ("embedded", "threads"):
        # Exactly what `meiqia run` starts (gevent's server since issue 19);
        # ``threads``: the same command on Werkzeug's threaded server, as before.
        return [sys.executable, "-m", "meiqia.cli", "run", "--port", str(port)]
    return [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "deploy" / "gunicorn.conf.py"),
            "-k", server, "-w", str(workers), "-b", f"127.0.0.1:{port}",
            "--access-logfile", "/dev/null", "meiqia.wsgi:app"]


def start_server(env: dict, port: int, server: str = "embedded",
                 workers: int = 1) -> subprocess.Popen:
    log = open(Path(env.get("MEIQIA_INSTANCE_PATH", tempfile.gettempdir())) / "server.log", "ab")
    if server == "threads":
        env = {**env, "MEIQIA_EMBEDDED_SERVER": "threads"}
    proc = subprocess.Popen(server_command(server, workers, port), env=env, cwd=ROOT,
                            stdout=log, stderr=log)
    print(f"server log: {log.name}", file=sys.stderr)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return proc
        except OSError:
            time.sleep(0.3)
    raise SystemExit("server did not start")


async def run_load(args: argparse.Namespace, port: int, pid: int, env: dict) -> dict:
    from websockets.asyncio.client import connect

    base = f"http://127.0.0.1:{port}"
    admin, data, agent_cookies = bench_team(base, "压测", args.agents,
                                            args.visitors // args.agents + 1)
    team_id = data["team"]["id"]
    base_rss = rss_mb(pid)

    received: dict[str, list[float]] = {}
    sent_at: dict[str, float] = {}

    # Twice at one agent socket is a duplicate; at several agents it is not (a
    # conversation still in the bot's or the queue's hands is the team's pool,
    # which every agent sees). Latency counts the first arrival anywhere.
    seen_at_agent: set[tuple[int, str]] = set()
    duplicates = 0

    async def agent_reader(ws):
        nonlocal duplicates
        async for raw in ws:
            frame = json.loads(raw)
            if frame["type"] == "message" and frame["data"].get("sender_kind") == "visitor":
                cid = frame["data"].get("client_msg_id")
                if cid in sent_at:
                    if (id(ws), cid) in seen_at_agent:
                        duplicates += 1
                        continue
                    seen_at_agent.add((id(ws), cid))
                    received.setdefault(cid, []).append(time.perf_counter())

    loop = asyncio.get_running_loop()

    async def open_sessions() -> list[dict]:
        progress(f"opening {args.visitors} visitor sessions")
        opened = []
        for _ in range(args.visitors):
            opened.append(await loop.run_in_executor(None, lambda: Http(base).call(
                "POST", "/api/v1/widget/session", {"team_id": team_id})))
        return opened

    # The agents' workspaces open first, as in a team's day: each visitor's chat is
    # then routed as his session starts (the bot is off), and the sustained phase
    # below measures the chat itself. ``--sessions-first``: the other way round, and
    # the first 2,000 messages of the load each route a chat.
    sessions = await open_sessions() if args.sessions_first else []
    # ``--deflate``: offer permessage-deflate, as every browser does.
    offer = "deflate" if args.deflate else None
    agents = []
    for cookie in agent_cookies.values():
        ws = await connect(f"ws://127.0.0.1:{port}/ws/agent", additional_headers={"Cookie": cookie},
                           compression=offer, max_size=2**22, ping_interval=None,
                           open_timeout=60)
        await ws.recv()
        agents.append((ws, asyncio.create_task(agent_reader(ws))))
    visitors: list = []
    # Pings from now on, visitors' as they open (the list grows under the task).
    heartbeat = asyncio.create_task(heartbeats([ws for ws, _ in agents], visitors))
    progress(f"{args.agents} agents connected")
    if not args.sessions_first:
        sessions = await open_sessions()
    last_id: dict[int, int] = {}
    for s in sessions:
        ws = await connect(f"ws://127.0.0.1:{port}/ws/visitor?token={s['token']}",
                           compression=offer, ping_interval=None, open_timeout=60)
        await ws.recv()
        visitors.append(ws)
    await asyncio.sleep(2)
    held_rss = rss_mb(pid)
    progress(f"{len(visitors) + len(agents)} sockets open; "
             f"{args.rate:g} msg/s for {args.duration:g} s")

    bodies: dict[str, str] = {}
    resent: list[str] = []

    async def resend(ws, cid):
        """What the widget does with an 'unavailable' refusal (docs/protocol.md): the
        same message, same client id, a second later. Latency still counts from the
        first send."""
        await asyncio.sleep(1)
        resent.append(cid)
        try:
            await ws.send(json.dumps({"type": "message", "data": {
                "body": bodies[cid], "client_msg_id": cid}}))
        except Exception:  # noqa: BLE001 - the socket closed meanwhile: counted as lost
            return

    async def drain(ws, index):
        try:
            async for raw in ws:
                frame = json.loads(raw)
                if frame["type"] == "message" and frame.get("id"):
                    last_id[index] = max(last_id.get(index, 0), frame["id"])
                elif frame["type"] == "error" and frame["data"].get("code") == "unavailable" \
                        and frame["data"].get("ref") in bodies:
                    asyncio.create_task(resend(ws, frame["data"]["ref"]))
        except Exception:  # noqa: BLE001 - closed on purpose in phase 2
            return

    drains = [asyncio.create_task(drain(ws, i)) for i, ws in enumerate(visitors)]
    # Phase 1: sustained load. Sockets the server breaks are counted, not fatal.
    broken: dict[int, str] = {}
    interval = 1.0 / args.rate
    cpu_before = cpu_seconds(pid)
    start = time.perf_counter()
    n = 0
    # The server's RSS at the end of each minute: whether memory holds or grows.
    rss_minutes: list[float] = []
    watch = MinuteWatch(env, pid, start)
    watch.start()
    while time.perf_counter() - start < args.duration:
        if time.perf_counter() - start >= 60 * (len(rss_minutes) + 1):
            rss_minutes.append(rss_mb(pid))
        i = random.randrange(len(visitors))
        if i in broken:
            continue
        cid = f"b{uuid.uuid4().hex[:16]}"
        try:
            await visitors[i].send(json.dumps({"type": "message", "data": {
                "body": f"压测消息 {n}", "client_msg_id": cid}}))
        except Exception as exc:  # noqa: BLE001 - counted and reported
            broken[i] = repr(exc)[:200]
            continue
        sent_at[cid] = time.perf_counter()
        bodies[cid] = f"压测消息 {n}"
        n += 1
        target = start + n * interval
        delay = target - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
    elapsed = time.perf_counter() - start
    achieved = n / elapsed
    await asyncio.sleep(5)
    cpu_used = cpu_seconds(pid) - cpu_before
    watch.stop.set()
    progress(f"sustained phase done: {n} sent, {len(received)} delivered")
    lat = [(times[0] - sent_at[c]) * 1000 for c, times in received.items()]
    # Delivery by minute of the run: whether latency holds or drifts as the run goes on.
    by_minute: dict[int, list[float]] = {}
    for c, times in received.items():
        by_minute.setdefault(int((sent_at[c] - start) // 60), []).append(
            (times[0] - sent_at[c]) * 1000)
    minutes = [(m, float(np.percentile(v, 50)), float(np.percentile(v, 95)),
                float(np.percentile(v, 99))) for m, v in sorted(by_minute.items())]
    for m, p50, p95, p99 in minutes:
        rss_then = f", RSS {rss_minutes[m]:.0f} MB" if m < len(rss_minutes) else ""
        progress(f"minute {m + 1}: p50 {p50:.1f} / p95 {p95:.1f} / p99 {p99:.1f} ms{rss_then}{watch.text(m)}")
    lost = len(sent_at) - len(received)
    dup = duplicates

    # Phase 2: reconnect storm.
    storm = [i for i in range(len(visitors)) if i not in broken][:args.reconnect]
    for i in storm:
        await visitors[i].close()
    admin_ws_cookie = admin.cookie()
    missed_body = {}
    for i in storm:
        conv = sessions[i]["conversation"]["conversation_id"]
        body = f"断线补发 {i}"
        missed_body[i] = body
        await loop.run_in_executor(None, lambda c=conv, b=body: admin.call(
            "POST", f"/api/v1/conversations/{c}/messages", {"body": b, "mode": "reply",
                                                          "client_msg_id": f"missed-{c}"}))
    _ = admin_ws_cookie
    ok = 0
    t0 = time.perf_counter()

    async def resume(i):
        ws = await connect(f"ws://127.0.0.1:{port}/ws/visitor?token={sessions[i]['token']}"
                           f"&after={last_id.get(i, 0)}", compression=offer, ping_interval=None,
                           open_timeout=60)
        got = []
        try:
            while True:
                raw = await asyncio.wait_for(ws.recv(), timeout=10)
                frame = json.loads(raw)
                if frame["type"] == "message":
                    got.append(frame["data"]["body"])
                    if frame["data"]["body"] == missed_body[i]:
                        break
        except TimeoutError:
            pass
        await ws.close()
        return got

    results = await asyncio.gather(*(resume(i) for i in storm))
    storm_s = time.perf_counter() - t0
    for i, got in zip(storm, results, strict=True):
        ok += got.count(missed_body[i]) == 1
    heartbeat.cancel()
    for ws, task in agents:
        task.cancel()
        await ws.close()
    for i, ws in enumerate(visitors):
        if i not in storm:
            try:
                await ws.close()
            except Exception:  # noqa: BLE001 - already broken
                pass
    for task in drains:
        task.cancel()
    arr = np.asarray(lat) if lat else np.zeros(1)
    sockets = args.visitors + args.agents
    return {
        "sockets": sockets, "sent": len(sent_at), "rate": achieved, "lost": lost, "dup": dup,
        "p50": float(np.percentile(arr, 50)), "p95": float(np.percentile(arr, 95)),
        "p99": float(np.percentile(arr, 99)), "kb_per_socket": (held_rss - base_rss) * 1024 / sockets,
        "rss": held_rss, "storm": len(storm), "storm_ok": ok, "storm_s": storm_s,
        "broken": len(broken), "broken_why": sorted(set(broken.values()))[:3],
        "minutes": minutes, "rss_minutes": rss_minutes,
        "watch": {m: {**row, "tables": sorted(row["tables"])}
                  for m, row in sorted(watch.minutes.items())},
        "resent": len(resent), "resent_unique": len(set(resent)),
        "cpu_ms_per_msg": cpu_used * 1000 / max(n, 1),
        "cpu_cores": cpu_used / (elapsed + 5),
    }


PING_SECONDS = 25


async def heartbeats(agents: list, visitors: list) -> None:
    """What the widget and the workspace do (docs/protocol.md): a ``ping`` frame
    every 25 s on every socket, spread over the interval. Without it the server
    counts an agent whose socket has been silent for AGENT_HEARTBEAT_SECONDS as
    gone, routes no chat to him, and the benchmark measured the unassigned pool
    (every message to every agent) instead of chats."""
    ping = json.dumps({"type": "ping", "data": {}})
    loop = asyncio.get_running_loop()
    while True:
        sockets = list(agents) + list(visitors)
        gap = PING_SECONDS / max(len(sockets), 1)
        # On the clock, not a sleep after each send: a client busy reading frames
        # sleeps longer than asked, and 2,050 late sleeps stretched a round past the
        # 75 s an agent's sign of life lasts (the server then rightly took every
        # agent for gone). Each browser keeps its own 25 s; so does each socket here.
        round_start = loop.time()
        for n, ws in enumerate(sockets):
            try:
                await ws.send(ping)
            except Exception:  # noqa: BLE001 - a closed socket: the run counts it
                pass
            await asyncio.sleep(max(0.0, round_start + (n + 1) * gap - loop.time()))


def progress(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


async def run_reference(port: int, pid: int, sockets: int) -> dict:
    from websockets.asyncio.client import connect

    base = rss_mb(pid)
    conns = [await connect(f"ws://127.0.0.1:{port}", compression=None, ping_interval=None)
             for _ in range(sockets)]
    await asyncio.sleep(1)
    held = rss_mb(pid)
    count = 0
    lat = []
    cpu_before = cpu_seconds(pid)
    deadline = time.perf_counter() + 10
    while time.perf_counter() < deadline:
        batch = conns[:200]
        t = time.perf_counter()
        await asyncio.gather(*(c.send("x" * 64) for c in batch))
        await asyncio.gather(*(c.recv() for c in batch))
        lat.append((time.perf_counter() - t) * 1000)
        count += len(batch)
    cpu_used = cpu_seconds(pid) - cpu_before
    for c in conns:
        await c.close()
    return {"sockets": sockets, "kb_per_socket": (held - base) * 1024 / sockets,
            "echo_per_s": count / 10, "cpu_ms_per_echo": cpu_used * 1000 / max(count, 1)}


def reference(sockets: int) -> dict:
    """The bare asyncio ``websockets`` echo server, measured with the same client."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", ECHO, str(port)])
    time.sleep(1.5)
    try:
        return asyncio.run(run_reference(port, proc.pid, sockets))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--production", action="store_true", help="PostgreSQL + Redis")
    parser.add_argument("--reference", action="store_true",
                        help="only the bare asyncio websockets echo server")
    parser.add_argument("--visitors", type=int, default=2000)
    parser.add_argument("--agents", type=int, default=50)
    parser.add_argument("--rate", type=float, default=300, help="visitor messages per second")
    parser.add_argument("--duration", type=float, default=300, help="seconds of sustained load")
    parser.add_argument("--reconnect", type=int, default=500)
    parser.add_argument("--deflate", action="store_true",
                        help="the clients offer permessage-deflate, as browsers do")
    parser.add_argument("--sessions-first", action="store_true",
                        help="open the visitors' sessions before the agents' sockets (a "
                             "campaign before the shift): every chat starts with nobody "
                             "online, and each visitor's first message routes it")
    parser.add_argument("--server", choices=["embedded", "threads", "gthread", "gevent"], default=None,
                        help="embedded (`meiqia run`, the embedded default's server), "
                             "threads (`meiqia run` on Werkzeug's threads, as before "
                             "issue 19) or a "
                             "gunicorn worker class (default with --production: gevent, "
                             "as deploy/gunicorn.conf.py picks for PostgreSQL)")
    parser.add_argument("--workers", type=int, default=1,
                        help="gunicorn processes (more than one needs --production)")
    parser.add_argument("--threads", type=int, default=2100,
                        help="gthread: threads per process (one per open socket)")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/13")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a server setting for this run (MEIQIA_KEY), e.g. DATABASE_POOL_SIZE=40")
    parser.add_argument("--no-write", action="store_true",
                        help="print the figures, leave docs/benchmarks.md alone")
    args = parser.parse_args()
    if args.server is None:
        args.server = "gevent" if args.production else "embedded"
    if args.workers > 1 and not args.production:
        parser.error("several processes share events only through Redis: add --production")
    if args.reference:
        ref = reference(args.visitors)
        print(ref)
        if not args.no_write:
            write_section("ws-reference", "Websocket reference: bare asyncio echo server",
                          ".venv/bin/python benchmarks/ws_load.py --reference",
                          reference_text(ref))
        return
    port = free_port()
    tmp = Path(tempfile.mkdtemp())
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEIQIA_")}
    env.update({"MEIQIA_ENTRY_POINT_PLUGINS": ",".join(built_in_plugins()),
                "MEIQIA_INSTANCE_PATH": str(tmp), "MEIQIA_SECRET_KEY": "bench",
                "MEIQIA_LOGIN_MAX_FAILURES": "1000",
                "MEIQIA_LOGIN_RATE_PER_CLIENT": "100000/minute", "MEIQIA_THREADS": str(args.threads)})
    env.update({f"MEIQIA_{key}": value for key, value in (s.split("=", 1) for s in args.set)})
    db_name = None
    if args.production:
        import psycopg2

        db_name = f"meiqia_bench_{uuid.uuid4().hex[:6]}"
        conn = psycopg2.connect(args.pg)
        conn.autocommit = True
        conn.cursor().execute(f'CREATE DATABASE "{db_name}"')
        url = args.pg.rsplit("/", 1)[0] + "/" + db_name
        env.update({"MEIQIA_DATABASE_URL": url, "MEIQIA_REDIS_URL": args.redis,
                    "MEIQIA_REDIS_PREFIX": f"bench-{db_name}"})
    subprocess.run([sys.executable, "-m", "meiqia.cli", "db", "upgrade"], env=env, cwd=ROOT,
                   check=True, capture_output=True)
    load_start = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    proc = start_server(env, port, args.server, args.workers)
    try:
        fig = asyncio.run(run_load(args, port, proc.pid, env))
        fig["stored"] = stored_count(env)
        fig["load_start"] = load_start
        fig["load_end"] = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    finally:
        # gunicorn waits graceful_timeout for open websockets on SIGTERM; SIGINT is quick.
        proc.send_signal(signal.SIGTERM if args.server in ("embedded", "threads")
                         else signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if db_name:
            conn.cursor().execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
    progress("the reference: bare asyncio websockets echo server")
    ref = reference(args.visitors)
    print({**fig, "reference": ref})
    if args.no_write:
        return
    mode = "PostgreSQL + Redis" if args.production else "embedded default (SQLite, in-process hub)"
    cmd = (".venv/bin/python benchmarks/ws_load.py" + (" --production" if args.production else "")
           + f" --server {args.server} --workers {args.workers}"
           + f" --visitors {args.visitors} --agents {args.agents} --rate {args.rate:g}"
           f" --duration {args.duration:g} --reconnect {args.reconnect}"
           + (" --sessions-first" if args.sessions_first else "")
           + (" --deflate" if args.deflate else ""))
    order = ("the visitors' sessions opened before the agents' sockets (each first message "
             "routes its chat)" if args.sessions_first else
             "the agents' sockets open before the visitors' sessions (each chat routed as "
             "its session starts)")
    server = ("`meiqia run`: gevent's WSGI server, one process" if args.server == "embedded" else
              "`meiqia run` on Werkzeug's threaded server (as before issue 19)"
              if args.server == "threads" else
              f"gunicorn, {args.server} worker class, deploy/gunicorn.conf.py")
    met = (fig["sockets"] >= 2050 and fig["rate"] >= 299 and fig["p95"] < 50
           and fig["p99"] < 200 and fig["lost"] == 0 and fig["dup"] == 0
           and fig["stored"] == fig["sent"] and fig["storm_ok"] == fig["storm"] >= 500
           and fig["storm_s"] <= 10 and args.duration >= 300)
    body = "\n".join([
        f"{args.workers} meiqia process(es) ({server}), {mode}; {order}; the client "
        "is one asyncio process on the same 2-core machine"
        + (", its sockets offering permessage-deflate as browsers do" if args.deflate else "")
        + ". Goals: 2,000 visitor + 50 agent "
        "sockets held; 300 msg/s sustained for 5 minutes with delivery p95 < 50 ms and "
        "p99 < 200 ms, nothing lost or duplicated; 500 visitors reconnecting within 10 s "
        f"all resume. **Goals {'met' if met else 'not met'} in this run.**",
        "",
        "| figure | value |", "|---|---|",
        f"| sockets held | {fig['sockets']:,} ({args.visitors:,} visitors, {args.agents} agents) |",
        f"| server RSS with all sockets | {fig['rss']:.0f} MB ({fig['kb_per_socket']:.0f} KB per socket) |",
        f"| messages sent / rate achieved | {fig['sent']:,} in {args.duration:g} s / {fig['rate']:.0f} msg/s |",
        f"| visitor → agent delivery p50 / p95 / p99 | {fig['p50']:.1f} / {fig['p95']:.1f} / {fig['p99']:.1f} ms |",
        f"| lost (not at the agent within 5 s) / duplicated | {fig['lost']} / {fig['dup']} |",
        f"| stored in the database (of {fig['sent']:,} sent) | {fig['stored']:,} |",
        f"| refused as `unavailable` and sent again by the client (as the widget does) | "
        f"{fig['resent_unique']:,} messages, {fig['resent']:,} resends |",
        "| delivery p50 / p95 / p99 by minute | " + "; ".join(
            f"{m + 1}: {p50:.0f} / {p95:.0f} / {p99:.0f} ms" for m, p50, p95, p99 in fig["minutes"])
        + " |",
        f"| visitor sockets broken by the server during the run | {fig['broken']} "
        f"{'; '.join(fig['broken_why'])} |",
        f"| server CPU | {fig['cpu_ms_per_msg']:.2f} ms per message ({fig['cpu_cores']:.2f} cores busy) |",
        f"| reconnect storm | {fig['storm_ok']} of {fig['storm']} resumed with exactly their missed message in {fig['storm_s']:.1f} s |",
        f"| bare `websockets` echo server, same client (the limit) | {reference_text(ref, short=True)} |",
        f"| meiqia / reference | {fig['kb_per_socket'] / ref['kb_per_socket']:.1f} × the memory per socket; "
        f"{fig['rate'] / ref['echo_per_s'] * 100:.1f} % of its message rate (at the goal's rate, not our ceiling); "
        f"{fig['cpu_ms_per_msg'] / max(ref['cpu_ms_per_echo'], 1e-9):.0f} × its CPU per message |",
        f"| load average at the start / end of the run (`uptime`, 2 cores, shared) | "
        f"{fig['load_start']} / {fig['load_end']} |",
    ])
    name = ("ws-load-production" if args.production else "ws-load-embedded") + (
        "" if args.server == "embedded" else f"-{args.server}-{args.workers}")
    write_section(name, f"Websocket load, {mode}, {args.workers} × {args.server}", cmd, body)


def reference_text(ref: dict, short: bool = False) -> str:
    text = (f"{ref['sockets']:,} sockets held at {ref['kb_per_socket']:.1f} KB each; "
            f"{ref['echo_per_s']:,.0f} echo messages/s (200 clients in lock-step), "
            f"{ref.get('cpu_ms_per_echo', 0):.3f} ms of server CPU per echoed message")
    return text if short else f"Bare asyncio `websockets` echo server, same machine and client: {text}."


if __name__ == "__main__":
    main()
