"""Ten thousand sockets per host: a connect storm, held with the heartbeat, memory per socket.

Issue 19, part 2. Starts meiqia in production form (gunicorn with
``deploy/gunicorn.conf.py``, gevent, ``--workers`` processes, PostgreSQL +
Redis: the helpers of benchmarks/ws_load.py), creates SOCKETS widget sessions
over HTTP first (timed), then:

1. a connect storm: every visitor socket makes its first attempt within
   STORM seconds; a socket refused at connect (``unavailable`` with
   ``retry_after_ms``, then close 1013, docs/protocol.md "Outages") tries again
   after the hint, any other failure after a jittered back-off, as the widget's
   ``socket.js`` does; every close by the server is counted by its code;
2. holds them HOLD seconds with the heartbeat running (each client sends
   ``{"type":"ping"}`` every 25 s, as the widget does); a socket the server
   closes now counts against the goal (no reconnect);
3. memory per socket: the server's RSS (master and workers) with every socket
   open minus before the storm;
4. in the same run, with the same client and the same number of sockets, the
   references: a bare asyncio ``websockets`` echo server (ws_load.py's) and a
   bare flask-sock echo (benchmarks/flask_sock_echo.py) on the same gunicorn
   gevent workers.

The client is one asyncio process with a minimal websocket client (handshake,
masked frames, close codes), cheap enough to hold 10,000 sockets beside the
server on a 2-core machine. ``storm()`` is what tests/integration/
test_socket_storm.py runs with 300 sockets.

Run: ``.venv/bin/python benchmarks/ws_sockets.py`` (defaults: 10,000 sockets,
a 60 s storm, 180 s held, 2 workers).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import concurrent.futures
import json
import os
import random
import resource
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._report import write_section  # noqa: E402
from benchmarks.ws_load import ECHO  # noqa: E402
from benchmarks.ws_load import bench_team  # noqa: E402
from benchmarks.ws_load import free_port  # noqa: E402
from benchmarks.ws_load import progress  # noqa: E402
from benchmarks.ws_load import rss_mb  # noqa: E402
from benchmarks.ws_load import start_server  # noqa: E402

PING_SECONDS = 25
#: Back-off of a failed attempt other than 1013 (the widget's socket.js): 0.5 s
#: doubling to 15 s, spread over [d/2, 3d/2).
BACKOFF = (0.5, 15.0)


def raise_fd_limit(need: int) -> None:
    """The client holds one descriptor per socket (``ulimit -n`` may be lower)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(need, soft)), hard))


# --- a minimal websocket client ---------------------------------------------------

