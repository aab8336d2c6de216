"""A clock a test moves: ``meiqia.clock`` (what ``models.base.utcnow`` reads)."""

from __future__ import annotations

import datetime

from meiqia import clock


class Clock:
    """The process's clock, moved by a test; ``reset()`` (the fixture's teardown)
    puts it back to real time.

    ``now()`` is what meiqia reads; ``advance(minutes=31)`` moves it forward
    (keywords of ``datetime.timedelta``); ``set(when)`` moves it to a naive UTC
    ``when``. Real time keeps running underneath: ``now()`` is real time plus
    the offset, so a moved clock still ticks."""

    def now(self) -> datetime.datetime:
        return clock.utcnow()

    def advance(self, delta: datetime.timedelta | None = None, **units: float) -> datetime.datetime:
        clock.advance((delta or datetime.timedelta(0)) + datetime.timedelta(**units))
        return self.now()

    def set(self, when: datetime.datetime) -> datetime.datetime:
        if when.tzinfo is not None:
            when = when.astimezone(datetime.UTC).replace(tzinfo=None)
        real = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
        clock.set_offset(when - real)
        return self.now()

    @property
    def offset(self) -> datetime.timedelta:
        return clock.offset()

    def reset(self) -> None:
        clock.set_offset(datetime.timedelta(0))
