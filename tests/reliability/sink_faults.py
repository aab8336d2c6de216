"""What the job fault tests (and benchmarks/job_faults.py) share: a webhook receiver
that drops repeats by ``Idempotency-Key``, as docs/plugins.md tells receivers to,
and the team, sink and tickets whose deliveries are the jobs under test.

The receiver is a real local HTTP server. It answers ``status`` (503: "down, try
again"), or holds each request until ``release()`` (a delivery in flight when its
worker is killed). A request it takes is an *effect* the first time its key is
seen, a *repeat* afterwards: "delivered once by key" is ``len(effects) == n`` with
no key counted twice.
"""

from __future__ import annotations

import http.server
import json
import sqlite3
import threading
from collections import Counter
from typing import Any

from tests.helpers import ApiClient

SECRET = "s" * 32


class KeyedReceiver:
    """A webhook receiver that records every request and keeps one effect per key."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.hold = threading.Event()
        self.hold.set()  # set: answer at once; cleared: wait for release()
        self.lock = threading.Lock()
        self.requests: list[str] = []  # keys, in arrival order, whatever was answered
        self.effects: Counter[str] = Counter()  # keys taken (2xx): counted once each
        self.repeats: Counter[str] = Counter()  # keys taken again, dropped
        self.missing_key = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                key = self.headers.get("Idempotency-Key") or ""
                with outer.lock:
                    outer.requests.append(key)
                    if not key or body.get("idempotency_key") != key:
                        outer.missing_key += 1
                    status = outer.status
                    if 200 <= status < 300:
                        if outer.effects[key]:
                            outer.repeats[key] += 1  # the receiver drops it
                        else:
                            outer.effects[key] += 1  # the effect: once per key
                outer.hold.wait(60)
                try:
                    self.send_response(status)
                    self.end_headers()
                except OSError:
                    pass  # the sender is gone (killed mid-request)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/tickets"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def taken(self) -> int:
        with self.lock:
            return sum(self.effects.values())

    def twice(self) -> list[str]:
        """Keys whose effect happened more than once (must stay empty)."""
        with self.lock:
            return [k for k, n in self.effects.items() if n > 1]

    def release(self) -> None:
        self.hold.set()

    def close(self) -> None:
        self.hold.set()
        self.server.shutdown()
        self.server.server_close()


def team_with_sink(app: Any, url: str, enabled: bool = True) -> tuple[ApiClient, int]:
    """A registered team with a webhook sink to ``url`` (the app must allow private
    addresses: ``OUTBOUND_ALLOW_PRIVATE``)."""
    api = ApiClient.registered(app)
    made = api.post("/api/v1/ticket-sinks", json={
        "type": "webhook", "name": "CRM", "enabled": enabled,
        "config": {"url": url, "secret": SECRET}})
    assert made.status_code == 201, made.get_json()
    return api, made.get_json()["id"]


def new_tickets(api: ApiClient, n: int, start: int = 0) -> list[int]:
    ids = []
    for i in range(start, start + n):
        made = api.post("/api/v1/tickets", json={"content": f"工单 {i}",
                                                 "email": f"kehu{i}@example.com"})
        assert made.status_code == 201, made.get_json()
        ids.append(made.get_json()["id"])
    return ids


def counts(db: str) -> dict[str, Counter]:
    """Deliveries and jobs by status, read straight from the database (any process):
    ``db`` is a SQLite file path or a PostgreSQL URL."""
    queries = {
        "deliveries": "SELECT status, count(*) FROM sink_delivery GROUP BY status",
        "jobs": "SELECT status, count(*) FROM job_record GROUP BY status",
        "retrying": "SELECT 'waiting', count(*) FROM job_record"
                    " WHERE status = 'queued' AND run_at IS NOT NULL",
    }
    if db.startswith("postgres"):
        import psycopg2

        conn = psycopg2.connect(db)
    else:
        conn = sqlite3.connect(db, timeout=30)
    try:
        found = {}
        for name, sql in queries.items():
            cur = conn.cursor()
            cur.execute(sql)
            found[name] = Counter(dict(cur.fetchall()))
            cur.close()
    finally:
        conn.close()
    return found


def sqlite_path(url: str) -> str:
    """What ``counts`` takes: the file of a SQLite URL, a PostgreSQL URL as it is."""
    return url.removeprefix("sqlite:///")