def _frame(opcode: int, payload: bytes) -> bytes:
    """One masked client frame (RFC 6455 §5.2)."""
    head = bytes([0x80 | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", n)
    mask = os.urandom(4)
    key = int.from_bytes((mask * (n // 4 + 1))[:n], "big") if n else 0
    body = (int.from_bytes(payload, "big") ^ key).to_bytes(n, "big") if n else b""
    return head + mask + body


async def _read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    b0, b1 = await reader.readexactly(2)
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack("!H", await reader.readexactly(2))[0]
    elif n == 127:
        n = struct.unpack("!Q", await reader.readexactly(8))[0]
    return b0 & 0x0F, await reader.readexactly(n)


class Refused(Exception):
    """The server closed the socket before accepting it (``code``; 1013: busy)."""

    def __init__(self, code: int, retry_after_ms: int | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.retry_after_ms = retry_after_ms


class Conn:
    """One client socket: open (handshake, and ``hello`` for meiqia), ping, hold."""

    __slots__ = ("reader", "writer", "closed_by_server", "stopping")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.closed_by_server: int | None = None
        self.stopping = False

    @classmethod
    async def open(cls, port: int, path: str, hello: bool, timeout: float = 60) -> Conn:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port, limit=2 ** 20), timeout)
        conn = cls(reader, writer)
        try:
            key = base64.b64encode(os.urandom(16)).decode()
            writer.write((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                          "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                          f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                          "\r\n").encode())
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
            status = head.split(b" ", 2)[1]
            if status != b"101":
                raise Refused(int(status))  # an HTTP status (e.g. 503, 429)
            retry = None
            while hello:
                opcode, payload = await asyncio.wait_for(_read_frame(reader), timeout)
                if opcode == 8:
                    code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                    raise Refused(code, retry)
                if opcode != 1:
                    continue
                frame = json.loads(payload)
                if frame["type"] == "hello":
                    break
                data = frame.get("data") or {}
                if frame["type"] == "error" and data.get("code") == "unavailable":
                    retry = data.get("retry_after_ms")
                elif frame["type"] == "error":
                    raise Refused(-1)  # a refusal that no retry cures (bad token)
        except BaseException:
            writer.close()
            raise
        return conn

    def ping(self) -> None:
        if not self.writer.is_closing():
            self.writer.write(_frame(1, b'{"type":"ping"}'))

    async def hold(self) -> None:
        """Read (pongs, events) until the server closes or ``close``."""
        try:
            while True:
                opcode, payload = await _read_frame(self.reader)
                if opcode == 9:  # the server's ping (the asyncio echo's keepalive)
                    self.writer.write(_frame(10, payload))
                elif opcode == 8:
                    if not self.stopping:
                        self.closed_by_server = (struct.unpack("!H", payload[:2])[0]
                                                 if len(payload) >= 2 else 1005)
                    break
        except (OSError, asyncio.IncompleteReadError):
            if not self.stopping:
                self.closed_by_server = 1006
        finally:
            self.writer.close()

    def close(self) -> None:
        self.stopping = True
        if not self.writer.is_closing():
            self.writer.write(_frame(8, struct.pack("!H", 1000)))
            self.writer.close()


@dataclass
class StormResult:
    sockets: int
    connected: int = 0
    attempts: int = 0
    #: Closes (or HTTP statuses, or exception names) of refused attempts, by code.
    refused: collections.Counter = field(default_factory=collections.Counter)
    #: Sockets the server closed while held, by close code.
    closed_held: collections.Counter = field(default_factory=collections.Counter)
    #: Seconds from the first attempt until every socket was open.
    all_open_s: float = 0.0
    #: Retries per socket (0: it got in first time), most.
    most_retries: int = 0
    rss_base_mb: float = 0.0
    rss_held_mb: float = 0.0

    @property
    def kb_per_socket(self) -> float:
        return (self.rss_held_mb - self.rss_base_mb) * 1024 / max(self.connected, 1)


async def storm(port: int, paths: list[str], storm_s: float, hold_s: float,
                pid: int | None = None, hello: bool = True, give_up_s: float = 300.0
                ) -> StormResult:
    """Open one socket per path, first attempts spread over ``storm_s`` seconds,
    retrying refused ones (1013: after ``retry_after_ms``; else back-off with
    jitter); hold them all ``hold_s`` seconds with a ping every 25 s each; close.
    ``pid``: the server whose RSS is read before and while held."""
    result = StormResult(len(paths))
    if pid is not None:
        result.rss_base_mb = rss_mb(pid)
    conns: list[Conn | None] = [None] * len(paths)
    holders: list[asyncio.Task] = []
    start = time.monotonic()
    give_up = start + give_up_s

    async def one(i: int, path: str) -> None:
        await asyncio.sleep(storm_s * i / len(paths))
        delay, tries = BACKOFF[0], 0
        while time.monotonic() < give_up:
            result.attempts += 1
            try:
                conns[i] = conn = await Conn.open(port, path, hello)
                # Read from the start: a server's keepalive ping (the asyncio echo's)
                # must be answered while the storm goes on.
                holders.append(asyncio.create_task(conn.hold()))
                result.connected += 1
                result.most_retries = max(result.most_retries, tries)
                return
            except Refused as exc:
                result.refused[exc.code] += 1
                if exc.code == -1:
                    return
                wait = (exc.retry_after_ms / 1000 if exc.retry_after_ms
                        else random.uniform(delay / 2, delay * 1.5))
            except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
                result.refused[type(exc).__name__] += 1
                wait = random.uniform(delay / 2, delay * 1.5)
            delay = min(delay * 2, BACKOFF[1])
            tries += 1
            await asyncio.sleep(wait)

    await asyncio.gather(*(one(i, p) for i, p in enumerate(paths)))
    result.all_open_s = time.monotonic() - start
    opened = [c for c in conns if c is not None]

    async def heartbeat() -> None:
        # Each socket pings every PING_SECONDS, spread evenly over the period.
        slices = 25
        while True:
            for k in range(slices):
                for c in opened[k::slices]:
                    c.ping()
                await asyncio.sleep(PING_SECONDS / slices)

    beat = asyncio.create_task(heartbeat())
    await asyncio.sleep(min(5.0, hold_s))
    if pid is not None:
        result.rss_held_mb = rss_mb(pid)
    await asyncio.sleep(max(0.0, hold_s - 5.0))
    if pid is not None:  # the larger of the two: memory that grows while held counts
        result.rss_held_mb = max(result.rss_held_mb, rss_mb(pid))
    beat.cancel()
    for c in opened:
        if c.closed_by_server is not None:
            result.closed_held[c.closed_by_server] += 1
        c.close()
    await asyncio.wait(holders, timeout=10)
    return result


# --- the run ----------------------------------------------------------------------

def create_sessions(base: str, team_id: int, count: int, threads: int = 8) -> list[str]:
    """``count`` widget sessions (POST /api/v1/widget/session), their tokens;
    keep-alive connections, ``threads`` at a time."""
    import requests

    local = threading.local()

    def one(_n: int) -> str:
        if not hasattr(local, "s"):
            local.s = requests.Session()
        for attempt in range(20):
            r = local.s.post(base + "/api/v1/widget/session", json={"team_id": team_id},
                             timeout=60)
            if r.status_code == 200:
                return r.json()["token"]
            time.sleep(0.2 * (attempt + 1))
        raise RuntimeError(f"session: HTTP {r.status_code} {r.text[:200]}")

    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        return list(pool.map(one, range(count)))


def stop(proc: subprocess.Popen, sig: int = signal.SIGINT) -> None:
    proc.send_signal(sig)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def wait_http(port: int, path: str = "/healthz", timeout: float = 60) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=1):
                return
        except OSError:
            time.sleep(0.3)
    raise SystemExit(f"no answer on {port}{path}")


def production_env(pg: str, redis: str) -> tuple[dict, str]:
    """The environment of a meiqia in production form on a fresh database (as
    ws_load.py's ``--production``): (env, database name)."""
    import psycopg2

    tmp = Path(tempfile.mkdtemp())
    db_name = f"meiqia_bench_{uuid.uuid4().hex[:6]}"
    conn = psycopg2.connect(pg)
    conn.autocommit = True
    conn.cursor().execute(f'CREATE DATABASE "{db_name}"')
    conn.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEIQIA_")}
    env.update({"MEIQIA_INSTANCE_PATH": str(tmp), "MEIQIA_SECRET_KEY": "bench",
                "MEIQIA_LOGIN_MAX_FAILURES": "1000",
                "MEIQIA_LOGIN_RATE_PER_CLIENT": "100000/minute",
                "MEIQIA_DATABASE_URL": pg.rsplit("/", 1)[0] + "/" + db_name,
                "MEIQIA_REDIS_URL": redis, "MEIQIA_REDIS_PREFIX": f"bench-{db_name}"})
    subprocess.run([sys.executable, "-m", "meiqia.cli", "db", "upgrade"], env=env, cwd=ROOT,
                   check=True, capture_output=True)
    return env, db_name


def drop_database(pg: str, db_name: str) -> None:
    import psycopg2

    conn = psycopg2.connect(pg)
    conn.autocommit = True
    conn.cursor().execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
    conn.close()


def run_meiqia(args: argparse.Namespace) -> tuple[StormResult, float]:
    env, db_name = production_env(args.pg, args.redis)
    if args.db_concurrency:
        env["MEIQIA_WS_DB_CONCURRENCY"] = str(args.db_concurrency)
    port = free_port()
    proc = start_server(env, port, "gevent", args.workers)
    try:
        base = f"http://127.0.0.1:{port}"
        _admin, data, _ = bench_team(base, "万连", 0, 1)
        progress(f"creating {args.sockets:,} widget sessions")
        t0 = time.monotonic()
        tokens = create_sessions(base, data["team"]["id"], args.sockets)
        sessions_s = time.monotonic() - t0
        progress(f"{len(tokens):,} sessions in {sessions_s:.0f} s; the storm ({args.storm:g} s)")
        time.sleep(2)
        result = asyncio.run(storm(port, [f"/ws/visitor?token={t}" for t in tokens],
                                   args.storm, args.hold, proc.pid))
    finally:
        stop(proc)
        drop_database(args.pg, db_name)
    return result, sessions_s


def run_reference(args: argparse.Namespace, kind: str) -> StormResult:
    port = free_port()
    if kind == "asyncio":
        proc = subprocess.Popen([sys.executable, "-c", ECHO, str(port)])
        time.sleep(1.5)
        path = "/"
    else:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "deploy" / "gunicorn.conf.py"),
             "-k", "gevent", "-w", str(args.workers), "-b", f"127.0.0.1:{port}",
             "--access-logfile", "/dev/null", "benchmarks.flask_sock_echo:app"],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_http(port)
        path = "/echo"
    try:
        return asyncio.run(storm(port, [path] * args.sockets, args.storm,
                                 min(args.hold, 30), proc.pid, hello=False))
    finally:
        stop(proc, signal.SIGTERM if kind == "asyncio" else signal.SIGINT)


def describe(r: StormResult) -> tuple[str, str]:
    refused = ", ".join(f"{code}: {n:,}" for code, n in sorted(
        r.refused.items(), key=lambda kv: str(kv[0]))) or "none"
    held = ", ".join(f"{code}: {n:,}" for code, n in sorted(
        r.closed_held.items(), key=lambda kv: str(kv[0]))) or "none"
    return refused, held


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sockets", type=int, default=10_000)
    parser.add_argument("--storm", type=float, default=60, help="seconds over which every "
                        "socket makes its first attempt")
    parser.add_argument("--hold", type=float, default=180, help="seconds held with pings")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--db-concurrency", type=int, default=0,
                        help="MEIQIA_WS_DB_CONCURRENCY (0: the default)")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/13")
    parser.add_argument("--no-write", action="store_true",
                        help="print the figures, leave docs/benchmarks.md alone")
    args = parser.parse_args()
    raise_fd_limit(args.sockets + 1000)
    load_before = os.getloadavg()
    fig, sessions_s = run_meiqia(args)
    progress(f"meiqia: {fig}")
    progress("reference: bare asyncio websockets echo")
    ref = run_reference(args, "asyncio")
    progress(f"asyncio echo: {ref}")
    progress("reference: bare flask-sock echo on gunicorn gevent")
    fsk = run_reference(args, "flask-sock")
    progress(f"flask-sock echo: {fsk}")
    load_after = os.getloadavg()
    print({"meiqia": fig, "sessions_s": sessions_s, "asyncio": ref, "flask_sock": fsk})
    if args.no_write:
        return
    refused, held = describe(fig)
    r_refused, r_held = describe(ref)
    f_refused, f_held = describe(fsk)
    goal = fig.connected == args.sockets and not fig.closed_held and 1011 not in fig.refused \
        and fig.kb_per_socket <= 2 * ref.kb_per_socket and args.sockets >= 10_000
    cmd = (f".venv/bin/python benchmarks/ws_sockets.py --sockets {args.sockets} "
           f"--storm {args.storm:g} --hold {args.hold:g} --workers {args.workers}"
           + (f" --db-concurrency {args.db_concurrency}" if args.db_concurrency else ""))
    body = "\n".join([
        f"meiqia on {args.workers} gunicorn gevent workers (deploy/gunicorn.conf.py), "
        "PostgreSQL + Redis; the client is one asyncio process on the same 2-core machine "
        f"(a minimal websocket client). Load average {load_before[0]:.1f} before, "
        f"{load_after[0]:.1f} after (the machine is shared). Goals (issue 19): "
        f"{args.sockets:,} visitor sockets held on one host with the heartbeat running; a "
        "connect storm closes none of them (1013 with a retry is allowed, counted apart; "
        "never 1011); memory per socket ≤ 2 × the bare asyncio echo. "
        f"**Goals {'met' if goal else 'not met'} in this run.**",
        "",
        f"The {args.sockets:,} widget sessions were created over HTTP before the storm "
        f"(8 keep-alive clients): {sessions_s:.0f} s.",
        "",
        "| figure | meiqia | bare asyncio `websockets` echo | bare flask-sock echo, same gunicorn gevent workers |",
        "|---|---|---|---|",
        f"| sockets open / asked | {fig.connected:,} / {args.sockets:,} | "
        f"{ref.connected:,} / {args.sockets:,} | {fsk.connected:,} / {args.sockets:,} |",
        f"| first attempts spread over / storm over after (every socket open, or 300 s "
        f"and the rest given up) | {args.storm:g} s / "
        f"{fig.all_open_s:.0f} s | {args.storm:g} s / {ref.all_open_s:.0f} s | "
        f"{args.storm:g} s / {fsk.all_open_s:.0f} s |",
        f"| attempts (refused at connect, by close code or error) | {fig.attempts:,} ({refused}) | "
        f"{ref.attempts:,} ({r_refused}) | {fsk.attempts:,} ({f_refused}) |",
        f"| most retries of one socket | {fig.most_retries} | {ref.most_retries} | {fsk.most_retries} |",
        f"| closed by the server while held ({args.hold:g} s for meiqia, "
        f"{min(args.hold, 30):g} s for the references), by code | {held} | {r_held} | {f_held} |",
        f"| server RSS before → held | {fig.rss_base_mb:.0f} → {fig.rss_held_mb:.0f} MB | "
        f"{ref.rss_base_mb:.0f} → {ref.rss_held_mb:.0f} MB | "
        f"{fsk.rss_base_mb:.0f} → {fsk.rss_held_mb:.0f} MB |",
        f"| memory per socket | **{fig.kb_per_socket:.1f} KB** | {ref.kb_per_socket:.1f} KB | "
        f"{fsk.kb_per_socket:.1f} KB |",
        f"| meiqia / reference | | **{fig.kb_per_socket / max(ref.kb_per_socket, 0.01):.2f} ×** | "
        f"{fig.kb_per_socket / max(fsk.kb_per_socket, 0.01):.2f} × |",
    ])
    write_section("ws-sockets", "Ten thousand sockets: connect storm, heartbeat, memory per socket",
                  cmd, body)


if __name__ == "__main__":
    main()
