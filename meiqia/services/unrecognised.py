"""From "the bot did not know" to "the bot knows": the unrecognised-question loop.

Admins see the questions the bot could not answer, grouped by topic with
counts, each group with the replies agents later gave in those conversations
(the answers that closed them). One step turns a group into a new KB entry:
its questions become the entry's questions, the chosen reply its answer, and
the group is marked resolved.
"""

from __future__ import annotations

import datetime
from typing import Any

from meiqia.bot.cluster import cluster_questions
from meiqia.bot.cluster import representative
from meiqia.db import database
from meiqia.models import Agent
from meiqia.models import Message
from meiqia.models import UnrecognisedQuestion
from meiqia.models.base import utcnow
from meiqia.services import knowledge
from meiqia.services.accounts import audit
from meiqia.services.accounts import iso
from meiqia.services.accounts import require_admin
from meiqia.services.errors import ValidationError
from meiqia.services.validation import check

RESOLVE_SCHEMA = {
    "type": "object",
    "required": ["question_ids", "answer"],
    "additionalProperties": False,
    "properties": {
        "question_ids": {"type": "array", "items": {"type": "integer"}, "minItems": 1,
                         "maxItems": 500},
        "questions": {"type": "array", "items": knowledge.QUESTION, "maxItems": 100},
        "answer": knowledge.ANSWER,
        "category": {"type": "string", "maxLength": 80},
        "key": knowledge.ENTRY_FIELDS["key"],
    },
}


DISMISS_SCHEMA = {
    "type": "object",
    "required": ["question_ids"],
    "additionalProperties": False,
    "properties": {
        "question_ids": {"type": "array", "items": {"type": "integer"}, "minItems": 1,
                         "maxItems": 3000},
    },
}


def _closing_replies(rows: list[UnrecognisedQuestion], limit: int = 3) -> list[str]:
    """Agents' first public replies after each question, in its conversation."""
    replies: list[str] = []
    for row in rows:
        if row.conversation_id is None:
            continue
        query = Message.select(Message.body).where(
            Message.conversation == row.conversation_id,
            Message.sender_kind == "agent",
            Message.visibility == "public",
            Message.kind == "text",
        )
        if row.message_id:
            query = query.where(Message.id > row.message_id)
        reply = query.order_by(Message.id).first()
        if reply and reply.body and reply.body not in replies:
            replies.append(reply.body)
        if len(replies) >= limit:
            break
    return replies


def groups(actor: Agent, days: int = 30) -> list[dict[str, Any]]:
    """Open unrecognised questions of the last ``days`` days, grouped by topic."""
    require_admin(actor)
    since = utcnow() - datetime.timedelta(days=days)
    rows = list(
        UnrecognisedQuestion.select()
        .where(UnrecognisedQuestion.team == actor.team_id,
               UnrecognisedQuestion.created_at >= since,
               UnrecognisedQuestion.resolved_entry.is_null())
        .order_by(UnrecognisedQuestion.created_at.desc())
        .limit(3000)
    )
    texts = [r.question for r in rows]
    result = []
    for members in cluster_questions(texts):
        head = representative(texts, members)
        member_rows = [rows[i] for i in members]
        result.append({
            "question": texts[head],
            "count": len(members),
            "question_ids": [r.id for r in member_rows],
            "questions": list(dict.fromkeys(r.question for r in member_rows))[:20],
            "last_asked_at": iso(max(r.created_at for r in member_rows)),
            "closing_replies": _closing_replies(member_rows),
        })
    return result


def resolve_into_entry(actor: Agent, data: dict[str, Any]) -> dict[str, Any]:
    """Create a KB entry from a group of questions and mark them resolved."""
    require_admin(actor)
    check(data, RESOLVE_SCHEMA)
    rows = list(UnrecognisedQuestion.select().where(
        UnrecognisedQuestion.id.in_(data["question_ids"]),
        UnrecognisedQuestion.team == actor.team_id,
    ))
    if len(rows) != len(set(data["question_ids"])):
        raise ValidationError("question_ids: some questions are not in this team",
                              "question_ids")
    questions = data.get("questions") or [r.question for r in rows]
    with database.atomic():
        entry = knowledge.create_entry(actor, {
            "questions": questions,
            "answer": data["answer"],
            "category": data.get("category", ""),
            **({"key": data["key"]} if data.get("key") else {}),
        })
        UnrecognisedQuestion.update(resolved_entry=entry.id).where(
            UnrecognisedQuestion.id.in_([r.id for r in rows])).execute()
    # create_entry ran inside this transaction: the index learns it after the commit.
    knowledge.refresh(actor.team_id)
    return knowledge.entry_to_dict(entry)


def dismiss(actor: Agent, data: dict[str, Any]) -> int:
    """Forget a group the team will not answer (spam, off-topic, one-off questions).

    The questions are deleted, not flagged: nothing but this loop reads them, and a
    dismissed topic that comes back should show again as new. Questions of other
    teams and already resolved ones are left alone. Returns how many were removed.
    """
    require_admin(actor)
    check(data, DISMISS_SCHEMA)
    with database.atomic():
        removed = UnrecognisedQuestion.delete().where(
            UnrecognisedQuestion.id.in_(data["question_ids"]),
            UnrecognisedQuestion.team == actor.team_id,
            UnrecognisedQuestion.resolved_entry.is_null(),
        ).execute()
        audit(actor, "bot.unrecognised.dismiss", "team", actor.team_id, {"removed": removed})
    return removed
