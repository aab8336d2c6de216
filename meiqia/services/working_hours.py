"""When the team's people answer (the ``working_hours`` setting; issue 17, item 1).

``mode`` is ``""`` (not chosen yet: always open, as before), ``always``, or
``hours``: open on ``days`` (ISO weekdays, 1 = Monday) from ``start`` to ``end``
(``HH:MM`` on the team's clock; an ``end`` at or before ``start`` runs past
midnight into the next day). Outside them ``capacity.availability`` says
nobody is online, so routing, the widget and the ticket scenarios all treat the
visitor as they do when nobody is there: he may leave a message. Agents who
are online anyway still take what is already queued.
"""

from __future__ import annotations

import datetime
from typing import Any
from zoneinfo import ZoneInfo
from zoneinfo import ZoneInfoNotFoundError

from meiqia.models.base import utcnow

MODES = ("", "always", "hours")
HHMM = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"
DEFAULT = {"mode": "", "days": [1, 2, 3, 4, 5], "start": "09:00", "end": "18:00"}
SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "mode": {"type": "string", "enum": list(MODES)},
        "days": {"type": "array", "maxItems": 7,
                 "items": {"type": "integer", "minimum": 1, "maximum": 7}},
        "start": {"type": "string", "pattern": HHMM},
        "end": {"type": "string", "pattern": HHMM},
    },
}


def is_open(hours: dict[str, Any], timezone: str, now: datetime.datetime | None = None) -> bool:
    """Whether people answer at ``now`` (naive UTC; default: now)."""
    if (hours or {}).get("mode") != "hours":
        return True
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    local = (now or utcnow()).replace(tzinfo=datetime.UTC).astimezone(zone)
    clock = local.strftime("%H:%M")
    days = set(hours.get("days") or [])
    start, end = hours.get("start", "09:00"), hours.get("end", "18:00")
    if start < end:
        return local.isoweekday() in days and start <= clock < end
    # Past midnight: the evening belongs to today, the small hours to yesterday.
    if clock >= start:
        return local.isoweekday() in days
    yesterday = (local - datetime.timedelta(days=1)).isoweekday()
    return clock < end and yesterday in days


def team_is_open(team_id: int) -> bool:
    """``is_open`` for a team, by its settings and time zone (a missing team: open)."""
    from meiqia.services.teams import recent

    team = recent(team_id)  # at most a second old: routing asks for every new chat
    if team is None:
        return True
    return is_open(team.settings["working_hours"], team.timezone)
