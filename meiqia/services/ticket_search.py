"""Ticket lists: every filter of the ticket issue, within the viewer's scope.

Filters arrive as query-string text and are checked here (a bad value is a 422
naming it, never an empty list). Counts per status ignore the status filter,
so the tabs of the ticket list show what each would hold. Dates without a time
are days in the team's time zone; the end day is included.
"""

from __future__ import annotations

import datetime
from typing import Any
from zoneinfo import ZoneInfo

import peewee

from meiqia.db import is_postgres
from meiqia.models import Agent
from meiqia.models import Ticket
from meiqia.models.tickets import PRIORITIES
from meiqia.models.tickets import SOURCES
from meiqia.models.tickets import STATUSES
from meiqia.services import dates
from meiqia.services import permissions
from meiqia.services.errors import ValidationError
from meiqia.services.validation import INT_MAX
from meiqia.services.validation import PAGE
from meiqia.services.validation import parse_int

#: The query parameters, documented in the OpenAPI document.
LIST_QUERY = {"type": "object", "additionalProperties": False, "properties": {
    "status": {"type": "string", "enum": list(STATUSES)},
    "source": {"type": "string", "enum": list(SOURCES)},
    "priority": {"type": "string", "enum": list(PRIORITIES)},
    "assignee_id": {"type": "string", "description": "an agent id, or `none` (unassigned)"},
    "group_id": {"type": "integer"},
    "since": {"type": "string", "description": "created at or after (date or date-time)"},
    "until": {"type": "string", "description": "created up to (a date: that whole day); "
              "not before `since` (a range that holds no time finds nothing)"},
    "q": {"type": "string", "description": "text in subject, content or contact"},
    "mine": {"type": "boolean", "description": "assigned to me"},
    "page": PAGE,
    "per_page": {"type": "integer", "minimum": 1, "maximum": 200}}}


def _enum(args: dict[str, str], name: str, allowed: tuple[str, ...]) -> str | None:
    value = args.get(name) or None
    if value is not None and value not in allowed:
        raise ValidationError(f"{name}: must be one of {', '.join(allowed)}", name)
    return value


def _int(args: dict[str, str], name: str, default: int | None, low: int = 1,
         high: int = INT_MAX) -> int | None:
    return parse_int(args.get(name), name, default, low, high)


def _bound(raw: str | None, name: str, tz: ZoneInfo, end: bool) -> datetime.datetime | None:
    if not raw:
        return None
    return dates.utc_bound(raw, name, tz, end, f"{name}: expected a date like 2026-11-24 or a "
                           "date-time like 2026-11-24T08:00:00Z")


def parse_filters(actor: Agent, args: dict[str, str]) -> dict[str, Any]:
    """Query-string text → checked filters (422 naming the first bad one)."""
    tz = ZoneInfo(actor.team.timezone)
    assignee = args.get("assignee_id") or None
    if assignee is not None and assignee != "none":
        assignee = _int(args, "assignee_id", None)
    mine = (args.get("mine") or "false").lower()
    if mine not in {"true", "false", "1", "0"}:
        raise ValidationError("mine: expected true or false", "mine")
    filters = {
        "status": _enum(args, "status", STATUSES),
        "source": _enum(args, "source", SOURCES),
        "priority": _enum(args, "priority", PRIORITIES),
        "assignee_id": assignee,
        "group_id": _int(args, "group_id", None),
        "since": _bound(args.get("since"), "since", tz, False),
        "until": _bound(args.get("until"), "until", tz, True),
        "q": (args.get("q") or "").strip()[:200] or None,
        "mine": mine in {"true", "1"},
        "page": _int(args, "page", 1),
        "per_page": _int(args, "per_page", 50, 1, 200),
    }
    if filters["since"] and filters["until"] and dates.reversed_range(
            args["since"], args["until"], filters["since"], filters["until"]):
        # A range that holds no time (since = until, or inside an hour the clock
        # skips) is no mistake: it finds nothing.
        raise ValidationError("until: must not be before since", "until")
    return filters


def _contains(field: Any, needle: str) -> peewee.Expression:
    """Case-insensitive substring, with no LIKE wildcards in the user's text."""
    low = needle.lower()
    if is_postgres():
        return peewee.fn.strpos(peewee.fn.lower(field), low) > 0
    return peewee.fn.instr(peewee.fn.lower(field), low) > 0


def search(actor: Agent, filters: dict[str, Any]) -> dict[str, Any]:
    """Tickets in the actor's scope matching the filters; counts per status."""
    from meiqia.services.tickets import to_dict

    query = Ticket.select().where(permissions.ticket_filter(actor))
    if filters.get("mine"):
        query = query.where(Ticket.assignee == actor.id)
    if filters.get("source"):
        query = query.where(Ticket.source == filters["source"])
    if filters.get("priority"):
        query = query.where(Ticket.priority == filters["priority"])
    if filters.get("assignee_id") == "none":
        query = query.where(Ticket.assignee.is_null())
    elif filters.get("assignee_id"):
        query = query.where(Ticket.assignee == filters["assignee_id"])
    if filters.get("group_id"):
        query = query.where(Ticket.group == filters["group_id"])
    if filters.get("since"):
        query = query.where(Ticket.created_at >= filters["since"])
    if filters.get("until"):
        query = query.where(Ticket.created_at < filters["until"])
    if filters.get("q"):
        needle = filters["q"]
        query = query.where(_contains(Ticket.content, needle) | _contains(Ticket.subject, needle)
                            | _contains(Ticket.contact_name, needle)
                            | _contains(Ticket.contact_phone, needle)
                            | _contains(Ticket.contact_email, needle))
    counts = dict(query.select(Ticket.status, peewee.fn.COUNT(Ticket.id))
                  .group_by(Ticket.status).tuples())
    if filters.get("status"):
        query = query.where(Ticket.status == filters["status"])
    page, per_page = filters.get("page") or 1, filters.get("per_page") or 50
    rows = query.order_by(Ticket.created_at.desc(), Ticket.id.desc()).paginate(page, per_page)
    total = counts.get(filters["status"], 0) if filters.get("status") else sum(counts.values())
    return {"total": total, "page": page, "per_page": per_page,
            "counts": {s: counts.get(s, 0) for s in STATUSES},
            "items": [to_dict(t) for t in rows]}
