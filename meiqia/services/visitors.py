"""Visitors: a session for the widget, their visits, and the customer card.

The widget knows a visitor only by his signed token; a session resumes the
visitor of a valid token of the same team (two tabs, a reload, a new day) and
records each visit separately, because the history filters by where a visit
came from (source, keyword, platform, region) and not by who the visitor is.
"""

from __future__ import annotations

import secrets
from typing import Any

from meiqia.db import database
from meiqia.db import find_by_id
from meiqia.models import Agent
from meiqia.models import Team
from meiqia.models import Visit
from meiqia.models import Visitor
from meiqia.models.base import utcnow
from meiqia.services import permissions
from meiqia.services import presence
from meiqia.services.accounts import iso
from meiqia.services.errors import NotFound
from meiqia.services.errors import ValidationError
from meiqia.services.validation import check
from meiqia.services.validation import check_phone
from meiqia.services.visit_info import build_visit_info

_SHORT = {"type": "string", "maxLength": 120}
#: ``custom`` of a widget session: how many keys, how long a value is kept.
CUSTOM_KEYS, CUSTOM_VALUE_CHARS = 30, 500
SESSION_SCHEMA = {
    "type": "object",
    "required": ["team_id"],
    "additionalProperties": False,
    "properties": {
        "team_id": {"type": "integer", "minimum": 1},
        "token": {"type": ["string", "null"], "maxLength": 500},
        "renew_key": {"type": ["string", "null"], "maxLength": 100,
                      "description": "the key a session gave with the token: an expired "
                      "token resumes the same visitor only with it, and only with it "
                      "does a live one get a fresh token and the key back"},
        "name": _SHORT,
        "phone": {"type": "string", "maxLength": 40,
                  "description": "a phone number as the leave-a-message form takes it "
                  "(13800138000, 021-12345678, +8613800138000); any other is not stored "
                  "and is named in the answer's warnings"},
        "email": {"type": "string", "maxLength": 254},
        "custom": {"type": "object", "maxProperties": CUSTOM_KEYS,
                   "propertyNames": {"minLength": 1, "maxLength": 60},
                   "additionalProperties": {"type": ["string", "number", "boolean"]},
                   "description": f"shown to agents as custom information: at most "
                   f"{CUSTOM_KEYS} keys of 1-60 characters (more: 422), text, number or "
                   f"boolean values, kept as text cut at {CUSTOM_VALUE_CHARS} characters"},
        "landing_page": {"type": "string", "maxLength": 2000},
        "referrer": {"type": "string", "maxLength": 2000},
        "title": {"type": "string", "maxLength": 300},
    },
}
CARD_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "name": _SHORT,
        "phone": {"type": "string", "maxLength": 40},
        "email": {"type": "string", "maxLength": 254, "format": "email"},
        "company": _SHORT,
        "address": {"type": "string", "maxLength": 255},
        "note": {"type": "string", "maxLength": 5000},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 40},
                 "maxItems": 30},
        "attributes": {"type": "object"},
    },
}


def _clean_custom(custom: dict[str, Any]) -> dict[str, str]:
    """Custom info from the embedding page: short string keys and values only."""
    cleaned = {}
    for key, value in custom.items():  # at most CUSTOM_KEYS (SESSION_SCHEMA)
        if not isinstance(key, str) or not key.strip() or len(key) > 60:
            raise ValidationError("custom: keys are 1-60 characters", "custom")
        if value is None or isinstance(value, dict | list):
            raise ValidationError(f"custom.{key}: expected text or a number", f"custom.{key}")
        cleaned[key.strip()] = str(value)[:CUSTOM_VALUE_CHARS]
    return cleaned


