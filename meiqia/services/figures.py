"""The history figures of DESIGN §8, computed once when a conversation ends.

Definitions (the product's; keep them exact):
- lead: a visitor message contains 5 or more consecutive digits, digits joined
  with ``-`` (131-2113-2323), or an ``@``. "Digits joined with -" is read as a
  number written in groups: groups joined by single ``-`` holding 10 or more
  digits together (131-2113-2323, 400-820-8820), so dates (2026-11-24), ranges
  (1-2) and short groups (1312-113) are not leads. Text is NFKC-normalised first,
  so the full-width digits, ``－`` and ``＠`` of Chinese input methods count;
- invalid: the visitor sent no message;
- asked for a person: the visitor asked for a human (button, 转人工, the bot
  giving up, or the bot being off), or a person was given the chat: the
  conversation was queued, assigned or transferred, or offered the
  leave-a-message form (docs/history.md, "Missed and solved by the bot");
- missed: the visitor sent a message, asked for a person, and no agent sent a
  manual message before the end (a chat only the bot served, where nobody
  asked for a person, is not missed: nobody was missing);
- solved by the bot: the visitor sent a message, the bot answered, and he
  never asked for a person, no agent sent a manual message, and he did not
  leave a message (a ticket) from it;
- duration: from the first manual message to the last manual message;
- first response: from the visitor's first message to the first manual reply;
- grade: by message count, thresholds from the conversation rules.
A manual message is a public message an agent sent (internal notes are not).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from typing import Any

from meiqia.db import database
from meiqia.models import Conversation
from meiqia.models import ConversationRule
from meiqia.models import Message

#: An "@" with the address around it; or a run of digits, possibly in groups
#: joined by single "-".
_CANDIDATE_RE = re.compile(r"[A-Za-z0-9._%+-]*@[A-Za-z0-9.-]*|\d+(?:-\d+)*")
_RUN_RE = re.compile(r"\d{5,}")
#: Digits a number written in groups needs to be a lead (a phone number).
GROUPED_DIGITS = 10


def lead_matches(text: str) -> list[str]:
    """The parts of a visitor message that make it a lead (DESIGN §8)."""
    hits = []
    for match in _CANDIDATE_RE.finditer(unicodedata.normalize("NFKC", text or "")):
        token = match.group(0)
        if "@" in token:
            hits.append(token)
        elif "-" not in token:
            if len(token) >= 5:
                hits.append(token)
        elif sum(c.isdigit() for c in token) >= GROUPED_DIGITS:
            hits.append(token)
        else:
            hits.extend(_RUN_RE.findall(token))  # 12345-6: the run of five counts
    return hits


def grade_for(count: int, grades: list[dict[str, Any]]) -> str:
    for rule in sorted(grades or [], key=lambda g: -int(g.get("min_messages", 0))):
        if count >= int(rule.get("min_messages", 0)):
            return str(rule.get("grade", ""))
    return ""


#: Event messages that show a person was asked for (see the module docstring).
HUMAN_EVENTS = frozenset({"leave_message", "handover", "transferred", "requeued"})


def compute_figures(messages: Iterable[Any], grades: list[dict[str, Any]], *,
                    asked_human: bool | None = None,
                    left_ticket: bool = False) -> dict[str, Any]:
    """Figures of one conversation from its messages (objects with sender_kind,
    visibility, kind, body, created_at, and payload for events), in the order
    they were sent. ``asked_human`` None: read from the event messages alone
    (``compute_and_store`` also knows the conversation's queueing and handler)."""
    messages = list(messages)
    events = {(getattr(m, "payload", None) or {}).get("event") for m in messages
              if m.kind == "event"}
    asked = bool(events & HUMAN_EVENTS) if asked_human is None else asked_human
    visitor = [m for m in messages if m.sender_kind == "visitor"]
    manual = [m for m in messages if m.sender_kind == "agent" and m.visibility == "public"
              and m.kind != "event"]
    bots = [m for m in messages if m.sender_kind == "bot"]
    leads = [hit for m in visitor for hit in lead_matches(m.body)]
    first_manual = manual[0].created_at if manual else None
    last_manual = manual[-1].created_at if manual else None
    first_response = None
    if visitor:
        replies = [m.created_at for m in manual if m.created_at >= visitor[0].created_at]
        if replies:
            first_response = int((replies[0] - visitor[0].created_at).total_seconds())
    count = len(visitor) + len(manual)
    return {
        "visitor_message_count": len(visitor),
        "agent_message_count": len(manual),
        "bot_message_count": len(bots),
        "is_lead": bool(leads),
        "lead_details": ", ".join(dict.fromkeys(leads))[:1000],
        "is_invalid": not visitor,
        "is_missed": bool(visitor) and asked and not manual,
        "bot_resolved": bool(visitor) and bool(bots) and not asked and not manual
        and not left_ticket,
        "first_manual_at": first_manual,
        "last_manual_at": last_manual,
        "duration_s": int((last_manual - first_manual).total_seconds()) if manual else None,
        "first_response_s": first_response,
        "grade": grade_for(count, grades),
    }


def compute_and_store(conversation: Conversation) -> dict[str, Any]:
    """Compute the figures of an ended conversation and store them on it."""
    rule = ConversationRule.get_or_none(ConversationRule.team == conversation.team_id)
    messages = list(
        Message.select().where(Message.conversation == conversation.id).order_by(Message.id)
    )
    from meiqia.models import Ticket

    events = {(m.payload or {}).get("event") for m in messages if m.kind == "event"}
    asked = bool(conversation.queued_at or conversation.assigned_at or conversation.handler_id
                 or events & HUMAN_EVENTS)
    left = conversation.end_reason == "left_ticket" or Ticket.select().where(
        Ticket.conversation == conversation.id).exists()
    figures = compute_figures(messages, rule.grades if rule else [], asked_human=asked,
                              left_ticket=left)
    Conversation.update(**figures).where(Conversation.id == conversation.id).execute()
    return figures


RULES_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "grades": {"type": "array", "maxItems": 10, "items": {
            "type": "object", "required": ["grade", "min_messages"],
            "additionalProperties": False,
            "properties": {"grade": {"type": "string", "minLength": 1, "maxLength": 16},
                           "min_messages": {"type": "integer", "minimum": 0,
                                            "maximum": 100000}}}},
        "inactivity_minutes": {"type": "integer", "minimum": 0, "maximum": 10080},
        "bot_inactivity_minutes": {"type": "integer", "minimum": 0, "maximum": 10080},
    },
}


