"""Lossless resume under races: concurrent senders on both sides, random drops, resumes.

Clients written from docs/protocol.md alone ("Positions and resume"): each keeps,
per conversation, the highest ``seq`` it received (a ``message`` or its own
``ack``), resumes with ``after_seq=``, and resends what was never acknowledged
with the same ``client_msg_id``. Every visitor writes while the agents write
bursts of three into the same conversations; sockets drop at random moments,
some right after sending (before the sender's own ack arrives, the case of issue
13). At the end every client resumes once more, and for every client and
conversation the benchmark counts the positions it never got (lost), got twice
(duplicated) or got after a higher one (out of order), against the server's
``last_seq``. All three must be 0; a client that sees its own message as a
``message`` frame (not only the ack) counts as an echo, also 0.

Two setups: the in-process hub (one process, gevent, as
``meiqia run``, SQLite) and ``--production`` (PostgreSQL + Redis, gunicorn
gevent × 2: two web processes, so frames cross the Redis hub).

Run: ``.venv/bin/python benchmarks/ws_stress.py [--production] [--messages 10000]``.
The test suite runs a few seconds of it (tests/ws/test_resume_race.py).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.ws_load import Http  # noqa: E402
from benchmarks.ws_load import bench_team  # noqa: E402


@dataclass
class Tally:
    """What the clients saw, summed over all of them."""

    sent: int = 0
    acked: int = 0
    drops: int = 0
    drops_at_ack: int = 0
    resumes: int = 0
    received: int = 0
    lost: int = 0
    duplicated: int = 0
    out_of_order: int = 0
    echoes: int = 0
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, **counts: int) -> None:
        with self.lock:
            for name, n in counts.items():
                setattr(self, name, getattr(self, name) + n)


class Peer:
    """One resuming client (a visitor of one conversation, or an agent of many)."""

    def __init__(self, name: str, url: Callable[[dict[int, int]], str],
                 connect: Callable[[str], Any], conversations: list[int],
                 quota: int, burst: int, drop: float, rng: random.Random,
                 tally: Tally, start: dict[int, int] | None = None) -> None:
        self.name, self.url, self.connect = name, url, connect
        self.conversations = conversations
        self.quota, self.burst, self.drop, self.rng, self.tally = quota, burst, drop, rng, tally
        self.position: dict[int, int] = dict(start or {c: 0 for c in conversations})
        self.seen: dict[int, set[int]] = {c: set() for c in conversations}
        self.first: dict[int, int] = dict(self.position)
        self.unacked: dict[str, tuple[int, str, float]] = {}
        #: Messages first sent on the current connection: the server owes this
        #: connection their ack only, never a ``message`` frame (a later connection
        #: may get them in its replay: that is a different socket).
        self.sent_here: set[str] = set()
        self.sent = 0
        self.ws: Any = None

    # -- the socket ---------------------------------------------------------------
    def open(self) -> None:
        for attempt in range(50):
            try:
                self.ws = self.connect(self.url(self.position))
                break
            except Exception:  # noqa: BLE001 - refused under load: again, as the widget does
                time.sleep(min(0.05 * 2 ** attempt, 1.0))
        else:
            raise RuntimeError(f"{self.name}: could not reconnect")
        self.sent_here = set()
        self.tally.add(resumes=1)
        for cmid, (cid, body, _at) in list(self.unacked.items()):
            self.unacked[cmid] = (cid, body, time.monotonic())
            self._send(cid, cmid, body)

    def close(self) -> None:
        if self.ws is not None:
            try:
                self.ws.close()
            except Exception:  # noqa: BLE001 - already gone
                pass
            self.ws = None

    def _send(self, cid: int, cmid: str, body: str) -> None:
        data = {"client_msg_id": cmid, "body": body}
        if self.name.startswith("agent"):
            data["conversation_id"] = cid
        try:
            self.ws.send(json.dumps({"type": "message", "data": data}, ensure_ascii=False))
        except Exception:  # noqa: BLE001 - the socket dropped: resent on reconnect
            self.close()

    # -- frames ---------------------------------------------------------------------
    def take(self, frame: dict) -> None:
        kind, data = frame.get("type"), frame.get("data") or {}
        if kind == "ack":
            self.unacked.pop(data.get("client_msg_id"), None)
            self.note(data["message"], duplicate=bool(data.get("duplicate")))
        elif kind == "message":
            if data.get("client_msg_id") in self.sent_here:
                self.tally.add(echoes=1)
            self.note(data, duplicate=False)
        elif kind == "error":
            ref = data.get("ref")
            if data.get("code") != "unavailable":
                with self.tally.lock:
                    self.tally.errors.append(f"{self.name}: {data}")
            if ref in self.unacked:
                cid, body, _ = self.unacked[ref]
                self.unacked[ref] = (cid, body, time.monotonic() - 1.0)

    def note(self, message: dict, duplicate: bool) -> None:
        cid, seq = message.get("conversation_id"), message.get("seq")
        if cid not in self.seen or seq is None:
            return
        if duplicate and seq <= self.position[cid]:
            return  # an old resend's ack: moves nothing (docs/protocol.md)
        if seq in self.seen[cid] or seq <= self.first[cid]:
            self.tally.add(duplicated=1)
        elif seq < self.position[cid]:
            self.tally.add(out_of_order=1)
        self.seen[cid].add(seq)
        self.tally.add(received=1)
        self.position[cid] = max(self.position[cid], seq)

    def read(self, timeout: float) -> bool:
        """Read one frame; False when none came or the socket dropped."""
        if self.ws is None:
            return False
        try:
            raw = self.ws.receive(timeout=timeout)
        except Exception:  # noqa: BLE001 - dropped by the server or by us
            self.close()
            return False
        if raw is None:
            if not getattr(self.ws, "connected", True):
                self.close()
            return False
        self.take(json.loads(raw))
        return True

    # -- the run --------------------------------------------------------------------
    def step(self) -> None:
        """Send a burst (if any left), read a little, maybe drop."""
        if self.ws is None:
            self.open()
        if self.sent < self.quota:
            cid = self.rng.choice(self.conversations)
            for _ in range(min(self.burst, self.quota - self.sent)):
                cmid = f"{self.name}-{uuid.uuid4().hex[:12]}"
                body = f"{self.name} 第{self.sent}条"
                self.unacked[cmid] = (cid, body, time.monotonic())
                self.sent_here.add(cmid)
                self.sent += 1
                self.tally.add(sent=1)
                self._send(cid, cmid, body)
                if self.ws is None:
                    return
            if self.rng.random() < self.drop:
                self.tally.add(drops=1, drops_at_ack=1)
                self.close()  # right at our own ack
                return
        for _ in range(self.rng.randint(0, 6)):
            if not self.read(0.005):
                break
            if self.rng.random() < self.drop / 4:
                self.tally.add(drops=1)
                self.close()
                return
        now = time.monotonic()
        for cmid, (cid, body, at) in list(self.unacked.items()):
            if now - at > 3.0 and self.ws is not None:  # no answer: the same id again
                self.unacked[cmid] = (cid, body, now)
                self._send(cid, cmid, body)

    def settle(self, last_seq: Callable[[int], int], deadline: float) -> None:
        """Resume once more and read until every conversation is at its last seq."""
        self.close()
        while time.monotonic() < deadline:
            if self.ws is None:
                self.open()
            while self.read(0.2):
                pass
            if not self.unacked and all(
                    self.position[c] >= last_seq(c) for c in self.conversations):
                break
        self.close()

    def count_lost(self, last_seq: Callable[[int], int], visible: Callable[[int], set[int]]
                   ) -> None:
        for cid in self.conversations:
            expected = {s for s in visible(cid) if s > self.first[cid]}
            self.tally.add(lost=len(expected - self.seen[cid]))
            self.tally.add(acked=0)
        self.tally.add(acked=self.sent - len(self.unacked))


def run(peers: list[Peer], last_seq: Callable[[int], int],
        visible: Callable[[int], set[int]], seconds_cap: float = 600) -> Tally:
    """Run every peer in its own thread until all have sent their quota, then settle."""
    tally = peers[0].tally
    deadline = time.monotonic() + seconds_cap

    def drive(peer: Peer) -> None:
        try:
            while (peer.sent < peer.quota or peer.unacked) and time.monotonic() < deadline:
                peer.step()
        except Exception as exc:  # noqa: BLE001 - reported, the run goes on
            with tally.lock:
                tally.errors.append(f"{peer.name}: {exc!r}")

    threads = [threading.Thread(target=drive, args=(p,), daemon=True) for p in peers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    settle_by = time.monotonic() + 60
    threads = [threading.Thread(target=p.settle, args=(last_seq, settle_by), daemon=True)
               for p in peers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for p in peers:
        p.count_lost(last_seq, visible)
    return tally


# -- the benchmark: a server of its own ----------------------------------------------

def stress_against(base: str, ws_base: str, conversations: int, messages: int,
                   drop: float, seed: int, agents: int = 2) -> tuple[Tally, float]:
    """Set up a team on a running server and run the stress; (tally, seconds)."""
    from tests.ws.conftest import Client

    rng = random.Random(seed)
    admin, data, by_agent = bench_team(base, "乱序压测", agents, conversations)
    team_id = data["team"]["id"]
    agent_ids, cookies = list(by_agent), list(by_agent.values())
    # Routing serves agents with a workspace open (docs/protocol.md, "Agent
    # presence"): each agent's socket is open while the visitors arrive.
    workspaces = [Client.connect(f"{ws_base}/ws/agent", headers={"Cookie": c}) for c in cookies]
    for ws in workspaces:
        ws.receive(timeout=10)  # hello: the presence row is written before it
    sessions = [Http(base).call("POST", "/api/v1/widget/session", {"team_id": team_id})
                for _ in range(conversations)]
    for ws in workspaces:
        ws.close()
    by_handler: dict[int, list[int]] = {}
    for s in sessions:
        cid = s["conversation"]["conversation_id"]
        row = admin.call("GET", f"/api/v1/conversations/{cid}")
        by_handler.setdefault(row["handler_id"], []).append(cid)

    def last_seq(cid: int) -> int:
        return admin.call("GET", f"/api/v1/conversations/{cid}")["last_seq"]

    def visible(cid: int) -> set[int]:
        found = admin.call("GET", f"/api/v1/conversations/{cid}/messages?after_seq=0")
        return {m["seq"] for m in found["messages"] if m["visibility"] == "public"}

    def connector(cookie: str | None) -> Callable[[str], Any]:
        headers = {"Cookie": cookie} if cookie else None
        return lambda url: Client.connect(url, headers=headers)

    tally = Tally()
    per_side = messages // 2
    peers: list[Peer] = []
    for s in sessions:
        cid = s["conversation"]["conversation_id"]
        token = s["token"]
        peers.append(Peer(
            f"visitor{cid}", lambda pos, t=token, c=cid: (
                f"{ws_base}/ws/visitor?token={t}&after_seq={pos[c]}"),
            connector(None), [cid], per_side // conversations, 1, drop,
            random.Random(rng.random()), tally))
    for n, (agent_id, cookie) in enumerate(zip(agent_ids, cookies, strict=True)):
        mine = by_handler.get(agent_id, [])
        if not mine:
            continue
        start = {c: last_seq(c) for c in mine}
        peers.append(Peer(
            f"agent{n}", lambda pos: f"{ws_base}/ws/agent?after_seq=" + ",".join(
                f"{c}:{s}" for c, s in pos.items()),
            connector(cookie), mine, per_side * len(mine) // conversations, 3, drop,
            random.Random(rng.random()), tally, start=start))
    began = time.monotonic()
    run(peers, last_seq, visible)
    return tally, time.monotonic() - began


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    from benchmarks._report import write_section
    from benchmarks.ws_load import start_server

    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--production", action="store_true",
                        help="PostgreSQL + Redis, gunicorn gevent x 2")
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--conversations", type=int, default=40)
    parser.add_argument("--drop", type=float, default=0.05,
                        help="chance a socket drops right after a send (a quarter of it "
                             "after a received frame)")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/13")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    port = free_port()
    tmp = Path(tempfile.mkdtemp())
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEIQIA_")}
    env.update({"MEIQIA_INSTANCE_PATH": str(tmp), "MEIQIA_SECRET_KEY": "bench",
                "MEIQIA_LOGIN_MAX_FAILURES": "1000",
                "MEIQIA_LOGIN_RATE_PER_CLIENT": "100000/minute"})
    db_name = None
    conn = None
    if args.production:
        import psycopg2

        db_name = f"meiqia_stress_{uuid.uuid4().hex[:6]}"
        conn = psycopg2.connect(args.pg)
        conn.autocommit = True
        conn.cursor().execute(f'CREATE DATABASE "{db_name}"')
        env.update({"MEIQIA_DATABASE_URL": args.pg.rsplit("/", 1)[0] + "/" + db_name,
                    "MEIQIA_REDIS_URL": args.redis, "MEIQIA_REDIS_PREFIX": f"bench-{db_name}"})
    subprocess.run([sys.executable, "-m", "meiqia.cli", "db", "upgrade"], env=env, cwd=ROOT,
                   check=True, capture_output=True)
    server, workers = ("gevent", 2) if args.production else ("embedded", 1)
    proc = start_server(env, port, server, workers)
    try:
        tally, seconds = stress_against(f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}",
                                        args.conversations, args.messages, args.drop, args.seed)
    finally:
        proc.send_signal(signal.SIGTERM if server == "embedded" else signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if db_name and conn is not None:
            conn.cursor().execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
    figures = {k: getattr(tally, k) for k in ("sent", "acked", "received", "drops",
                                              "drops_at_ack", "resumes", "lost", "duplicated",
                                              "out_of_order", "echoes")}
    print({**figures, "seconds": round(seconds, 1), "errors": tally.errors[:5]})
    if args.no_write:
        return
    mode = ("PostgreSQL + Redis hub, gunicorn gevent × 2 (two web processes)"
            if args.production else "SQLite, in-process hub, gevent "
            "(as `meiqia run`)")
    ok = tally.lost == tally.duplicated == tally.out_of_order == tally.echoes == 0 \
        and not tally.errors and tally.acked == tally.sent
    body = "\n".join([
        f"{mode}. {args.conversations} conversations; every visitor and two agents send at "
        "once (agents in bursts of three), sockets drop at random, "
        f"{args.drop:.0%} of sends are followed by a drop before the sender's own ack; every "
        "client resumes with `after_seq` and resends what was not acknowledged. "
        f"**{'0 lost, 0 duplicated, 0 out of order' if ok else 'NOT lossless'} in this run.**",
        "",
        "| figure | value |", "|---|---|",
        f"| messages sent (acknowledged) | {tally.sent:,} ({tally.acked:,}) in {seconds:.0f} s |",
        f"| frames received and checked | {tally.received:,} |",
        f"| socket drops (right at the own ack) / resumes | {tally.drops:,} "
        f"({tally.drops_at_ack:,}) / {tally.resumes:,} |",
        f"| lost / duplicated / out of order | {tally.lost} / {tally.duplicated} / "
        f"{tally.out_of_order} |",
        f"| own message echoed as a `message` frame | {tally.echoes} |",
        f"| error frames other than `unavailable` | {len(tally.errors)} |",
    ])
    cmd = (".venv/bin/python benchmarks/ws_stress.py" + (" --production" if args.production
                                                         else "")
           + f" --messages {args.messages} --conversations {args.conversations}"
           + f" --drop {args.drop:g} --seed {args.seed}")
    name = "ws-stress-production" if args.production else "ws-stress-embedded"
    write_section(name, "Lossless resume: " + ("two processes on Redis" if args.production
                                               else "in-process hub"), cmd, body)


if __name__ == "__main__":
    main()
