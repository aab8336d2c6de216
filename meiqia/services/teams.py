"""The team and its settings (bot thresholds, queue, ticket form, widget).

Settings live as JSON on the team; ``SETTINGS_DEFAULTS`` fills what a team has
not set, so a new setting needs no migration. Every change is validated as a
whole (e.g. the answer threshold may not sit below the suggest threshold).
"""

from __future__ import annotations

import copy
import json
import re
import time
from typing import Any

from flask import current_app

from meiqia.db import database
from meiqia.db import get_by_id
from meiqia.models import Agent
from meiqia.models import Team
from meiqia.services import working_hours
from meiqia.services.accounts import audit
from meiqia.services.accounts import iso
from meiqia.services.accounts import require_admin
from meiqia.services.dates import check_timezone
from meiqia.services.errors import ValidationError
from meiqia.services.validation import PATTERN_CHECKS
from meiqia.services.validation import check

SETTINGS_DEFAULTS: dict[str, Any] = {
    #: Visitors talk to the bot first when on.
    "bot_enabled": True,
    #: At or above: the bot answers. Between suggest and answer: "did you mean".
    "answer_threshold": 0.7,
    "suggest_threshold": 0.5,
    #: The bot calibrates itself on the team's KB so that its direct answers are
    #: right this often (meiqia.bot.calibrate; docs/bot.md).
    "bot_target_precision": 0.95,
    #: Groups of words the bot treats as one, the first being the canonical
    #: one: [["退款", "退钱"], ["快递", "物流"]].
    "bot_synonyms": [],
    #: Product words the Chinese segmenter must never split ("美洽", "闪电退款").
    "bot_user_words": [],
    #: Unrecognised questions in a row before the bot offers a human itself.
    "bot_failures_before_human": 2,
    #: Queue when every online agent is at his limit (else: leave a message).
    "queue_enabled": True,
    #: Empty: the built-in greeting, in the visitor's language (``welcome_text``).
    "welcome_message": "",
    #: Empty: the built-in "nobody can take your chat" line, in the visitor's language
    #: (``routing.nobody_text``); else this, as written, to every visitor.
    "offline_message": "",
    #: When people answer (``services/working_hours.py``); mode "": not chosen yet.
    "working_hours": dict(working_hours.DEFAULT),
    "ticket_form": {
        "ask_name": True,
        "ask_phone": True,
        "ask_email": True,
        #: At least one of phone or email is required.
        "require_contact": True,
        "allow_attachments": True,
    },
    #: ``allowed_origins``: the sites that may frame the widget (CSP frame-ancestors
    #: of /widget/frame), e.g. ``https://shop.example.com``; empty: any site.
    "widget": {"color": "#1f6feb", "position": "right", "allowed_origins": []},
}

#: A site as CSP names it: scheme and host (``*.`` for its subdomains), a port maybe
#: (1-65535: a browser ignores a frame-ancestors source with any other).
ORIGIN_PATTERN = (r"^https?://(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?"
                  r"(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*"
                  r"(:([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}"
                  r"|655[0-2][0-9]|6553[0-5]))?$")
#: A site whose port is written in digits, whatever their number.
_SITE_PORT = re.compile(r"https?://[^/\s:]{1,200}:([0-9]{1,200})")


def _site_port(value: str, label: str, field: str | None) -> None:
    """Why a site fails ORIGIN_PATTERN when its port is no port (``http://a.cn:99999``):
    said with the entry, rather than "has the wrong format"."""
    found = _SITE_PORT.fullmatch(value)
    if found and not 1 <= int(found[1]) <= 65535:
        raise ValidationError(f"{label}: {value}: the port must be 1-65535", field)


