"""One budget of waiting per unit of work, on either database.

docs/protocol.md ("The database busy") promises that a message waits for the
database at most ``DATABASE_BUSY_TIMEOUT`` in all. A unit of work (a request, a
socket frame's unit, a ``db.connection()`` block: from the connection's open to
its close) may wait several times: a socket frame for its turn at the process's
gate (``ws.socket_unit``), a SQLite writer for the process's writers' line and
SQLite's lock (``db.ImmediateSqliteDatabase``), a PostgreSQL statement for a row
lock (``db.lock_bound``). Each used to have the whole timeout. They now take
their waits from this budget, and whoever waited before the connection opened
says so (``spend``).

The budget is per thread, a greenlet under gevent: the database object makes it
in its ``__init__``, after ``meiqia run`` has patched ``threading``.
"""

from __future__ import annotations

import threading


class WaitBudget:
    """A mixin of the database classes: ``wait_left`` and ``spend`` for the unit
    of work of the calling thread; ``new_unit`` when its connection opens."""

    def init_budget(self, seconds: float) -> None:
        self._budget_seconds = seconds
        self._waits = threading.local()

    def new_unit(self) -> None:
        self._waits.left = self._budget_seconds

    def end_unit(self) -> None:
        self._waits.left = None

    def wait_left(self) -> float:
        """Seconds this unit of work may still wait (the whole budget outside one)."""
        left = getattr(self._waits, "left", None)
        return self._budget_seconds if left is None else left

    def spend(self, seconds: float) -> None:
        self._waits.left = max(0.0, self.wait_left() - seconds)
