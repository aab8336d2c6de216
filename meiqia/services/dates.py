"""Dates and date-times a client typed (filters, ranges) → checked values.

Python's dates end at 0001-01-01 and 9999-12-31: ``9999-12-31`` as an "until"
day becomes 10000-01-01 when a day is added, and ``0001-01-01`` in the team's
time zone (Asia/Shanghai, +08:00) is before the first UTC instant; both raised
OverflowError inside a service (a 500). Every date a filter takes is read here,
within ``EARLIEST``..``LATEST``, so that a day added and any time-zone shift
stay inside the calendar; outside it is a 422 naming the field.
"""

from __future__ import annotations

import datetime
import re
from zoneinfo import ZoneInfo
from zoneinfo import ZoneInfoNotFoundError

from meiqia.services.errors import ValidationError

#: The first and the last day a filter may name (inclusive).
EARLIEST = datetime.date(1900, 1, 1)
LATEST = datetime.date(9998, 12, 31)


def _in_range(day: datetime.date, name: str) -> None:
    if not EARLIEST <= day <= LATEST:
        raise ValidationError(f"{name}: must be a day between {EARLIEST.isoformat()} and "
                              f"{LATEST.isoformat()}", name)


def check_timezone(zone: str) -> str:
    """A team's time zone as a client typed it (``Asia/Shanghai``), checked: every
    report, filter and export of the team reads its days in it, so a name
    ``ZoneInfo`` does not know is a 422 here, not a 500 there. Registration and
    ``PATCH /team`` both check with this."""
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        # OSError: a folder of the zone database ("Asia") is no zone either.
        raise ValidationError("timezone: unknown time zone, e.g. Asia/Shanghai",
                              "timezone") from None
    return zone


def parse_day(raw: str, name: str, expected: str) -> datetime.date:
    """A calendar day ``2026-11-24``; ``expected`` is the 422 for text that is not one."""
    try:
        day = datetime.date.fromisoformat(raw)
    except ValueError:
        raise ValidationError(expected, name) from None
    _in_range(day, name)
    return day


#: A date (2026-11-24), or a date and time with an optional offset
#: (2026-11-24T08:00, 2026-11-24 08:00:00+08:00, 2026-11-24T00:00Z).
_ISO = re.compile(r"\d{4}-\d{2}-\d{2}"
                  r"([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2})?)?")
#: A range filter's bound as ``utc_bound`` takes it, for a schema (OpenAPI, ``check``).
DATE_OR_TIME = {"type": "string", "pattern": f"^{_ISO.pattern}$",
                "description": "a day (2026-11-24, in the team's time zone) or a date-time "
                "(2026-11-24T08:00, with an optional offset: Z, +08:00), "
                "1900-01-01..9998-12-31"}


def instant(wall: datetime.datetime, tz: ZoneInfo, latest: bool = False) -> datetime.datetime:
    """A time on the team's clock (naive) → the naive UTC instant a range bound means.

    The clock does not name one instant for every time. When daylight saving
    ends, an hour is shown twice (New York: 01:00-01:59 EST after 01:00-01:59
    EDT): a range's start takes the earliest of the two (``latest=False``) and
    its end the latest (``latest=True``), so a range that names that hour holds
    both; taking the first one alone (``fold=0``) lost the second hour from
    every "to". When it begins, an hour is never shown (New York, 2026-03-08:
    02:00 EST is followed by 03:00 EDT): a time in the gap (02:30) means the
    instant of the jump, the first one whose clock shows that time or later, as
    a start and as an end alike.
    """
    first = wall.replace(tzinfo=tz, fold=0).astimezone(datetime.UTC)
    second = wall.replace(tzinfo=tz, fold=1).astimezone(datetime.UTC)
    if first == second:  # the clock shows this time once
        return first.replace(tzinfo=None)
    if first.astimezone(tz).replace(tzinfo=None) == wall:  # shown twice
        return (max if latest else min)(first, second).replace(tzinfo=None)
    return _jump(min(first, second), max(first, second), tz).replace(tzinfo=None)