PATTERN_CHECKS[ORIGIN_PATTERN] = _site_port
_THRESHOLD = {"type": "number", "minimum": 0, "maximum": 1}
SETTINGS_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "bot_enabled": {"type": "boolean"},
        "answer_threshold": _THRESHOLD,
        "suggest_threshold": _THRESHOLD,
        "bot_failures_before_human": {"type": "integer", "minimum": 1, "maximum": 20},
        "bot_target_precision": {"type": "number", "minimum": 0.5, "maximum": 0.999},
        "bot_synonyms": {"type": "array", "maxItems": 500, "items": {
            "type": "array", "minItems": 2, "maxItems": 20,
            "items": {"type": "string", "minLength": 1, "maxLength": 40}}},
        "bot_user_words": {"type": "array", "maxItems": 2000,
                           "items": {"type": "string", "minLength": 1, "maxLength": 40}},
        "queue_enabled": {"type": "boolean"},
        "welcome_message": {"type": "string", "maxLength": 2000},
        "offline_message": {
            "type": "string", "maxLength": 2000,
            "description": "The line a visitor gets when nobody can take his chat (nobody "
                           "online and connected, outside working hours, a chat transferred "
                           "to a group with nobody online; on a channel the 'waiting for an "
                           "agent' line): the stored leave_message / waiting_for_agent event's "
                           "body, as written, whatever the visitor's language. Empty or blank: "
                           "the built-in line in the visitor's language (docs/protocol.md)."},
        "working_hours": working_hours.SCHEMA,
        "ticket_form": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "ask_name": {"type": "boolean"},
                "ask_phone": {"type": "boolean"},
                "ask_email": {"type": "boolean"},
                "require_contact": {"type": "boolean"},
                "allow_attachments": {"type": "boolean"},
            },
        },
        "widget": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "color": {"type": "string", "pattern": r"^#[0-9a-fA-F]{6}$"},
                "position": {"type": "string", "enum": ["left", "right"]},
                "allowed_origins": {
                    "type": "array", "maxItems": 50,
                    "items": {"type": "string", "maxLength": 200,
                              "pattern": ORIGIN_PATTERN}},
            },
        },
    },
}
TEAM_UPDATE_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 120},
        "timezone": {"type": "string", "maxLength": 64},
        "language": {"type": "string", "enum": ["zh-CN", "en"]},
        "settings": SETTINGS_SCHEMA,
    },
}


_DEFAULTS_JSON = json.dumps(SETTINGS_DEFAULTS)


def settings_of(team: Team) -> dict[str, Any]:
    """The team's settings with defaults filled in (nested dicts merged)."""
    # A fresh copy for the caller to change: parsed from JSON text made once,
    # several times cheaper than deepcopy (this runs on every visitor message).
    merged = json.loads(_DEFAULTS_JSON)
    for key, value in (team.settings or {}).items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key].update(value)
        else:
            merged[key] = value
    return merged


#: Seconds a process trusts its copy of a team's settings in ``recent_settings``.
RECENT_SECONDS = 1.0


class RecentTeam:
    """What hot paths read of a team, as this process read it at most
    RECENT_SECONDS ago: its merged settings, time zone and language. Shared: for
    reading only."""

    __slots__ = ("id", "settings", "timezone", "language")

    def __init__(self, team: Team) -> None:
        self.id = team.id
        self.settings = settings_of(team)
        self.timezone = team.timezone
        self.language = team.language


def recent(team_id: int) -> RecentTeam | None:
    """The team as this process read it at most RECENT_SECONDS ago (None: no such
    team).

    The agent's suggestions read the suggestion threshold on every visitor
    message of a handled chat, and routing reads the queue setting, the working
    hours and the team's language for every conversation asking for a person: a
    row and a merge each time, four times over in a burst of first messages. A
    change made in this process is seen at once (``update_team`` forgets the
    copy); one made in another process within a second.
    """
    cache = current_app.extensions.setdefault("meiqia.recent_teams", {})
    now = time.monotonic()
    hit = cache.get(team_id)
    if hit is not None and now - hit[0] < RECENT_SECONDS:
        return hit[1]
    try:
        snapshot: RecentTeam | None = RecentTeam(get_by_id(Team, team_id))
    except Team.DoesNotExist:
        snapshot = None
    cache[team_id] = (now, snapshot)
    return snapshot


