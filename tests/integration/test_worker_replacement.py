"""A gunicorn worker that crashes or is replaced by a deploy costs no visitor a wait.

Production shape (docs/deploy.md §3): gunicorn with ``meiqia.gunicorn_conf`` (gevent
on PostgreSQL, 2 workers, a socket per worker with ``SO_REUSEPORT``). The app's load
in a new worker is held at a gate (``tests/integration/gated_boot.py``) for as long
as the test makes its requests, so every request below is made while a worker is
still booting. Each must be answered by a worker that can serve: before the fix the
kernel hashed about half of them to the booting worker's socket, where they waited
out its boot (here: the per-request timeout, far shorter than the gate, which is
released only after the requests).

- ``kill -9`` of a worker: its replacement joins the balancing once its app is loaded;
- ``kill -HUP`` of the master (a deploy): the old workers keep serving until their
  replacements can, then stop.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.helpers import wait_until
from tests.integration.test_two_processes import cluster_env
from tests.servers import free_port

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
REQUESTS = 16
#: Per request: generous, and far below the gate, which stays closed until all are made.
REQUEST_TIMEOUT = 10


class Gunicorn:
    def __init__(self, env: dict[str, str], tmp: Path) -> None:
        self.port = free_port()
        self.boot = tmp / "boot"
        self.boot.mkdir(parents=True)
        self.log_path = tmp / "gunicorn.log"
        env = {**env, "MEIQIA_WORKERS": "2", "MEIQIA_BIND": f"127.0.0.1:{self.port}",
               "MEIQIA_TEST_BOOT_DIR": str(self.boot), "PYTHONPATH": str(ROOT)}
        with self.log_path.open("w") as out:
            self.proc = subprocess.Popen(
                [str(BIN / "gunicorn"), "-c", "python:meiqia.gunicorn_conf",
                 "tests.integration.gated_boot:app"],
                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True)

    def log(self) -> str:
        return self.log_path.read_text()

    def pids(self, state: str) -> set[int]:
        return {int(p.name.split("-")[1]) for p in self.boot.glob(f"{state}-*")}

    def booting(self) -> set[int]:
        return self.pids("loading") - self.pids("loaded")

    def gate(self, closed: bool) -> None:
        gate = self.boot / "gate"
        if closed:
            gate.touch()
        else:
            gate.unlink()

    def healthz(self) -> object:
        """The status of one request on a new connection, or the error it met."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz",
                                        timeout=REQUEST_TIMEOUT) as response:
                return response.status
        except urllib.error.HTTPError as exc:
            return exc.code
        except OSError as exc:
            return repr(exc)

    def ready(self) -> set[int]:
        """Both workers loaded and the port answering: the two workers' pids."""
        def up() -> set[int] | None:
            assert self.proc.poll() is None, self.log()
            loaded = self.pids("loaded")
            return loaded if len(loaded - self.gone()) == 2 and self.healthz() == 200 else None
        return wait_until(up, timeout=120, what="two workers up") - self.gone()

    @staticmethod
    def exists(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True

    def gone(self) -> set[int]:
        return {pid for pid in self.pids("loading") if not self.exists(pid)}

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)


@pytest.fixture
def gunicorn(tmp_path, pg_database_url, redis_url, redis_prefix):
    server = Gunicorn(cluster_env(tmp_path, pg_database_url, redis_url, redis_prefix), tmp_path)
    try:
        yield server
    finally:
        if (server.boot / "gate").exists():
            server.gate(False)
        server.stop()


def assert_answered_while_booting(server: Gunicorn, booting: set[int]) -> None:
    """``REQUESTS`` requests on new connections, each answered (the first that is
    not ends the round), while the workers ``booting`` still are."""
    answers: list[object] = []
    while len(answers) < REQUESTS and (not answers or answers[-1] == 200):
        answers.append(server.healthz())
    assert answers == [200] * REQUESTS, answers
    # The gate is still closed: every request was made during the boot.
    assert server.booting() >= booting


def test_a_killed_worker_s_replacement_takes_no_connection_before_it_can_serve(gunicorn):
    first = gunicorn.ready()
    assert "Using worker: gevent" in gunicorn.log()
    assert "a socket per worker, SO_REUSEPORT" in gunicorn.log()
    gunicorn.gate(True)
    killed = min(first)
    os.kill(killed, signal.SIGKILL)
    replacement = wait_until(lambda: gunicorn.booting(), what="a replacement worker booting")

    assert_answered_while_booting(gunicorn, replacement)

    gunicorn.gate(False)
    assert gunicorn.ready() == (first - {killed}) | replacement
    assert [gunicorn.healthz() for _ in range(REQUESTS)] == [200] * REQUESTS
    gunicorn.stop()
    assert gunicorn.proc.returncode == 0, gunicorn.log()
    assert "Traceback" not in gunicorn.log(), gunicorn.log()


def test_a_deploy_s_old_workers_serve_until_their_replacements_can(gunicorn):
    old = gunicorn.ready()
    gunicorn.gate(True)
    os.kill(gunicorn.proc.pid, signal.SIGHUP)
    new = wait_until(lambda: gunicorn.booting() if len(gunicorn.booting()) == 2 else None,
                     what="two new workers booting")

    assert_answered_while_booting(gunicorn, new)

    gunicorn.gate(False)
    wait_until(lambda: not any(gunicorn.exists(pid) for pid in old),
               what="the old workers gone once the new ones serve")
    assert gunicorn.ready() == new
    assert [gunicorn.healthz() for _ in range(REQUESTS)] == [200] * REQUESTS
    gunicorn.stop()
    assert gunicorn.proc.returncode == 0, gunicorn.log()
    assert "Traceback" not in gunicorn.log(), gunicorn.log()


def test_a_master_killed_with_sigkill_leaves_no_record_behind_the_next_start(
        tmp_path, pg_database_url, redis_url, redis_prefix):
    """The master's record of its workers (``worker_listeners.Record``) is removed by
    its ``on_exit``, which SIGKILL skips: an operator who restarts that way gathered
    one directory per start in the temporary folder. The next master removes those
    whose master is gone, and only those."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {**cluster_env(tmp_path, pg_database_url, redis_url, redis_prefix), "TMPDIR": str(temp),
           "HOME": str(tmp_path)}
    records = lambda: {p.name for p in temp.glob("meiqia-workers-*")}  # noqa: E731
    other = temp / "meiqia-workers-1-alive"  # pid 1 lives: not an orphan
    other.mkdir()
    killed = Gunicorn(env, tmp_path / "first")
    try:
        killed.ready()
        first = records() - {other.name}
        assert len(first) == 1 and first.pop().startswith(f"meiqia-workers-{killed.proc.pid}-")
    finally:
        os.killpg(killed.proc.pid, signal.SIGKILL)
        killed.proc.wait(timeout=10)
    assert len(records()) == 2  # SIGKILL: its record stays

    second = Gunicorn(env, tmp_path / "second")
    try:
        second.ready()
        kept = records()
        assert other.name in kept and len(kept) == 2
        assert any(name.startswith(f"meiqia-workers-{second.proc.pid}-") for name in kept)
    finally:
        second.stop()
    assert records() == {other.name}  # a clean stop removes its own
    # No control socket at the one path per user (~/.gunicorn/gunicorn.ctl) that a
    # second instance on the host took from the first.
    assert not (tmp_path / ".gunicorn").exists()