def _jump(before: datetime.datetime, after: datetime.datetime,
          tz: ZoneInfo) -> datetime.datetime:
    """The instant the offset of ``tz`` changes, between two UTC instants on
    either side of it (a gap is at most a day wide: ~17 halvings of seconds;
    the zone database's transitions fall on whole seconds)."""
    new = after.astimezone(tz).utcoffset()
    low = int(before.timestamp() // 1)  # old offset here
    high = -int(-after.timestamp() // 1)  # new offset here
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.datetime.fromtimestamp(middle, tz).utcoffset() == new:
            high = middle
        else:
            low = middle
    return datetime.datetime.fromtimestamp(high, datetime.UTC)


def day_start(day: datetime.date, tz: ZoneInfo) -> datetime.datetime:
    """The first instant (naive UTC) of a day of the team: its local midnight,
    the first one if the clock shows it twice, the jump if it skips it. A day
    ``[day_start(d), day_start(d + 1 day))`` is then exactly as long as the
    team's day: 25 hours when daylight saving ends, 23 when it begins."""
    return instant(datetime.datetime.combine(day, datetime.time()), tz)


def utc_bound(raw: str, name: str, tz: ZoneInfo, end: bool, expected: str) -> datetime.datetime:
    """A date (or date-time) of a range filter → a naive UTC bound.

    A bare date means the start of that team day (``day_start``); as the ``end``
    of a range, the start of the day after it (so "to 2026-11-24" includes that
    day, whatever its length). A date-time without an offset is on the team's
    clock (``instant``: a repeated hour counts whole for a start and an end, a
    skipped time is the jump); with an offset (``Z``, ``+08:00``) it is taken as
    written.
    """
    if not _ISO.fullmatch(raw):
        # Python's parser also takes 20261206 and 2026-W49-6: not what the doc says.
        raise ValidationError(expected, name)
    try:
        parsed = datetime.datetime.fromisoformat(raw.replace("Z", "+00:00")
                                                 if raw.endswith("Z") else raw)
    except ValueError:
        raise ValidationError(expected, name) from None
    _in_range(parsed.date(), name)
    if len(raw) <= 10:
        return day_start(parsed.date() + datetime.timedelta(days=1 if end else 0), tz)
    if parsed.tzinfo is None:
        return instant(parsed, tz, latest=end)
    return parsed.astimezone(datetime.UTC).replace(tzinfo=None)


def _wall(raw: str, end: bool) -> datetime.datetime | None:
    """The time on the team's clock a range bound names as typed (a day: its
    midnight, as an end the next one), None when it carries an offset. ``raw``
    has passed ``utc_bound``."""
    if len(raw) <= 10:
        day = datetime.date.fromisoformat(raw)
        return datetime.datetime.combine(day + datetime.timedelta(days=1 if end else 0),
                                         datetime.time())
    parsed = datetime.datetime.fromisoformat(raw.replace("Z", "+00:00")
                                             if raw.endswith("Z") else raw)
    return parsed if parsed.tzinfo is None else None


def reversed_range(raw_from: str, raw_to: str, lo: datetime.datetime,
                   hi: datetime.datetime) -> bool:
    """Whether a range's start is after its end (a 422), as the user wrote them:
    two bounds on the team's clock are compared on it, others as instants
    (``lo``, ``hi`` from ``utc_bound``). A start equal to the end is no mistake but
    a range that holds no time, answered empty (200); so is one entirely inside a
    time the clock skips (New York, 2026-03-08 02:10 to 02:50: both ends are the
    instant of the jump, yet 02:10 is before 02:50 on the clock the user reads),
    and a team day the clock skips whole (Pacific/Apia, 2011-12-30)."""
    start, end = _wall(raw_from, False), _wall(raw_to, True)
    if start is not None and end is not None:
        return start > end
    return lo > hi


def team_clock(value: str | datetime.datetime | None, zone: str,
               fmt: str = "%Y-%m-%d %H:%M") -> str:
    """A stored time (naive UTC, or an ISO string with ``Z``) on the team's clock, for
    text a person reads outside the pages (e-mails, transcripts). Empty for none."""
    if not value:
        return ""
    if isinstance(value, str):
        try:
            value = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.UTC)
    try:
        tz = ZoneInfo(zone)
    except (ValueError, KeyError):
        tz = ZoneInfo("UTC")
    return value.astimezone(tz).strftime(fmt)
