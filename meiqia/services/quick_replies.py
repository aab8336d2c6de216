"""Quick replies: team-wide (admins manage, every agent reads) and personal.

Agents type ``#关键词`` in the composer; ``search`` answers the autocomplete:
keyword prefix matches first, then keywords or titles containing the query,
then fuzzy matches (rapidfuzz), personal before team on a tie, at most 10.
Keywords are compared in a *keyword* form (``keyword_form``): full-width to
half-width, traditional to simplified, case folded. Not the bot's question
normaliser, which drops fillers such as 您好 or "hi": those are exactly the
keywords people give their greetings.

Who sees what: an agent sees his team's team-wide replies and his own; another
agent's personal reply does not exist for him (404).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from typing import Any

from rapidfuzz import fuzz

from meiqia.bot.normalize import to_simplified
from meiqia.db import database
from meiqia.db import is_postgres
from meiqia.models import Agent
from meiqia.models import QuickReply
from meiqia.services.errors import Conflict
from meiqia.services.errors import Forbidden
from meiqia.services.errors import NotFound
from meiqia.services.errors import ValidationError
from meiqia.services.validation import check

KEYWORD_MAX = 40
BODY_MAX = 5000
TITLE_MAX = 120
CATEGORY_MAX = 40
SEARCH_LIMIT = 10
#: Fuzzy matches below this rapidfuzz score are not shown.
FUZZY_MIN = 60
#: Shorter queries match by prefix or substring only: in Chinese, two characters
#: with one in common are different words (退货 is not 退款).
FUZZY_MIN_QUERY = 3
#: First key of the PostgreSQL advisory lock that serialises keyword checks.
_LOCK_CLASS = 0x5152  # "QR"

SCHEMA = {
    "type": "object",
    "required": ["keyword", "body"],
    "additionalProperties": False,
    "properties": {
        "keyword": {"type": "string", "minLength": 1, "maxLength": 100,
                    "description": "Typed after # in the composer: 1-40 characters "
                                   "without spaces; a leading # is dropped."},
        "title": {"type": "string", "maxLength": TITLE_MAX},
        "body": {"type": "string", "minLength": 1, "maxLength": BODY_MAX},
        "category": {"type": "string", "maxLength": CATEGORY_MAX,
                     "description": "Optional group, e.g. 售后 or 物流."},
        "team": {"type": "boolean", "description": "Team-wide (admins only); "
                                                   "default: personal."},
    },
}
UPDATE_SCHEMA = {**SCHEMA, "required": [],
                 "properties": {k: v for k, v in SCHEMA["properties"].items() if k != "team"}}


def keyword_form(text: str) -> str:
    """The form keywords are compared in: ``＃退貨`` → ``退货``, ``ＡＢＣ`` → ``abc``."""
    text = unicodedata.normalize("NFKC", text).strip().lstrip("#").strip()
    return to_simplified(text).casefold()


def clean_keyword(raw: str) -> str:
    """The keyword to store, or a ValidationError that says what is wrong."""
    keyword = unicodedata.normalize("NFC", raw).strip().lstrip("#＃").strip()
    if not keyword:
        raise ValidationError("keyword: must not be empty (a # alone is no keyword)",
                              "keyword")
    if any(c.isspace() for c in keyword):
        raise ValidationError("keyword: no spaces; it is typed after # in one go",
                              "keyword")
    if any(unicodedata.category(c)[0] == "C" for c in keyword):
        raise ValidationError("keyword: contains control characters", "keyword")
    if len(keyword) > KEYWORD_MAX:
        raise ValidationError(f"keyword: at most {KEYWORD_MAX} characters", "keyword")
    return keyword


def _clean_body(raw: str) -> str:
    body = raw.strip()
    if not body:
        raise ValidationError("body: must not be empty", "body")
    return body


def to_dict(reply: QuickReply) -> dict[str, Any]:
    return {"id": reply.id, "keyword": reply.keyword, "title": reply.title,
            "body": reply.body, "category": reply.category or "",
            "team": reply.owner_id is None}


def visible(actor: Agent) -> Any:
    """The team's team-wide replies and the actor's own."""
    return QuickReply.select().where(
        QuickReply.team == actor.team_id,
        QuickReply.owner.is_null() | (QuickReply.owner == actor.id))


def list_for(actor: Agent) -> list[dict[str, Any]]:
    return [to_dict(r) for r in visible(actor).order_by(QuickReply.keyword, QuickReply.id)]


def _lock(actor: Agent, team_wide: bool) -> None:
    """Serialise keyword checks of one owner (SQLite transactions already are)."""
    if is_postgres():
        owner_key = -actor.team_id if team_wide else actor.id
        database.execute_sql("SELECT pg_advisory_xact_lock(%s, %s)", (_LOCK_CLASS, owner_key))


def _check_unique(actor: Agent, keyword: str, team_wide: bool, except_id: int | None) -> None:
    query = QuickReply.select(QuickReply.id, QuickReply.keyword).where(
        QuickReply.team == actor.team_id,
        QuickReply.owner.is_null() if team_wide else QuickReply.owner == actor.id)
    if except_id:
        query = query.where(QuickReply.id != except_id)
    wanted = keyword_form(keyword)
    for other in query:
        if keyword_form(other.keyword) == wanted:
            whose = "the team" if team_wide else "you"
            raise Conflict(f"keyword: #{other.keyword} exists already for {whose}",
                           "keyword")


def create(actor: Agent, data: dict[str, Any]) -> QuickReply:
    check(data, SCHEMA)
    keyword, body = clean_keyword(data["keyword"]), _clean_body(data["body"])
    team_wide = bool(data.get("team"))
    if team_wide and not actor.is_admin:
        raise Forbidden("only admins manage team-wide quick replies")
    with database.atomic():
        _lock(actor, team_wide)
        _check_unique(actor, keyword, team_wide, None)
        return QuickReply.create(team=actor.team_id, owner=None if team_wide else actor.id,
                                 keyword=keyword, title=data.get("title", "").strip(),
                                 category=data.get("category", "").strip(), body=body)


def _editable(actor: Agent, reply_id: int) -> QuickReply:
    reply = visible(actor).where(QuickReply.id == reply_id).first()
    if reply is None:
        raise NotFound("no such quick reply")
    if reply.owner_id is None and not actor.is_admin:
        raise Forbidden("only admins manage team-wide quick replies")
    return reply


def update(actor: Agent, reply_id: int, data: dict[str, Any]) -> QuickReply:
    check(data, UPDATE_SCHEMA)
    keyword = clean_keyword(data["keyword"]) if "keyword" in data else None
    body = _clean_body(data["body"]) if "body" in data else None
    reply = _editable(actor, reply_id)
    with database.atomic():
        if keyword is not None:
            _lock(actor, reply.owner_id is None)
            _check_unique(actor, keyword, reply.owner_id is None, reply.id)
            reply.keyword = keyword
        if body is not None:
            reply.body = body
        if "title" in data:
            reply.title = data["title"].strip()
        if "category" in data:
            reply.category = data["category"].strip()
        reply.save()
    return reply


def delete(actor: Agent, reply_id: int) -> None:
    reply = _editable(actor, reply_id)
    with database.atomic():
        reply.delete_instance()


def rank(query: str, replies: Iterable[QuickReply], limit: int = SEARCH_LIMIT) -> list[QuickReply]:
    """Order ``replies`` for ``#query``; the ones that do not match are left out.

    Keyword prefix (shortest keyword first), then the query inside the
    keyword or title, then fuzzy over keyword and title (best score first,
    for queries of three characters or more);
    personal before team-wide on a tie, then oldest first.
    """
    needle = keyword_form(query)
    if not needle:
        return sorted(replies, key=lambda r: (r.owner_id is None, keyword_form(r.keyword),
                                              r.id))[:limit]
    scored = []
    for reply in replies:
        keyword, title = keyword_form(reply.keyword), keyword_form(reply.title or "")
        if keyword.startswith(needle):
            key: tuple = (0, len(keyword), 0.0)
        elif needle in keyword or needle in title:
            key = (1, len(keyword), 0.0)
        elif len(needle) >= FUZZY_MIN_QUERY:
            score = max(fuzz.WRatio(needle, keyword),
                        fuzz.partial_ratio(needle, title) if title else 0.0)
            if score < FUZZY_MIN:
                continue
            key = (2, 0, -score)
        else:
            continue
        scored.append((key, reply.owner_id is None, reply.id, reply))
    scored.sort(key=lambda item: item[:3])
    return [item[3] for item in scored[:limit]]


def search(actor: Agent, query: str, limit: int = SEARCH_LIMIT) -> list[dict[str, Any]]:
    """The composer's ``#keyword`` autocomplete over the actor's replies."""
    return [to_dict(r) for r in rank(query[:KEYWORD_MAX + 1], visible(actor), limit)]