def start_session(data: dict[str, Any], ip: str, user_agent: str,
                  existing: Visitor | None,
                  warnings: list[ValidationError] | None = None) -> tuple[Visitor, Visit]:
    """Resume the visitor of a valid token or create one; record this visit.

    A phone that is no phone number (``validation.check_phone``, the rule of the
    leave-a-message form) is not stored, and its refusal is added to ``warnings``
    instead of refusing the session: the widget sits on the customer's page, which
    passed the value, and a visitor must be able to chat whatever that page did."""
    check(data, SESSION_SCHEMA)
    contact = {key: (data.get(key) or "").strip() for key in ("name", "phone", "email")}
    if contact["phone"]:
        try:
            contact["phone"] = check_phone(contact["phone"])
        except ValidationError as refused:
            contact["phone"] = ""
            if warnings is not None:
                warnings.append(refused)
    team = find_by_id(Team, data["team_id"])
    if team is None:
        raise NotFound("no such team")
    if existing is not None and existing.team_id != team.id:
        existing = None
    custom = _clean_custom(data.get("custom") or {})
    info = build_visit_info(ip, user_agent, data.get("referrer"), data.get("landing_page"))
    now = utcnow()
    with database.atomic():
        visitor = existing or Visitor.create(team=team, uid=secrets.token_urlsafe(18))
        for key, value in contact.items():
            if value and not getattr(visitor, key):
                setattr(visitor, key, value)
        if custom:
            visitor.attributes = {**(visitor.attributes or {}), **custom}
        visitor.last_seen_at = now
        visitor.save()
        trail = [{"url": info["landing_page"], "title": (data.get("title") or "")[:300],
                  "at": iso(now)}] if info["landing_page"] else []
        visit = Visit.create(visitor=visitor, team=team, custom_info=custom, trail=trail,
                             started_at=now, **info)
    return visitor, visit


def latest_visit(visitor: Visitor) -> Visit | None:
    """The visitor's most recent visit (what the customer card shows)."""
    return Visit.select().where(Visit.visitor == visitor).order_by(Visit.id.desc()).first()


def card(visitor: Visitor) -> dict[str, Any]:
    """The customer card and the latest visit, as agents see them."""
    visit = latest_visit(visitor)
    online = presence.is_online(visitor)
    return {
        "id": visitor.id,
        "name": visitor.name,
        "phone": visitor.phone,
        "email": visitor.email,
        "company": visitor.company,
        "address": visitor.address,
        "note": visitor.note,
        "tags": visitor.tags or [],
        "attributes": visitor.attributes or {},
        "online": online,
        "first_seen_at": iso(visitor.created_at),
        "visit": None if visit is None else {
            k: getattr(visit, k) for k in (
                "ip", "region", "device", "os", "browser", "platform", "landing_page",
                "referrer", "source", "search_engine", "search_keyword", "custom_info", "trail")
        },
    }


def visible_visitor(actor: Agent, visitor_id: int) -> Visitor:
    """A visitor of the actor's team with a conversation the actor may see, else
    NotFound ("no such visitor"): one rule for his card (``PATCH /visitors/{id}``)
    and his sidebar lists (``/visitors/{id}/conversations``; ``/tickets`` when he
    sees none of the visitor's tickets either: ``tickets.recent_for_customer``), so a
    wrong id, another team's visitor or one out of scope reads the same everywhere
    (docs/security.md §1)."""
    visitor = Visitor.get_or_none(Visitor.id == visitor_id, Visitor.team == actor.team_id)
    if visitor is None or not _sees_visitor(actor, visitor):
        raise NotFound("no such visitor")
    return visitor


def update_card(actor: Agent, visitor_id: int, data: dict[str, Any]) -> Visitor:
    """An agent edits the customer card of a visitor he may see."""
    check(data, CARD_SCHEMA)
    visitor = visible_visitor(actor, visitor_id)
    for key, value in data.items():
        setattr(visitor, key, value.strip() if isinstance(value, str) else value)
    if "tags" in data:
        visitor.tags = sorted({t.strip() for t in data["tags"] if t.strip()})
    with database.atomic():
        visitor.save()
    return visitor


def _sees_visitor(actor: Agent, visitor: Visitor) -> bool:
    from meiqia.models import Conversation

    return Conversation.select().where(
        Conversation.visitor == visitor.id, permissions.conversation_filter(actor)).exists()
