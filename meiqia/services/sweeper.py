"""One background thread per process that runs a sweep every few seconds.

The inactivity rule (``services/inactivity.py``) and agent presence
(``services/presence.py``) each sweep the database on a timer in every web
process. The thread starts with the process's first request, because a forked
gunicorn worker does not inherit the master's threads. A sweep that fails
because the database does (unreachable, cut) logs one warning, backs off and
logs one line when the database answers again (``db.Outage``); any other
failure is logged with its traceback and tried again at the next tick.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import Any

from flask import Flask

log = logging.getLogger(__name__)


class Sweeper:
    """Runs ``sweep()`` every ``interval`` seconds in a thread of this process."""

    def __init__(self, app: Flask, interval: float, sweep: Callable[[], Any],
                 name: str) -> None:
        self.app = app
        self.interval = interval
        self.sweep = sweep
        self.name = name
        self.pid: int | None = None
        self.stopped = threading.Event()
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None

    def ensure_running(self) -> None:
        """Start the thread in this process if it is not running."""
        if self.pid == os.getpid() or self.stopped.is_set():
            return
        with self.lock:
            if self.pid == os.getpid():
                return
            self.thread = threading.Thread(target=self._run, name=f"meiqia-{self.name}",
                                           daemon=True)
            self.thread.start()
            self.pid = os.getpid()

    def _run(self) -> None:
        from meiqia.db import Outage
        from meiqia.db import connection

        # Back-off to 10 s at most: presence must catch up soon after the database.
        outage = Outage(log, self.name, first=max(1.0, self.interval),
                        most=max(10.0, self.interval))
        wait = self.interval
        while not self.stopped.wait(wait):
            wait = self.interval
            try:
                with self.app.app_context(), connection():
                    count = self.sweep()
                outage.recovered()
                if count:
                    log.info("%s: the sweep handled %d", self.name, count)
            except Exception as exc:  # noqa: BLE001 - try again next time
                backoff = outage.failed(exc)
                if backoff is None:  # not the database's failure: a bug
                    log.exception("%s: the sweep failed", self.name)
                else:  # the database is down: warned once, waits longer
                    wait = backoff

    def stop(self) -> None:
        self.stopped.set()


def install(app: Flask, interval_key: str, extension: str, sweep: Callable[[], Any],
            name: str) -> Sweeper | None:
    """Arrange for this process's sweeper to start with its first request
    (``app.config[interval_key]`` seconds; 0 leaves the sweep to its callers)."""
    interval = app.config.get(interval_key, 0)
    if not interval:
        return None
    sweeper = Sweeper(app, float(interval), sweep, name)
    app.extensions[extension] = sweeper
    app.before_request(sweeper.ensure_running)
    return sweeper
