"""The parent of ``meiqia worker``: starts the worker loops and watches them.

``meiqia worker`` runs one worker loop per queue class in a process of its own
(docs/deploy.md, "Jobs"; ``meiqia.job_worker`` is the loop). This process only
starts them (``meiqia worker --queue <class>``), starts again one that died and
passes SIGTERM/SIGINT on. It runs no job, so it needs no Flask app, no database,
no hub and no rq: it reads the configuration (``meiqia.cli``) and imports nothing
but the standard library here. Built like a loop, it held as much memory as one
(about 190 MB: the models, the plugins, the knowledge base); see docs/deploy.md
for what it holds now.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from typing import Any

log = logging.getLogger(__name__)

#: Longest wait between two starts of a loop that keeps dying (seconds).
MAX_BACKOFF = 30.0
#: Seconds a loop must have run to count as started well (its next death restarts
#: it at once); one that dies sooner is started again after a growing wait.
STEADY_SECONDS = 60.0
#: How the parent starts a loop: ``meiqia worker --queue <class>`` in a fresh
#: interpreter (the parent has not imported what a loop needs).
CHILD = "import sys; from meiqia.cli import cli; sys.argv[0] = 'meiqia'; cli()"


def loop_plan(config: Mapping[str, Any]) -> list[str]:
    """The queue class of each worker loop one ``meiqia worker`` runs."""
    urgent = max(1, int(config.get("JOB_URGENT_WORKERS", 1)))
    return ["urgent"] * urgent + ["default"]


class _Loop:
    """One worker loop's child process, started again when it dies unasked."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.proc: subprocess.Popen[bytes] | None = None
        self.started = 0.0
        self.due = 0.0  # when to start it (again)
        self.backoff = 1.0
        self.first = True  # its first start, not yet seen running
        self.asked: subprocess.Popen[bytes] | None = None  # the process sent SIGTERM

    def start(self) -> None:
        env = {**os.environ, "MEIQIA_WORKER_PARENT": str(os.getpid())}
        self.proc = subprocess.Popen([sys.executable, "-c", CHILD, "worker", "--queue",
                                      self.kind], env=env)
        self.started = time.monotonic()
        log.info("worker: started the %s loop (pid %d)", self.kind, self.proc.pid)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        """SIGTERM, once per process (rq takes a second one as a cold shutdown: the
        running job killed)."""
        if self.alive() and self.asked is not self.proc:
            self.asked = self.proc
            try:
                self.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
            except ProcessLookupError:
                pass


def supervise(config: Mapping[str, Any]) -> int:
    """Run the worker loops (``loop_plan``) as child processes until SIGTERM/SIGINT.

    The signal is passed on to every loop (rq's warm shutdown: a running job
    finishes first; rq ignores the copy a service manager or a terminal sends the
    child as well within a second), and this returns once every loop has ended. A
    loop that ends unasked (killed, crashed) is started again, at once if it had
    run for a while, else after a wait that doubles up to ``MAX_BACKOFF``. A loop
    whose first start fails (exit code > 0 within ``STEADY_SECONDS``: it could not
    start) stops them all; the exit code to end with is returned (0: stopped)."""
    failed = 0
    loops = [_Loop(kind) for kind in loop_plan(config)]
    stopping = threading.Event()

    def stop(signum: int, _frame: Any) -> None:
        if not stopping.is_set():
            log.info("worker: %s; stopping the worker loops (running jobs finish first)",
                     signal.Signals(signum).name)
        stopping.set()
        for loop in loops:
            loop.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while True:
        now = time.monotonic()
        for loop in loops:
            if stopping.is_set() or loop.alive() or now < loop.due:
                continue
            if loop.proc is not None:  # it died, nobody asked it to stop
                ran = now - loop.started
                if loop.due < loop.started:  # not waited for yet: wait, then start
                    if loop.first and loop.proc.returncode > 0 and ran < STEADY_SECONDS:
                        # It could not start (a bad setting, a plugin that does not
                        # load, the database away): fail as one process would, and
                        # the service manager starts the command again.
                        log.error("worker: the %s loop could not start (exit code %d); "
                                  "stopping", loop.kind, loop.proc.returncode)
                        failed = loop.proc.returncode
                        stopping.set()
                        continue
                    loop.backoff = (1.0 if ran > STEADY_SECONDS
                                    else min(loop.backoff * 2, MAX_BACKOFF))
                    loop.due = now + (0.0 if ran > STEADY_SECONDS else loop.backoff)
                    log.error("worker: the %s loop (pid %d) ended with %s; starting it "
                              "again%s", loop.kind, loop.proc.pid, loop.proc.returncode,
                              "" if loop.due <= now else f" in {loop.due - now:.0f} s")
                    if loop.due > now:
                        continue
            loop.first = loop.proc is None
            loop.start()
        if stopping.is_set():
            for loop in loops:  # also one started as the signal came
                loop.stop()
            if not any(loop.alive() for loop in loops):
                return failed
        stopping.wait(0.5)


def die_with_parent() -> None:
    """A loop started by ``supervise`` gets SIGTERM (a warm stop) when its parent
    dies, however (Linux), so no loop outlives a killed ``meiqia worker``."""
    parent = os.environ.get("MEIQIA_WORKER_PARENT")
    if parent:
        die_with(int(parent))


def die_with(parent: int) -> None:
    """This process gets SIGTERM when ``parent`` dies, however (Linux; elsewhere
    nothing). The setting is not inherited by a fork: each child that must not
    outlive its parent calls this itself (a worker loop, the loop's rq scheduler)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # it died before the call above
        os.kill(os.getpid(), signal.SIGTERM)
