"""One warning when something starts failing, a count while it goes on, one line
when it works again: what a process logs for failures that come by the hundred
during an outage (a publish to a Redis that is down, a socket frame the
database cannot take).

A 20 s Redis outage made each web process log 96 ``hub: publish to … failed``
warnings, and a PostgreSQL stop one two-line warning per refused socket frame:
the one line an operator needs (it started, how many, it is over) was lost
among them. The counterpart for background loops that wait and try again
(sweeps, recovery passes) is ``db.Outage``.
"""

from __future__ import annotations

import threading
import time
from typing import Any

#: At most one summary line per this many seconds while the failures go on.
SUMMARY_SECONDS = 30.0


def first_line(exc: BaseException) -> str:
    """An exception's text on one line: psycopg2's messages carry ``\\n\\t``
    (the server's text, then a hint), which split one warning over two."""
    return " ".join(str(exc).split()) or type(exc).__name__


class FailureLog:
    """The log of one kind of failure in this process (thread-safe).

    ``failed`` on each failure, with its own one-line message: the first of a
    run logs it as a warning; later ones are counted and summed up at most every
    ``every`` seconds (the summary is written by the failure that comes after the
    interval, so a run that stops failing says its count in the closing line).
    ``succeeded`` on each success logs one line if it ends a run of failures; it
    costs nothing otherwise. ``what`` names the thing that fails in those lines.
    """

    def __init__(self, logger: Any, what: str, hint: str = "",
                 every: float = SUMMARY_SECONDS) -> None:
        self.log = logger
        self.what = what
        self.hint = hint
        self.every = every
        self._lock = threading.Lock()
        self.since: float | None = None  # when the current run of failures began
        self.count = 0  # failures in the current run
        self._unsaid = 0  # failures since the last line
        self._said = 0.0  # when the last line was written

    @property
    def failing(self) -> bool:
        return self.since is not None

    def failed(self, message: str) -> None:
        """One failure, said in one line (see ``first_line``)."""
        now = time.monotonic()
        with self._lock:
            self.count += 1
            if self.since is None:
                self.since = self._said = now
                self._unsaid = 0
                hint = f"; {self.hint}" if self.hint else ""
                self.log.warning("%s%s; further failures are counted, one line every %.0f s "
                                 "at most", message, hint, self.every)
                return
            self._unsaid += 1
            if now - self._said < self.every:
                return
            unsaid, self._unsaid, self._said = self._unsaid, 0, now
            total, began = self.count, self.since
        self.log.warning("%s still failing: %d more failure(s) in the last %.0f s (%d in "
                         "%.0f s); the last: %s", self.what, unsaid, self.every, total,
                         now - began, message)

    def succeeded(self) -> None:
        """A success: one line if it ends a run of failures."""
        if self.since is None:
            return
        with self._lock:
            if self.since is None:
                return
            took, total = time.monotonic() - self.since, self.count
            self.since, self.count, self._unsaid = None, 0, 0
        self.log.info("%s works again (after %.0f s, %d failure(s))", self.what, took, total)