def recent_settings(team_id: int) -> dict[str, Any]:
    """``recent(team_id).settings``: the team's merged settings, at most
    RECENT_SECONDS old, for reading only (the dict is shared)."""
    team = recent(team_id)
    if team is None:
        raise Team.DoesNotExist(f"Team {team_id} does not exist")
    return team.settings


def update_team(actor: Agent, data: dict[str, Any]) -> Team:
    require_admin(actor)
    check(data, TEAM_UPDATE_SCHEMA)
    words = data.get("settings", {})
    if "bot_synonyms" in words or "bot_user_words" in words:
        from meiqia.bot.lexicon import check_words

        problem = check_words(words.get("bot_synonyms", []), words.get("bot_user_words", []))
        if problem is not None:
            raise ValidationError(problem[1], problem[0])
    team = Team.get_by_id(actor.team_id)
    if "timezone" in data:
        check_timezone(data["timezone"])
    if "settings" in data:
        stored = copy.deepcopy(team.settings or {})
        for key, value in data["settings"].items():
            if isinstance(value, dict):
                stored.setdefault(key, {}).update(value)
            else:
                stored[key] = value
        probe = Team(settings=stored)
        merged = settings_of(probe)
        if merged["suggest_threshold"] > merged["answer_threshold"]:
            raise ValidationError(
                "settings.suggest_threshold: must not exceed answer_threshold",
                "settings.suggest_threshold",
            )
        team.settings = stored
    for key in ("name", "timezone", "language"):
        if key in data:
            setattr(team, key, data[key].strip() if key == "name" else data[key])
    bot_keys = {"bot_target_precision", "bot_synonyms", "bot_user_words"}
    relearn = bot_keys & set(data.get("settings", {}))
    with database.atomic():
        team.save()
        audit(actor, "team.update", "team", team.id, data)
        if relearn:
            # The bot's words and target changed: every process rebuilds (and
            # recalibrates) the team's index, as after a reindex.
            from meiqia.services import knowledge

            knowledge.record_changes(team.id, None, kind="settings")
    current_app.extensions.get("meiqia.recent_teams", {}).pop(team.id, None)
    if relearn:
        from meiqia.services import knowledge

        knowledge.refresh(team.id)
    return team


def team_to_dict(team: Team, with_settings: bool = False) -> dict[str, Any]:
    data = {
        "id": team.id,
        "name": team.name,
        "timezone": team.timezone,
        "language": team.language,
        "created_at": iso(team.created_at),
    }
    if with_settings:
        data["settings"] = settings_of(team)
    return data


def allowed_origins(team_id: int) -> list[str]:
    """The sites that may frame the team's widget (empty: any site)."""
    team = Team.get_or_none(Team.id == team_id)
    return list(settings_of(team)["widget"].get("allowed_origins") or []) if team else []


def widget_config(team_id: int) -> dict[str, Any] | None:
    """What the public widget page may know of a team (None: no such team)."""
    team = Team.get_or_none(Team.id == team_id)
    if team is None:
        return None
    settings = settings_of(team)
    return {"id": team.id, "name": team.name, "language": team.language,
            "timezone": team.timezone,  # the widget shows times on the team's clock
            "widget": settings["widget"], "ticket_form": settings["ticket_form"]}


#: The greeting a team gets until it writes its own (issue 17): in the visitor's
#: language, so an English visitor of a Chinese team is greeted in English.
DEFAULT_WELCOME = {
    "zh-CN": "您好，欢迎光临！我是智能助手，可以回答发货、退换货、支付等常见问题；"
             "需要人工客服时，点“转人工”即可。",
    "en": "Hello and welcome! I'm the assistant: ask me about shipping, returns or "
          "payment. For a person, press \u201cTalk to a human\u201d at any time.",
}


def greeting(team: Team, language: str) -> str | None:
    """The built-in greeting in ``language`` (``zh-CN`` or ``en``) while the team has
    no welcome message of its own; None once it has (that one is stored as the
    conversation's first message, as before). The widget shows the greeting at the
    top of a conversation; it is not a message, so transcripts stay the people's."""
    if (settings_of(team)["welcome_message"] or "").strip():
        return None
    return DEFAULT_WELCOME["en" if language == "en" else "zh-CN"]
