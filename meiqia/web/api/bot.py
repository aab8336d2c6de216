"""Bot API: ask the bot (test console), the unrecognised-question loop."""

from __future__ import annotations

from flask import g

from meiqia.bot.normalize import QuestionError
from meiqia.bot.normalize import check_question
from meiqia.bot.normalize import small_talk
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
       body=ASK_SCHEMA, tags=["bot"],
       description="`decision`: answer, suggest or unrecognised on the team's thresholds; "
       "`small_talk` for a greeting or thanks (fillers only: 你好, 在吗, 谢谢, hello, "
       "thanks), which the bot answers with `reply` (in the request's language) instead "
       "of looking it up, with `small_talk` `greeting` or `thanks` and no candidates. "
       "An empty, emoji-only or binary question is refused (422).")
def ask(body: dict) -> dict:
    from meiqia.web import i18n

    try:
        question = check_question(body["question"])
    except QuestionError as exc:
        raise ValidationError(f"question: {exc}", "question") from exc
    talk = small_talk(question)
    if talk is not None and not bot.wants_human(question):
        return {"decision": "small_talk", "small_talk": talk, "candidates": [],
                "reply": bot.MESSAGES[i18n.error_language()][talk], "truncated": False,
                "wants_human": False}
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
