"""Processes the fault tests start and stop themselves: a PostgreSQL server of
the test's own (tests/servers.py: it can be killed and restarted without
touching anyone else's; ``own_redis``, its Redis twin, is in tests/conftest.py
since tests outside this folder use it too) and ``meiqia worker`` processes (so
one can be SIGKILLed mid-job).

A test that needs ``redis-server`` or PostgreSQL's binaries fails in CI and
skips elsewhere when they are missing, like the fixtures of tests/conftest.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import unavailable
from tests.servers import PostgresServer

ROOT = Path(__file__).resolve().parents[2]


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
                # Generous: near the end of a loaded full run the interpreter's own
                # exit (scikit-learn and friends unloading) took over 10 s.
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def workers() -> Iterator[list[WorkerProcess]]:
    """Worker processes a test starts; all stopped at the end, whatever happened."""
    started: list[WorkerProcess] = []
    yield started
    for worker in started:
        worker.stop()


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
