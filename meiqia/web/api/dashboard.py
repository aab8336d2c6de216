"""Home dashboard API (首页): today's figures and a chosen range, within the
viewer's permission scope, read from the figures stored on conversations."""

from __future__ import annotations

import datetime
from zoneinfo import ZoneInfo

from flask import g
from flask import request

from meiqia.services import dashboard
from meiqia.services import dates
from meiqia.services.errors import ValidationError
from meiqia.web.api import route

MAX_DAYS = 366


def _date(name: str, default: datetime.date) -> datetime.date:
    value = request.args.get(name)
    if not value:
        return default
    return dates.parse_day(value, name, f"{name}: expected a date like 2026-11-24, got "
                           f"{value[:40]!r}")


def _range() -> tuple[datetime.date, datetime.date]:
    today = datetime.datetime.now(ZoneInfo(g.actor.team.timezone)).date()
    end = _date("to", today)
    start = _date("from", end - datetime.timedelta(days=6))
    if start > end:
        raise ValidationError("from: must not be after to", "from")
    if (end - start).days >= MAX_DAYS:
        raise ValidationError(f"from: a range of at most {MAX_DAYS} days", "from")
    return start, end


@route("/dashboard", summary="Home dashboard: now, today and a range of team days, in my scope",
       tags=["dashboard"], query={"type": "object", "properties": {
           "from": {"type": "string", "format": "date"},
           "to": {"type": "string", "format": "date"}}},
       description="`from`/`to` are days in the team's time zone (default: the last 7 "
                   "days). `today` and `range` have the same shape.")
def home() -> dict:
    start, end = _range()
    return dashboard.home(g.actor, start, end)
