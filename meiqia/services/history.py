"""History (历史对话): ended conversations, filtered, within the viewer's scope.

Filters combine (AND). Every figure filter reads the values stored on the
conversation when it ended (``services.figures``), never the messages; only
the content filter looks at messages, through the search index.
"""

from __future__ import annotations

import datetime
import json
from typing import Any
from zoneinfo import ZoneInfo

import peewee

from meiqia.db import database
from meiqia.db import is_postgres
from meiqia.models import Agent
from meiqia.models import Conversation
from meiqia.models import Message
from meiqia.models import Visit
from meiqia.models import Visitor
from meiqia.services import dates
from meiqia.services import permissions
from meiqia.services import visitors
from meiqia.services.accounts import iso
from meiqia.services.errors import ValidationError
from meiqia.services.validation import INT_MAX

#: Columns of the result list, in the default order (agents may hide and reorder).
COLUMNS = [
    "visitor", "ip", "device", "started_at", "ended_at", "duration_s", "tags",
    "first_response_s", "agent", "rating", "rating_comment", "visitor_messages",
    "agent_messages", "visit_trail", "lead", "search_keyword", "summary", "region", "source",
    "platform", "grade", "channel",
]
TEXT_FILTERS = {
    # name: (model field, how)
    "customer_name": (Visitor.name, "contains"),
    "phone": (Visitor.phone, "contains"),
    "note": (Visitor.note, "contains"),
    "summary": (Conversation.summary, "contains"),
    # What the visitor wrote with his rating (服务很好…), as the summary is searched.
    "rating_comment": (Conversation.rating_comment, "contains"),
    "region": (Visit.region, "contains"),
    "landing_page": (Visit.landing_page, "contains"),
    "keyword": (Visit.search_keyword, "contains"),
    "ip": (Visit.ip, "prefix"),
}
CHOICES = {
    "source": (Visit.source, ("direct", "link", "search_engine")),
    "platform": (Visit.platform, ("pc_web", "mobile_web")),
    "grade": (Conversation.grade, None),
}
FLAGS = {"lead": Conversation.is_lead, "invalid": Conversation.is_invalid,
         "missed": Conversation.is_missed}
RANGES = {"duration": Conversation.duration_s, "first_response": Conversation.first_response_s}
#: ``rating``: a visitor's rating, or ``none`` (not rated).
RATINGS = ("good", "neutral", "bad", "none")
_COUNT = {"type": "integer", "minimum": 0, "maximum": INT_MAX}

#: Every filter of the history, in the order of the filter form, with the schema
#: ``_conditions`` enforces: built from the tables above (TEXT_FILTERS, CHOICES,
#: FLAGS, RANGES, RATINGS), so the OpenAPI document (``GET /history``'s query) says
#: what the checks below refuse.
FILTERS: dict[str, dict[str, Any]] = {
    "customer_name": {"type": "string", "description": "contained in the customer's name"},
    "ended_from": {**dates.DATE_OR_TIME, "description": "ended at or after: "
                   + dates.DATE_OR_TIME["description"]},
    "ended_to": {**dates.DATE_OR_TIME, "description": "ended up to (a day: that whole day; not "
                 "before ended_from, a range that holds no time finds nothing): "
                 + dates.DATE_OR_TIME["description"]},
    "agent_id": {**_COUNT, "description": "the agent who handled it"},
    "agent_name": {"type": "string", "description": "contained in the handler's name"},
    "customer_tags": {"type": "string", "description": "a tag of the customer"},
    **{name: {"type": "string", "description": "starts with (first 200 characters)"
              if how == "prefix" else "contained (first 200 characters)"}
       for name, (_field, how) in TEXT_FILTERS.items()},
    "content": {"type": "string", "description": "text of a message, internal notes "
                "included (first 100 characters)"},
    "tags": {"type": "string", "description": "a tag of the conversation"},
    **{name: {"type": "string", **({"enum": list(allowed)} if allowed else {})}
       for name, (_field, allowed) in CHOICES.items()},
    "rating": {"type": "string", "enum": list(RATINGS)},
    **{name: {"type": "boolean"} for name in FLAGS},
    **{f"{name}_{end}": {**_COUNT, "description": "seconds"}
       for name in RANGES for end in ("min", "max")},
    "channel": {"type": "string", "description": "`web` or an installed channel's slug "
                "(`type` in `GET /api/v1/channels`)"},
}



