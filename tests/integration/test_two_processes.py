"""Production shape: two server processes and a worker on one PostgreSQL and one Redis.

The servers are gunicorn with ``deploy/gunicorn.conf.py`` (gevent on
PostgreSQL), as docs/deploy.md runs them. A visitor on one process and an agent
on the other hold a conversation; the visitor's process is killed (SIGKILL,
master and worker) mid-conversation and the visitor resumes on the other
process without losing or repeating a message; the ended conversation is
exported by the ``meiqia worker`` process.
"""

from __future__ import annotations

import contextlib
import csv
import http.cookiejar
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import close_app
from tests.conftest import make_app
from tests.conftest import truncate_all
from tests.helpers import wait_until
from tests.ws.conftest import Socket

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def server_command(port: int) -> list[str]:
    """One gunicorn process (one worker) with the production settings."""
    return [str(BIN / "gunicorn"), "--config", str(ROOT / "deploy" / "gunicorn.conf.py"),
            "--workers", "1", "--bind", f"127.0.0.1:{port}", "meiqia.wsgi:app"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, env: dict[str, str], tmp: Path, name: str) -> None:
        self.port = free_port()
        self.log = open(tmp / f"{name}.log", "w")  # noqa: SIM115 - closed in stop()
        # A session of its own: killing the group takes gunicorn's master and worker.
        self.proc = subprocess.Popen(server_command(self.port), env=env, cwd=ROOT,
                                     stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        # A wait for start-up, not a timing assertion: importing scikit-learn on a
        # busy 2-core machine has taken more than 30 s.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                with urllib.request.urlopen(self.url("/healthz"), timeout=1) as r:
                    # "degraded": up, but no `meiqia worker` is running yet.
                    if json.loads(r.read())["status"] in ("ok", "degraded"):
                        return
            except OSError:
                time.sleep(0.2)
        self.stop()  # leave no process or open log behind
        raise AssertionError(f"{name} did not start: {(tmp / f'{name}.log').read_text()}")

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def ws(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    def stop(self, kill: bool = False) -> None:
        """SIGKILL the whole process group (a crash), or SIGINT (gunicorn's quick
        stop: SIGTERM would wait graceful_timeout for sockets served in their request)."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL if kill else signal.SIGINT)
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
            except ProcessLookupError:
                pass
        if kill:
            # The worker process may outlive a killed master for a moment.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.log.close()

    def output(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text()


class Worker:
    """``meiqia worker``: the rq worker process that runs exports."""

    def __init__(self, env: dict[str, str], tmp: Path) -> None:
        self.log = open(tmp / "worker.log", "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([str(BIN / "meiqia"), "worker"], env=env, cwd=ROOT,
                                     stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def check_alive(self) -> None:
        assert self.proc.poll() is None, Path(self.log.name).read_text()

    def output(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text()

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.log.close()


class Http:
    def __init__(self) -> None:
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))
        self.csrf = ""

    def call(self, method: str, url: str, body: dict | None = None,
             headers: dict | None = None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(url, data=data, method=method, headers={
            "Content-Type": "application/json", "X-CSRF-Token": self.csrf, **(headers or {})})
        with self.opener.open(req, timeout=10) as response:
            return json.loads(response.read())

    def cookie(self) -> str:
        return "; ".join(f"{c.name}={c.value}" for c in self.jar)


def cluster_env(tmp_path, pg_database_url, redis_url, redis_prefix, **extra: str) -> dict:
    """The servers' environment on a fresh schema (``extra``: more MEIQIA_ settings)."""
    app = make_app(tmp_path, DATABASE_URL=pg_database_url)  # creates the schema
    close_app(app)
    truncate_all(pg_database_url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEIQIA_")}
    env.update({
        "MEIQIA_DATABASE_URL": pg_database_url, "MEIQIA_REDIS_URL": redis_url,
        "MEIQIA_REDIS_PREFIX": redis_prefix, "MEIQIA_SECRET_KEY": "two-process-secret",
        "MEIQIA_INSTANCE_PATH": str(tmp_path / "instance"), "PYTHONUNBUFFERED": "1",
        **extra,
    })
    return env


@pytest.fixture
def cluster(tmp_path, pg_database_url, redis_url, redis_prefix):
    env = cluster_env(tmp_path, pg_database_url, redis_url, redis_prefix)
    servers = [Server(env, tmp_path, "a"), Server(env, tmp_path, "b")]
    worker = Worker(env, tmp_path)
    yield servers, worker
    worker.stop()
    for server in servers:
        server.stop()


def test_visitor_and_agent_on_two_processes_and_a_process_dies(cluster):
    (a, b), worker = cluster
    assert "Using worker: gevent" in a.output()  # the production worker class
    admin = Http()
    data = admin.call("POST", a.url("/api/v1/auth/register"), {
        "team_name": "双进程", "name": "管理员", "email": "admin@example.com",
        "password": "two-proc-1"})
    admin.csrf = data["csrf_token"]
    team_id = data["team"]["id"]
    admin.call("PATCH", a.url("/api/v1/team"), {"settings": {"bot_enabled": False}})
    admin.call("PATCH", a.url(f"/api/v1/agents/{data['agent']['id']}"),
               {"status": "online", "max_concurrent": 3})

    # Routing serves agents with a workspace open: his socket (on A) counts on B.
    agent = Socket(a.ws("/ws/agent"), admin.cookie())
    agent.expect("hello")
    visitor_http = Http()
    session = visitor_http.call("POST", b.url("/api/v1/widget/session"), {"team_id": team_id})
    token, cid = session["token"], session["conversation"]["conversation_id"]
    assert session["conversation"]["status"] == "open"

    visitor = Socket(b.ws(f"/ws/visitor?token={token}"))
    visitor.expect("hello")

    visitor.send("message", {"body": "我在 B 进程", "client_msg_id": "v1"})
    first = visitor.expect("ack")["data"]["message"]["id"]
    agent.expect("message", where=lambda d: d.get("body") == "我在 B 进程")
    agent.send("message", {"conversation_id": cid, "body": "我在 A 进程", "client_msg_id": "a1"})
    agent.expect("ack")
    reply = visitor.expect("message", where=lambda d: d.get("body") == "我在 A 进程")

    b.stop(kill=True)  # the visitor's process dies mid-conversation
    for n, text in enumerate(["断线时一", "断线时二"]):
        agent.send("message", {"conversation_id": cid, "body": text, "client_msg_id": f"k{n}"})
        agent.expect("ack")
    resumed = Socket(a.ws(f"/ws/visitor?token={token}&after={reply['id']}"))
    resumed.expect("hello")
    got = [resumed.expect("message")["data"]["body"] for _ in range(2)]
    assert got == ["断线时一", "断线时二"]
    resumed.send("message", {"body": "我在 B 进程", "client_msg_id": "v1"})  # a resend
    ack = resumed.expect("ack")["data"]
    assert ack["duplicate"] and ack["message"]["id"] == first
    assert resumed.quiet("message", 0.5)
    everything = visitor_http.call(
        "GET", a.url(f"/api/v1/widget/conversations/{cid}/messages"),
        headers={"X-Visitor-Token": token})["messages"]
    bodies = [m["body"] for m in everything if m["kind"] == "text"]
    assert bodies == ["我在 B 进程", "我在 A 进程", "断线时一", "断线时二"]
    for s in (agent, visitor, resumed):
        s.close()

    # The ended conversation, exported with its messages by the worker process.
    admin.call("POST", a.url(f"/api/v1/conversations/{cid}/end"), {})
    export = admin.call("POST", a.url("/api/v1/history/exports"),
                        {"format": "csv", "with_content": True})

    def export_done() -> dict | None:
        worker.check_alive()
        state = admin.call("GET", a.url(f"/api/v1/history/exports/{export['id']}"))
        assert state["status"] != "failed", state
        return state if state["status"] == "done" else None

    done = wait_until(export_done, 120, "the worker to finish the export")
    with admin.opener.open(a.url(done["download"]), timeout=10) as response:
        rows = list(csv.DictReader(io.StringIO(response.read().decode("utf-8-sig"))))
    assert [row["编号"] for row in rows] == [str(cid)]  # headers in the admin's words
    content = json.dumps(rows[0], ensure_ascii=False)
    assert all(text in content for text in ["我在 B 进程", "断线时一", "断线时二"])
    # rq logs "Job OK" after the job returns, which is after our record says "done".
    wait_until(lambda: "Job OK" in worker.output(), 30, "rq's 'Job OK' in the worker's log")


HEARTBEAT = 3


@pytest.fixture
def short_heartbeat(tmp_path, pg_database_url, redis_url, redis_prefix):
    env = cluster_env(tmp_path, pg_database_url, redis_url, redis_prefix,
                      MEIQIA_AGENT_HEARTBEAT_SECONDS=str(HEARTBEAT),
                      MEIQIA_PRESENCE_SWEEP_SECONDS="0.5")
    servers = [Server(env, tmp_path, "a"), Server(env, tmp_path, "b")]
    yield servers
    for server in servers:
        server.stop()


def test_an_agent_on_a_killed_process_goes_away_and_the_queue_hears_it(short_heartbeat):
    """Issue 14: the agent's socket lives on A, routing runs on B; A is killed -9
    (no close, no clean-up): his socket expires, B's sweeper marks him away, his
    chat goes back to the queue and the queued visitors are offered to leave a
    message. Prints the time from the kill to the offer."""
    a, b = short_heartbeat
    admin = Http()
    data = admin.call("POST", b.url("/api/v1/auth/register"), {
        "team_name": "双进程", "name": "管理员", "email": "admin@example.com",
        "password": "two-proc-1"})
    admin.csrf = data["csrf_token"]
    team_id = data["team"]["id"]
    admin.call("PATCH", b.url("/api/v1/team"), {"settings": {"bot_enabled": False}})
    admin.call("PATCH", b.url(f"/api/v1/agents/{data['agent']['id']}"),
               {"status": "online", "max_concurrent": 1})
    agent = Socket(a.ws("/ws/agent"), admin.cookie())
    agent.expect("hello")

    first = Http().call("POST", b.url("/api/v1/widget/session"), {"team_id": team_id})
    assert first["conversation"]["status"] == "open"  # his socket on A counts on B
    second = Http().call("POST", b.url("/api/v1/widget/session"), {"team_id": team_id})
    assert second["conversation"]["status"] == "queued"
    waiting = Socket(b.ws(f"/ws/visitor?token={second['token']}"))
    waiting.expect("hello")
    served = Socket(b.ws(f"/ws/visitor?token={first['token']}"))
    served.expect("hello")
    # His pings keep him there for longer than the heartbeat.
    for _ in range(HEARTBEAT * 2):
        agent.send("ping")
        agent.expect("pong")
        assert agent.quiet("error", 0.5)  # the next ping after a while
    agents = admin.call("GET", b.url("/api/v1/agents"))
    assert agents[0]["presence"] == "online"

    a.stop(kill=True)
    killed = time.monotonic()
    waiting.expect("conversation", timeout=HEARTBEAT + 10,
                   where=lambda d: d.get("offer_ticket") == "nobody_online")
    print(f"\nprocess killed -> offer: {time.monotonic() - killed:.2f} s "
          f"(heartbeat {HEARTBEAT} s, sweep 0.5 s)")
    served.expect("conversation", where=lambda d: d["status"] == "queued")
    served.expect("conversation", where=lambda d: d.get("offer_ticket") == "nobody_online")
    assert admin.call("GET", b.url("/api/v1/agents"))[0]["presence"] == "away"
    for s in (waiting, served):
        s.close()
