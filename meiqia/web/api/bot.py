"""Bot API: ask the bot (test console), the unrecognised-question loop."""

from __future__ import annotations

from flask import g

from meiqia.bot.normalize import QuestionError
from meiqia.bot.normalize import check_question
from meiqia.bot.normalize import truncate_question
from meiqia.plugin_api import probe_conversation
from meiqia.services import bot
from meiqia.services import unrecognised
from meiqia.services.errors import ValidationError
from meiqia.web.api import query_int
from meiqia.web.api import route

ASK_SCHEMA = {
    "type": "object",
    "required": ["question"],
    "additionalProperties": False,
    "properties": {"question": {"type": "string", "maxLength": 100000}},
}


@route("/bot/ask", ("POST",), summary="Ask the bot a question (test console)",
       body=ASK_SCHEMA, tags=["bot"])
def ask(body: dict) -> dict:
    try:
        question = check_question(body["question"])
    except QuestionError as exc:
        raise ValidationError(f"question: {exc}", "question") from exc
    question, truncated = truncate_question(question)
    candidates = bot.candidates_for(question, probe_conversation(g.actor.team_id), k=5)
    return {
        "decision": bot.decide(g.actor.team, candidates),
        "candidates": candidates,
        "truncated": truncated,
        "wants_human": bot.wants_human(question),
    }


@route("/bot/unrecognised", summary="Unrecognised questions grouped by topic", auth="admin",
       query={"type": "object", "properties": {"days": {"type": "integer", "minimum": 1,
                                                        "maximum": 365}}}, tags=["bot"])
def unrecognised_groups() -> dict:
    return {"groups": unrecognised.groups(g.actor, days=query_int("days", 30, 1, 365))}


@route("/bot/unrecognised/resolve", ("POST",), summary="Turn a group into a KB entry",
       auth="admin", body=unrecognised.RESOLVE_SCHEMA, status=201, tags=["bot"])
def resolve(body: dict) -> dict:
    return unrecognised.resolve_into_entry(g.actor, body)


@route("/bot/unrecognised/dismiss", ("POST",), summary="Dismiss a group (delete its questions)",
       auth="admin", body=unrecognised.DISMISS_SCHEMA, tags=["bot"],
       description="For topics the team will not answer. Returns how many questions "
       "were removed; other teams' and resolved questions are never touched.")
def dismiss(body: dict) -> dict:
    return {"dismissed": unrecognised.dismiss(g.actor, body)}