def _as_body(schema: dict[str, Any]) -> dict[str, Any]:
    """A filter's schema in a JSON body: also the text a query carries (the history
    page exports the filter of its URL: ``"lead": "true"``, ``"agent_id": "3"``),
    or null (not filtered)."""
    kind = schema["type"]
    return {**schema, "type": [kind, "null"] if kind == "string" else [kind, "string", "null"]}


#: ``filters`` of an export (``POST /history/exports``): the list's filters and no
#: other name; a misspelt one is a 422 listing the accepted names, never an export
#: of the whole history (``validation.check``, ``x-names``).
FILTERS_BODY: dict[str, Any] = {
    "type": "object", "additionalProperties": False, "x-names": "filter",
    "description": "the filters of `GET /api/v1/history`, by the same names; any other "
    "name is a 422 that lists them",
    "properties": {name: _as_body(schema) for name, schema in FILTERS.items()},
}


def _bool(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if str(value).lower() in {"1", "true", "yes"}:
        return True
    if str(value).lower() in {"0", "false", "no"}:
        return False
    raise ValidationError(f"{name}: expected true or false", name)


def _int(value: Any, name: str, unit: str = "") -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        if unit == "seconds":
            raise ValidationError(f"{name}: expected a whole number of seconds", name) from None
        raise ValidationError(f"{name}: expected a whole number", name) from None
    if number < 0:
        raise ValidationError(f"{name}: must not be negative", name)
    if number > INT_MAX:  # a database integer column holds no more
        raise ValidationError(f"{name}: must be at most {INT_MAX}", name)
    return number


def _day(value: str, name: str, tz: ZoneInfo, end: bool) -> datetime.datetime:
    """A date (or date-time) in the team's time zone → naive UTC bound."""
    return dates.utc_bound(str(value), name, tz, end, f"{name}: expected a date like 2026-11-24")


def _json_contains(field: Any, value: str) -> Any:
    # LOWER() keeps peewee from JSON-encoding the pattern of a JSONField.
    return peewee.fn.LOWER(field).contains(f'"{value.lower()}"')


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def gram_query(term: str) -> str:
    """The FTS5 query of ``term`` over SQLite's gram index (``schema_extras``).

    The index holds, for each position of a body, the two characters starting
    there (the last one alone), lower-cased as SQLite's ``lower()`` does (ASCII
    only) and written in hex so that any character makes one plain token. A
    term of 2+ characters is the phrase of its grams, at consecutive positions,
    so it matches the bodies that contain it; one character is a prefix query
    on the grams that start with it (UTF-8 is prefix-free, so hex prefixes are
    character prefixes).
    """
    folded = term.translate(_ASCII_LOWER)
    if len(folded) == 1:
        return f'"{folded.encode().hex()}"*'
    grams = (folded[i:i + 2].encode().hex() for i in range(len(folded) - 1))
    return '"' + " ".join(grams) + '"'


def _messages_containing(term: str) -> peewee.ModelSelect:
    """Conversation ids of the messages containing ``term`` (ASCII case ignored).

    The gram index finds the candidates (SQLite: FTS5 over grams computed by
    triggers; PostgreSQL: a GIN index on ``meiqia_grams(body)``), then the
    ``instr``/``strpos`` test on the body, which is read anyway for its
    conversation id, keeps the answer exact whatever the index returned.
    """
    if is_postgres():
        candidates = peewee.Expression(peewee.fn.meiqia_grams(Message.body), "@>",
                                       peewee.fn.meiqia_query_grams(term))
        exact = peewee.fn.strpos(peewee.fn.lower(Message.body), peewee.fn.lower(term)) > 0
    else:
        candidates = Message.id.in_(peewee.SQL(
            "(SELECT rowid FROM message_gram WHERE message_gram MATCH ?)", [gram_query(term)]))
        exact = peewee.fn.instr(peewee.fn.lower(Message.body), peewee.fn.lower(term)) > 0
    return Message.select(Message.conversation).where(candidates, exact)


def matching_conversations(term: str) -> list[int]:
    """Ids of conversations with a message containing ``term``, public or internal.

    Agents only: no visitor-facing API searches.
    """
    cursor = database.execute(_messages_containing(term).distinct())
    return [row[0] for row in cursor.fetchall()]


def message_match(term: str, materialise: bool = True) -> Any:
    """A WHERE clause: the conversation has a message containing ``term``.

    ``materialise``: the messages are searched once and the ids passed as one
    parameter (a JSON array on SQLite, an array on PostgreSQL), for a query run
    many times (an export reads its rows in batches). Otherwise a subquery, for
    a query run once (the history page's ordered ids).
    """
    if not materialise:
        # OFFSET 0 keeps PostgreSQL from merging the search into the outer query:
        # merged, it probed each conversation's messages, computing their grams
        # (0.9 s for 退款 over 1M messages) instead of reading the gram index once.
        return Conversation.id.in_(_messages_containing(term).offset(0))
    ids = matching_conversations(term)
    if is_postgres():
        return Conversation.id == peewee.SQL("ANY(%s)", [ids])
    return Conversation.id.in_(peewee.SQL("(SELECT value FROM json_each(?))",
                                          [json.dumps(ids)]))


def _conditions(actor: Agent, filters: dict[str, Any], content: str = "materialise",
                before: datetime.datetime | None = None) -> list[Any]:
    """The WHERE terms of a history query: the scope, then every filter given.

    Filters on the customer card and the visit are subqueries on those tables
    (the team's visitors whose name contains …), not joins: a count then reads
    the conversation index alone, and a name that few customers have is found
    without joining every conversation to its customer (docs/history.md).
    ``content``: how the message-content filter is written (see ``message_match``).
    ``before``: only conversations that ended before this (naive UTC) time, for
    an export that must not grow after its size was checked.
    """
    tz = ZoneInfo(actor.team.timezone)
    where: list[Any] = [permissions.conversation_filter(actor), Conversation.status == "ended"]
    on_visitor: list[Any] = []
    on_visit: list[Any] = []

    def add(field: Any, term: Any) -> None:
        {Visitor: on_visitor, Visit: on_visit}.get(field.model, where).append(term)

    f = {k: v for k, v in filters.items() if v not in (None, "", [])}
    if before is not None:
        where.append(Conversation.ended_at < before)
    lo = _day(f["ended_from"], "ended_from", tz, False) if "ended_from" in f else None
    hi = _day(f["ended_to"], "ended_to", tz, True) if "ended_to" in f else None
    if lo is not None and hi is not None and dates.reversed_range(
            str(f["ended_from"]), str(f["ended_to"]), lo, hi):
        # As the dashboard answers: a start after the end is a mistake. A range that
        # holds no time (from = to, or inside an hour the clock skips) is empty.
        raise ValidationError("ended_from: must not be after ended_to", "ended_from")
    if lo is not None:
        where.append(Conversation.ended_at >= lo)
    if hi is not None:
        where.append(Conversation.ended_at < hi)
    if "agent_id" in f:
        where.append(Conversation.handler == _int(f["agent_id"], "agent_id"))
    if "agent_name" in f:
        where.append(Conversation.handler.in_(
            Agent.select(Agent.id).where(Agent.team == actor.team_id,
                                         Agent.name.contains(f["agent_name"]))))
    for name, (field, how) in TEXT_FILTERS.items():
        if name in f:
            value = str(f[name])[:200]
            add(field, field.startswith(value) if how == "prefix" else field.contains(value))
    for name, (field, allowed) in CHOICES.items():
        if name in f:
            if allowed and f[name] not in allowed:
                raise ValidationError(f"{name}: one of {', '.join(allowed)}", name)
            add(field, field == f[name])
    if "channel" in f:  # web, or a channel plugin's slug (meiqia/channels/)
        from meiqia.channels.registry import channel_classes

        slugs = sorted({"web", *channel_classes()})
        if f["channel"] not in slugs:
            raise ValidationError(f"channel: one of {', '.join(slugs)}", "channel")
        where.append(Conversation.channel == f["channel"])
    if "rating" in f:
        if f["rating"] not in RATINGS:
            raise ValidationError(f"rating: one of {', '.join(RATINGS)}", "rating")
        if f["rating"] == "none":
            where.append(Conversation.rating.is_null())
        else:
            where.append(Conversation.rating == f["rating"])
    for name, field in FLAGS.items():
        if name in f:
            where.append(field == _bool(f[name], name))
    for name, field in RANGES.items():
        if f"{name}_min" in f:
            where.append(field >= _int(f[f"{name}_min"], f"{name}_min", "seconds"))
        if f"{name}_max" in f:
            where.append(field <= _int(f[f"{name}_max"], f"{name}_max", "seconds"))
    if "tags" in f:
        where.append(_json_contains(Conversation.tags, str(f["tags"])))
    if "customer_tags" in f:
        on_visitor.append(_json_contains(Visitor.tags, str(f["customer_tags"])))
    if on_visitor:
        where.append(Conversation.visitor.in_(Visitor.select(Visitor.id).where(
            Visitor.team == actor.team_id, *on_visitor)))
    if on_visit:
        where.append(Conversation.visit.in_(Visit.select(Visit.id).where(
            Visit.team == actor.team_id, *on_visit)))
    if "content" in f:
        term = str(f["content"]).strip()[:100]
        if term:
            where.append(message_match(term, materialise=content == "materialise"))
    return where


def _rows_of(where: list[Any]) -> peewee.ModelSelect:
    """Conversations with their customer card and visit, for the result rows."""
    return (Conversation.select(Conversation, Visitor, Visit)
            .join(Visitor, on=(Conversation.visitor == Visitor.id)).switch(Conversation)
            .join(Visit, peewee.JOIN.LEFT_OUTER, on=(Conversation.visit == Visit.id))
            .switch(Conversation).where(*where))


def query(actor: Agent, filters: dict[str, Any],
          before: datetime.datetime | None = None) -> peewee.ModelSelect:
    """Ended conversations in the actor's scope matching every filter given."""
    return _rows_of(_conditions(actor, filters, before=before))


def count(actor: Agent, filters: dict[str, Any],
          before: datetime.datetime | None = None) -> int:
    """How many conversations ``query`` returns, from the conversations alone."""
    where = _conditions(actor, filters, content="subquery", before=before)
    return Conversation.select(peewee.fn.COUNT(Conversation.id)).where(*where).scalar()


def row(conversation: Conversation, agents: dict[int, str]) -> dict[str, Any]:
    visitor = conversation.visitor
    visit = getattr(conversation, "visit", None)
    return {
        "id": conversation.id,
        # Empty when he gave none: the reader's page (or export) says "访客 12" /
        # "Visitor 12" in the reader's language.
        "visitor": visitor.name or "",
        "visitor_id": visitor.id,
        "ip": visit.ip if visit else "",
        "device": " / ".join(p for p in ((visit.device, visit.os, visit.browser)
                                         if visit else ()) if p),
        "started_at": iso(conversation.created_at),
        "ended_at": iso(conversation.ended_at),
        "duration_s": conversation.duration_s,
        "tags": conversation.tags or [],
        "first_response_s": conversation.first_response_s,
        "agent": agents.get(conversation.handler_id, ""),
        "agent_id": conversation.handler_id,
        "rating": conversation.rating or "none",
        # What he wrote with the rating; "" when none (or not rated).
        "rating_comment": conversation.rating_comment or "",
        "visitor_messages": conversation.visitor_message_count,
        "agent_messages": conversation.agent_message_count,
        "visit_trail": (visit.trail or []) if visit else [],
        "lead": conversation.lead_details if conversation.is_lead else "",
        "search_keyword": visit.search_keyword if visit else "",
        "summary": conversation.summary,
        "region": visit.region if visit else "",
        "source": visit.source if visit else "",
        "platform": visit.platform if visit else "",
        "grade": conversation.grade,
        "channel": conversation.channel,
        "invalid": conversation.is_invalid,
        "missed": conversation.is_missed,
    }


def agent_names(team_id: int) -> dict[int, str]:
    return {a.id: a.name for a in Agent.select(Agent.id, Agent.name).where(Agent.team == team_id)}


def search(actor: Agent, filters: dict[str, Any], page: int = 1,
           per_page: int = 20) -> dict[str, Any]:
    """One page of the history, newest first, with the total.

    With a content filter, one query searches the messages (as a subquery) and
    returns the page's ids with the total as a window count, so the messages
    are searched once and only a page of ids leaves the database; a count and
    a page would search them twice.
    """
    order = (Conversation.ended_at.desc(), Conversation.id.desc())
    where = _conditions(actor, filters, content="subquery")
    if str(filters.get("content") or "").strip():
        found = database.execute(
            Conversation.select(Conversation.id, peewee.fn.COUNT(peewee.SQL("*")).over())
            .where(*where).order_by(*order).paginate(page, per_page)).fetchall()
        total = found[0][1] if found else count(actor, filters)  # a page past the end
        rows = _rows_of([Conversation.id.in_([i for i, _ in found])]).order_by(
            *order) if found else []
    else:
        total = Conversation.select(peewee.fn.COUNT(Conversation.id)).where(*where).scalar()
        rows = _rows_of(where).order_by(*order).paginate(page, per_page)
    names = agent_names(actor.team_id)
    return {"total": total, "page": page, "per_page": per_page,
            "columns": columns_of(actor), "items": [row(c, names) for c in rows]}


def columns_of(actor: Agent) -> list[str]:
    chosen = (actor.preferences or {}).get("history_columns")
    return [c for c in chosen if c in COLUMNS] if chosen else list(COLUMNS)


def set_columns(actor: Agent, columns: list[str]) -> list[str]:
    unknown = [c for c in columns if c not in COLUMNS]
    if unknown:
        raise ValidationError(f"columns: unknown column {unknown[0]}", "columns")
    if not columns:
        raise ValidationError("columns: choose at least one column", "columns")
    prefs = dict(actor.preferences or {})
    prefs["history_columns"] = list(dict.fromkeys(columns))
    with database.atomic():
        Agent.update(preferences=prefs).where(Agent.id == actor.id).execute()
    return prefs["history_columns"]


def customer_recent(actor: Agent, visitor_id: int, days: int = 30) -> list[dict[str, Any]]:
    """The customer's conversations of the last month (sidebar), in scope; a
    visitor the actor may not see is a 404 (``visitors.visible_visitor``)."""
    visitors.visible_visitor(actor, visitor_id)
    since = datetime.datetime.now(datetime.UTC).replace(tzinfo=None) - datetime.timedelta(
        days=days)
    rows = (Conversation.select().where(permissions.conversation_filter(actor),
                                        Conversation.visitor == visitor_id,
                                        Conversation.created_at >= since)
            .order_by(Conversation.id.desc()).limit(50))
    names = agent_names(actor.team_id)
    return [{"id": c.id, "status": c.status, "started_at": iso(c.created_at),
             "ended_at": iso(c.ended_at), "agent": names.get(c.handler_id, ""),
             "summary": c.summary, "rating": c.rating,
             "rating_comment": c.rating_comment or ""} for c in rows]
