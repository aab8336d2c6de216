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


def utc_bound(raw: str, name: str, tz: ZoneInfo, end: bool, expected: str) -> datetime.datetime:
    """A date (or date-time) of a range filter → a naive UTC bound.

    A bare date means the team's local midnight; as the ``end`` of a range, the
    midnight after it (so "to 2026-11-24" includes that day). A date-time with
    an offset (``Z``, ``+08:00``) is taken as written.
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
    if len(raw) <= 10 and end:
        parsed += datetime.timedelta(days=1)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=tz)
    return parsed.astimezone(datetime.UTC).replace(tzinfo=None)


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
