"""The clock every stored time is read from (``models.base.utcnow``).

Real UTC time plus an offset that is zero in production. Tests move it
(``meiqia.testing.Clock``, the ``meiqia_clock`` fixture) to see what happens
an hour or a day later (the inactivity rule, a plugin's suspension ending, a
dashboard's "yesterday") without sleeping and without patching meiqia's
modules. The offset is the process's: every app and every thread of the
process reads the moved time. What does not move: time.monotonic() (budgets,
sweep intervals, socket deadlines) and signatures checked with time.time()
(visitor and iframe tokens).
"""

from __future__ import annotations

import datetime
import threading

_offset = datetime.timedelta(0)
_lock = threading.Lock()


def utcnow() -> datetime.datetime:
    """The current UTC time as a naive datetime (how every time is stored)."""
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None) + _offset


def offset() -> datetime.timedelta:
    """How far the clock has been moved from real time."""
    return _offset


def set_offset(delta: datetime.timedelta) -> None:
    """Move the clock to real time + ``delta`` (``timedelta(0)``: real time again)."""
    global _offset
    with _lock:
        _offset = delta


def advance(delta: datetime.timedelta) -> datetime.timedelta:
    """Move the clock forward by ``delta`` (backwards if negative); the new offset."""
    global _offset
    with _lock:
        _offset = _offset + delta
        return _offset