def rules_of(team_id: int) -> ConversationRule:
    rule = ConversationRule.get_or_none(ConversationRule.team == team_id)
    return rule or ConversationRule.create(team=team_id, grades=[])


def update_rules(actor: Any, data: dict[str, Any]) -> tuple[ConversationRule, str | None]:
    """Change the grading rules; if the grades changed, regrade the history as a job."""
    from flask import current_app

    from meiqia.models.base import utcnow
    from meiqia.services.accounts import require_admin
    from meiqia.services.errors import ValidationError
    from meiqia.services.validation import check

    require_admin(actor)
    check(data, RULES_SCHEMA)
    rule = rules_of(actor.team_id)
    before = (list(rule.grades or []), rule.inactivity_minutes, rule.updated_at,
              rule.bot_inactivity_minutes)
    job_id = None
    if "grades" in data:
        names = [g["grade"] for g in data["grades"]]
        if len(set(names)) != len(names):
            raise ValidationError("grades: each grade once", "grades")
        if data["grades"] != rule.grades:
            rule.grades = data["grades"]
            job_id = "pending"
    if "inactivity_minutes" in data:
        rule.inactivity_minutes = data["inactivity_minutes"]
    if "bot_inactivity_minutes" in data:
        rule.bot_inactivity_minutes = data["bot_inactivity_minutes"]
    rule.updated_at = utcnow()
    with database.atomic():
        rule.save()
    if job_id:
        try:
            job_id = current_app.extensions["meiqia.jobs"].enqueue(
                recompute_team, actor.team_id, description="regrade history", owner=actor)
        except Exception:
            # The queue is down (Redis): put the old grades back, so the admin's
            # retry changes them again and the regrade is not silently skipped.
            ConversationRule.update(grades=before[0], inactivity_minutes=before[1],
                                    bot_inactivity_minutes=before[3],
                                    updated_at=before[2]).where(
                ConversationRule.id == rule.id).execute()
            raise
    return rule, job_id


def recompute_team(team_id: int) -> dict[str, int]:
    """Job: recompute the grade of every ended conversation of a team, with progress.

    Grades depend only on the stored message counts, so no message is read.
    """
    from meiqia.jobs import report_progress

    grades = rules_of(team_id).grades
    query = Conversation.select(Conversation.id, Conversation.visitor_message_count,
                                Conversation.agent_message_count).where(
        Conversation.team == team_id, Conversation.status == "ended")
    total = query.count()
    done = changed = 0
    last = 0
    while True:
        batch = list(query.where(Conversation.id > last).order_by(Conversation.id).limit(1000))
        if not batch:
            break
        by_grade: dict[str, list[int]] = {}
        for c in batch:
            grade = grade_for(c.visitor_message_count + c.agent_message_count, grades)
            by_grade.setdefault(grade, []).append(c.id)
        for grade, ids in by_grade.items():
            changed += Conversation.update(grade=grade).where(
                Conversation.id.in_(ids), Conversation.grade != grade).execute()
        done += len(batch)
        last = batch[-1].id
        report_progress(done / max(total, 1), f"{done} / {total}")
    return {"conversations": done, "changed": changed}
