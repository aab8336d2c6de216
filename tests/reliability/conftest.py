"""Processes the fault tests start and stop themselves: a Redis server of the
test's own (so it can be killed and restarted without touching anyone else's)
and ``meiqia worker`` processes (so one can be SIGKILLed mid-job).

A test that needs ``redis-server`` fails in CI and skips elsewhere when the
binary is missing, like the PostgreSQL and Redis fixtures of tests/conftest.py.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import unavailable
from tests.helpers import wait_until

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """``redis-server`` on a free port, no persistence; stop() and start() again
    on the same port, as an operator restarting Redis would."""

    def __init__(self, tmp: Path) -> None:
        self.binary = shutil.which("redis-server")
        self.port = free_port()
        self.tmp = tmp
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        import redis

        log = open(self.tmp / f"redis-{self.port}.log", "ab")  # noqa: SIM115 - the process keeps it
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.tmp)],
            stdout=log, stderr=subprocess.STDOUT)
        log.close()
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.5)

        def up() -> bool:
            try:
                return bool(client.ping())
            except redis.RedisError:
                return False

        wait_until(up, what=f"redis-server on port {self.port}")
        client.close()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis server this test may kill and restart."""
    server = RedisServer(tmp_path)
    if server.binary is None:
        unavailable("redis-server", "apt-get install redis-server",
                    FileNotFoundError("redis-server not on PATH"))
    server.start()
    yield server
    server.stop()


def meiqia_env(tmp_path: Path, **config: str) -> dict[str, str]:
    """The environment of a ``meiqia`` process configured like the test's app."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEIQIA_")}
    env.update({f"MEIQIA_{k}": str(v) for k, v in config.items()})
    env.setdefault("MEIQIA_SECRET_KEY", "test-secret-key")
    env["MEIQIA_INSTANCE_PATH"] = str(tmp_path / "instance")
    env["PYTHONPATH"] = str(ROOT)  # the worker imports tests.reliability.job_funcs
    env["PYTHONUNBUFFERED"] = "1"
    return env


def descendants(pid: int) -> list[int]:
    """Process ids below ``pid`` (read from /proc: rq's work horse leaves the
    worker's process group with setpgrp, so killpg alone would miss it)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


class WorkerProcess:
    """``meiqia worker`` in a session of its own; kill() takes the rq work horse
    (a forked child) down with it, as a lost host or the OOM killer would."""

    count = 0

    def __init__(self, env: dict[str, str], tmp: Path) -> None:
        WorkerProcess.count += 1
        self.log_path = tmp / f"worker-{WorkerProcess.count}.log"
        log = open(self.log_path, "wb")  # noqa: SIM115 - the process keeps it
        meiqia = Path(sys.executable).with_name("meiqia")
        self.proc = subprocess.Popen([str(meiqia), "worker"], env=env, cwd=ROOT,
                                     stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL the worker and its work horse: nothing gets to clean up."""
        if self.proc.poll() is None:
            for pid in [self.proc.pid, *descendants(self.proc.pid)]:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.terminate()  # rq: warm shutdown, the horse finishes or is killed
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def workers() -> Iterator[list[WorkerProcess]]:
    """Worker processes a test starts; all stopped at the end, whatever happened."""
    started: list[WorkerProcess] = []
    yield started
    for worker in started:
        worker.stop()


class PostgresServer:
    """A PostgreSQL server of the test's own (initdb in a tmp dir, a free port,
    the system's binaries): restart() it as an operator would, without touching
    the shared server other tests use. PostgreSQL refuses to run as root: as root
    the server runs as the ``postgres`` user, in a directory of its own."""

    def __init__(self) -> None:
        import pwd
        import tempfile

        found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
        self.bin = found[-1].parent if found else None
        self.port = free_port()
        self.as_user: list[str] = []
        self.dir = Path(tempfile.mkdtemp(prefix="meiqia-pg-"))
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.chown(self.dir, owner.pw_uid, owner.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self.data = self.dir / "data"
        self.log = self.dir / "postgres.log"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/meiqia"

    def _run(self, *args: str) -> None:
        done = subprocess.run([*self.as_user, *args], capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"{args[0]} failed: {done.stdout}{done.stderr}")

    def init(self) -> None:
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres",
                  "-A", "trust", "--no-sync", "-E", "UTF8")
        self.start()
        import psycopg2

        conn = psycopg2.connect(self.url.rsplit("/", 1)[0] + "/postgres")
        conn.autocommit = True
        conn.cursor().execute("CREATE DATABASE meiqia")
        conn.close()

    def _ctl(self, *args: str) -> None:
        options = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off")
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log),
                  "-w", "-t", "60", "-o", options, *args)

    def start(self) -> None:
        self._ctl("start")

    def restart(self) -> None:
        """``pg_ctl restart -m fast``: every connection is cut, the server is back
        on the same port a moment later."""
        self._ctl("-m", "fast", "restart")

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._ctl("-m", "immediate", "stop")
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server this test may restart."""
    server = PostgresServer()
    if server.bin is None:
        unavailable("a PostgreSQL server of the test's own", "apt-get install postgresql",
                    FileNotFoundError("no /usr/lib/postgresql/*/bin/pg_ctl"))
    try:
        server.init()
    except Exception:
        server.stop()
        raise
    yield server
    server.stop()
