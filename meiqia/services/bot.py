"""The bot as the conversation sees it: answers visitors, suggests to agents.

Every answerer is a plugin behind ``register_answerers`` (the knowledge-base
bot is one); their candidates are merged (``meiqia.bot.answers``: one per
entry, best score first, ``priority`` between equal scores), and the team's two
thresholds decide: answer, "did you mean" (suggest), or unrecognised. ``ask``
is the one function that does it, for the live bot, ``meiqia bot ask`` and
``meiqia bot eval`` alike. An
unrecognised question is logged for the admins' "unrecognised questions" page;
after ``bot_failures_before_human`` of them in a row the bot offers a human.
Words such as 转人工 / 人工 / human / agent always mean "give me a human".
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from dataclasses import field
from typing import Any

from flask import current_app

from meiqia.bot import answers
from meiqia.bot.normalize import MAX_QUESTION_CHARS
from meiqia.bot.normalize import QuestionError
from meiqia.bot.normalize import check_question
from meiqia.bot.normalize import normalize
from meiqia.bot.normalize import normalize_asked
from meiqia.bot.normalize import small_talk
from meiqia.bot.normalize import truncate_question
from meiqia.models import Conversation
from meiqia.models import Message
from meiqia.models import SuggestionLog
from meiqia.models import Team
from meiqia.models import UnrecognisedQuestion
from meiqia.plugin_api import to_plugin
from meiqia.services.messages import MAX_BODY
from meiqia.services.teams import recent_settings
from meiqia.services.teams import settings_of

#: Phrases that ask for a person wherever they stand in a short message.
STRONG_HUMAN_WORDS = ("转人工", "人工客服", "人工服务", "真人客服", "找人工", "接人工",
                      "真人说话", "人工说话", "真人聊", "找真人", "人工坐席",
                      "talk to a human", "speak to a human", "real person", "human agent",
                      "live agent", "talk to an agent", "speak to an agent",
                      "talk to a person", "speak to a person", "talk with a human",
                      "speak with a human", "real human")
#: Words that ask for a person when they are (nearly) the whole message.
HUMAN_WORDS = ("人工", "客服", "真人", "human", "agent", "customer service", "operator")
#: Request openings removed before comparing with HUMAN_WORDS.
_OPENINGS = ("我要", "我想要", "我想找", "我想", "给我", "帮我转", "帮我找", "找", "请转", "转",
             "i want", "i need", "can i talk to", "let me talk to", "get me", "a ", "an ")
_STRONG = tuple(normalize(w) for w in STRONG_HUMAN_WORDS)
_WEAK = {normalize(w) for w in HUMAN_WORDS}
#: Longer messages are questions that merely mention these words.
HUMAN_MAX_CHARS = 16
#: The same for a message holding one of STRONG_HUMAN_WORDS (English takes more letters).
HUMAN_MAX_CHARS_STRONG = 40


MESSAGES = {
    "zh-CN": {
        "suggest": "您是不是想问：",
        "unrecognised": "抱歉，我没有理解您的问题。您可以换个说法，或者点击“转人工”联系客服。",
        "offer_human": "我好像帮不上忙，需要为您转接人工客服吗？",
        "truncated": f"（您的问题太长，我只读了前 {MAX_QUESTION_CHARS} 个字。）",
        "invalid": "抱歉，我没能读懂这条消息。",
        # Small talk (``normalize.small_talk``): fillers only, nothing to look up.
        "greeting": "您好，请问有什么可以帮您？",
        "thanks": "不客气！还有什么可以帮您的吗？",
        # Channels without the widget's buttons (e-mail, WeChat): words to reply with.
        "unrecognised_by_reply": "抱歉，我没有理解您的问题。您可以换个说法，或者回复“人工”联系客服。",
        "suggest_by_reply": "回复序号或上面任意一个问题，或者回复“人工”联系客服。",
        "offer_human_by_reply": "我好像帮不上忙，正在为您转接人工客服。",
    },
    "en": {
        "suggest": "Did you mean:",
        "unrecognised": "Sorry, I did not understand. Try other words, or tap "
        "\"Talk to a human\".",
        "offer_human": "I can't seem to help with this. Shall I get you a human agent?",
        "truncated": f"(Your question was long: I read the first {MAX_QUESTION_CHARS:,} characters.)",
        "invalid": "Sorry, I could not read that message.",
        "greeting": "Hello! How can I help you?",
        "thanks": "You're welcome! Anything else I can help with?",
        "unrecognised_by_reply": "Sorry, I did not understand. Try other words, or reply "
        "\"human\" to talk to an agent.",
        "suggest_by_reply": "Reply with a number or one of these questions, or \"human\" "
        "for an agent.",
        "offer_human_by_reply": "I can't seem to help with this: I'm getting you a human "
        "agent.",
    },
}


def reply_text(body: str, payload: dict | None, lang: str) -> str:
    """A bot message as plain text for a channel without the widget's buttons.

    The widget shows "did you mean" candidates as buttons and has a 转人工 button;
    an e-mail or a WeChat user has neither, so the candidates are written out and
    the way to a person is "reply 人工" (which ``wants_human`` understands)."""
    words = MESSAGES["en" if lang == "en" else "zh-CN"]
    payload = payload or {}
    if payload.get("bot") == "unrecognised":
        return body.replace(words["unrecognised"], words["unrecognised_by_reply"]).replace(
            words["offer_human"], words["offer_human_by_reply"])
    candidates = [c.get("question") for c in payload.get("candidates") or []
                  if isinstance(c, dict) and c.get("question")]
    if payload.get("bot") == "suggest" and candidates:
        lines = [f"{n}. {question}" for n, question in enumerate(candidates, 1)]
        return "\n".join([body, *lines, words["suggest_by_reply"]])
    return body


def wants_human(text: str) -> bool:
    """True when the visitor asks for a person (转人工, 我要人工客服, human, agent…)."""
    norm = normalize_asked(text or "")
    if not norm or len(norm) > HUMAN_MAX_CHARS_STRONG:
        return False
    if any(word in norm for word in _STRONG):
        return True  # "I want to speak with a human" is longer than a word or two
    if len(norm) > HUMAN_MAX_CHARS:
        return False
    changed = True
    while changed:
        changed = False
        for opening in _OPENINGS:
            if norm.startswith(opening) and len(norm) > len(opening):
                norm = norm[len(opening):].strip()
                changed = True
    return norm in _WEAK


def answerers() -> list[Any]:
    """Answerer objects of every plugin (``register_answerers``, called once by
    ``create_app`` at start-up)."""
    cached = current_app.extensions.get("meiqia.answerers")
    if cached is None:  # an application not made by create_app
        app = current_app._get_current_object()  # type: ignore[attr-defined]
        cached = app.extensions["meiqia.plugins"].call_flat("register_answerers", app=app)
        app.extensions["meiqia.answerers"] = cached
    return cached


def answerers_with_index(index: Any) -> list[Any]:
    """``answerers()`` with the knowledge base answering from ``index`` (a KB
    file's, for ``meiqia bot ask --kb`` and ``meiqia bot eval``) instead of the
    team's: every plugin's answerer is still asked, as the live bot asks it."""
    from meiqia.plugins.kb_answerer import KnowledgeBaseAnswerer

    pm = current_app.extensions["meiqia.plugins"]
    chosen = []
    for answerer in answerers():
        if isinstance(answerer, KnowledgeBaseAnswerer):
            replacement = KnowledgeBaseAnswerer(index)
            pm.set_owner(replacement, pm.owner_of(answerer) or "kb_answerer")
            answerer = replacement
        chosen.append(answerer)
    return chosen


def priority_of(answerer: Any) -> int:
    """An answerer's ``priority`` attribute (0 when it has none or it is not an int)."""
    value = getattr(answerer, "priority", 0)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def candidates_for(question: str, conversation: Any, k: int = 5,
                   asked: list[Any] | None = None) -> list[dict[str, Any]]:
    """Every answerer's candidates merged (``meiqia.bot.answers.merge``), best first.

    ``asked``: the answerers to ask (default: every plugin's, ``answerers()``).
    Each runs within the ``answer`` budget, on its plugin's own threads (the
    built-in knowledge base on this one), and sees the conversation as a
    ``PluginConversation``; one that fails is logged and left out."""
    pm = current_app.extensions["meiqia.plugins"]
    conversation = to_plugin(conversation)
    team_id = getattr(conversation, "team_id", None)
    results = []
    for answerer in answerers() if asked is None else asked:
        source = getattr(answerer, "name", None) or "answerer"
        usable: list[Any] = []
        found, failure = pm.runtime.run(
            pm.owner_of(answerer) or source, "answer", answerer.answer,
            {"question": question, "conversation": conversation}, team_id=team_id,
            check=lambda found, usable=usable: sift_candidates(found, usable))
        if failure is not None and failure.kind != "malformed":
            continue
        # A malformed answer is a failure of the plugin (counted, logged, held
        # against the breaker); its usable candidates, if any, still count.
        candidates = usable if failure is not None else list(found or [])
        results.append(answers.Answered(str(source), priority_of(answerer), candidates))
    return answers.merge(results, k)


def sift_candidates(found: Any, usable: list[Any]) -> str | None:
    """The runtime's ``check`` of an answerer's answer: appends its usable candidates
    to ``usable``; says what is wrong (``answers.problem_of``, never the values) when
    the answer is not a list or any candidate is malformed, which makes the call a
    failure of the plugin."""
    if found is None:
        return None
    if not isinstance(found, list | tuple):
        return f"expected a list of candidates, got {type(found).__name__}"
    problems = []
    for number, candidate in enumerate(found, 1):
        problem = answers.problem_of(candidate)
        if problem is None:
            usable.append(candidate)
        else:
            problems.append(f"candidate {number}: {problem}")
    if not problems:
        return None
    more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
    return f"{len(problems)} of {len(found)} candidates dropped: " + "; ".join(problems[:3]) + more


def decide(team: Team, candidates: list[dict[str, Any]]) -> str:
    settings = settings_of(team)
    return answers.decide(candidates, settings["answer_threshold"],
                          settings["suggest_threshold"]).kind


@dataclass(frozen=True)
class Asked:
    """What the bot made of one message (``ask``).

    ``kind``: ``answer``, ``suggest``, ``unrecognised``, ``human`` (the visitor
    asks for a person), ``small_talk`` (a greeting or thanks: ``talk`` says which)
    or ``invalid`` (nothing readable: ``error`` says why).
    ``candidates``: the merged candidates; ``shown``: those the visitor sees."""

    kind: str
    question: str = ""
    truncated: bool = False
    candidates: list[dict[str, Any]] = field(default_factory=list)
    shown: list[dict[str, Any]] = field(default_factory=list)
    error: str = ""
    talk: str = ""


def ask(text: str, conversation: Any, answer_threshold: float, suggest_threshold: float,
        k: int = 3, asked: list[Any] | None = None) -> Asked:
    """THE way the bot is asked: by the live bot (``answer_visitor``),
    ``meiqia bot ask`` and ``meiqia bot eval``, so the three cannot differ.

    Human words first, then small talk (greetings and thanks, nothing to look
    up), then the question check and the 2,000-character cut, then every
    answerer (``candidates_for``) and the thresholds
    (``meiqia.bot.answers.decide``). No side effects."""
    if wants_human(text):
        return Asked("human")
    talk = small_talk(text)
    if talk is not None:
        return Asked("small_talk", text.strip(), talk=talk)
    try:
        question = check_question(text)
    except QuestionError as exc:
        return Asked("invalid", error=str(exc))
    question, truncated = truncate_question(question)
    found = candidates_for(question, conversation, k=k, asked=asked)
    decision = answers.decide(found, answer_threshold, suggest_threshold)
    return Asked(decision.kind, question, truncated, found, decision.shown)


def answer_visitor(conversation: Conversation, message: Any) -> dict[str, Any]:
    """The bot's reply to one visitor message of a conversation with the bot.

    Returns ``{"kind": "answer"|"suggest"|"unrecognised"|"small_talk"|"human",
    "body", "candidates", "offer_human", "entry_id"}``. The caller stores the reply
    as a bot message and starts routing when ``kind`` is ``human``. Updates the
    conversation's run of unrecognised questions and logs unrecognised ones (a
    greeting or thanks is neither: the bot greets back or says "不客气").

    ``body`` is always a message the conversation can store (not blank, at
    most ``messages.MAX_BODY`` characters): an answer that is not is logged and
    the question treated as unrecognised, so that what the bot makes of a
    visitor's message never becomes an error of the request that sent it.
    """
    from meiqia.services.routing import visitor_language

    team = conversation.team
    lang = visitor_language(conversation)  # his widget's language, not the team's
    text = message.body if hasattr(message, "body") else str(message)
    text = chosen_question(conversation, text) or text
    settings = settings_of(team)
    asked = ask(text, conversation, settings["answer_threshold"], settings["suggest_threshold"])
    if asked.kind == "human":
        return {"kind": "human", "body": "", "candidates": [], "offer_human": False,
                "entry_id": None}
    if asked.kind == "invalid":
        return {"kind": "unrecognised", "body": MESSAGES[lang]["invalid"], "candidates": [],
                "offer_human": False, "entry_id": None}
    if asked.kind == "small_talk":
        return {"kind": "small_talk", "body": MESSAGES[lang][asked.talk], "candidates": [],
                "offer_human": False, "entry_id": None}
    kind, question = asked.kind, asked.question
    prefix = MESSAGES[lang]["truncated"] + "\n" if asked.truncated else ""
    if kind == "answer" and not _sayable(prefix + asked.shown[0]["answer"]):
        top = asked.shown[0]
        current_app.logger.warning(
            "bot: the answer of entry %s (%s) cannot be sent (%d characters, at most %d):"
            " the question is treated as unrecognised", top["entry_id"], top["source"],
            len(top["answer"]), MAX_BODY)
        kind = "unrecognised"
    if kind == "unrecognised":
        failures = conversation.bot_failures + 1
        Conversation.update(bot_failures=failures).where(
            Conversation.id == conversation.id).execute()
        conversation.bot_failures = failures
        UnrecognisedQuestion.create(team=team.id, conversation=conversation.id,
                                    message_id=getattr(message, "id", None), question=question)
        offer = failures >= settings["bot_failures_before_human"]
        body = MESSAGES[lang]["offer_human" if offer else "unrecognised"]
        return {"kind": kind, "body": prefix + body, "candidates": [], "offer_human": offer,
                "entry_id": None}
    if conversation.bot_failures:
        Conversation.update(bot_failures=0).where(Conversation.id == conversation.id).execute()
        conversation.bot_failures = 0
    if kind == "answer":
        top = asked.shown[0]
        return {"kind": kind, "body": prefix + top["answer"], "candidates": asked.shown,
                "offer_human": False, "entry_id": top["entry_id"]}
    return {"kind": kind, "body": prefix + MESSAGES[lang]["suggest"],
            "candidates": asked.shown, "offer_human": False, "entry_id": None}


def _sayable(body: str) -> bool:
    """Whether ``body`` can be stored as the bot's message (``post_message``
    refuses a blank one and one over ``MAX_BODY`` characters)."""
    return bool(body.strip()) and len(body.strip()) <= MAX_BODY


#: A reply that picks a numbered "did you mean" line: 2, ２, "2.", "第2个"…
_CHOICE = re.compile(r"第?\s*(\d{1,2})\s*[个條条项.、。)）]?")


def chosen_question(conversation: Conversation, text: str) -> str | None:
    """On a channel (e-mail, WeChat), where "did you mean" is written out as
    numbered lines, a reply that is only a number picks that line: the question
    it names, or None. The widget shows buttons instead, so there a number is
    just a number."""
    if (getattr(conversation, "channel", "web") or "web") == "web":
        return None
    match = _CHOICE.fullmatch(unicodedata.normalize("NFKC", text or "").strip())
    if match is None:
        return None
    from meiqia.models import Message

    last = (Message.select(Message.payload)
            .where(Message.conversation == conversation.id, Message.sender_kind == "bot")
            .order_by(Message.id.desc()).first())
    payload = (last.payload or {}) if last is not None else {}
    candidates = [c.get("question") for c in payload.get("candidates") or []
                  if isinstance(c, dict) and c.get("question")]
    number = int(match.group(1))
    if payload.get("bot") != "suggest" or not 1 <= number <= len(candidates):
        return None
    return candidates[number - 1]


def suggestions_for_agent(conversation: Conversation, text: str, k: int = 3) -> list[dict]:
    """Top answers to push into the agent's chat window for a visitor message."""
    try:
        question = check_question(text)
    except QuestionError:
        return []
    question, _ = truncate_question(question)
    settings = recent_settings(conversation.team_id)
    return [c for c in candidates_for(question, conversation, k=k)
            if c["score"] >= settings["suggest_threshold"] * 0.6]


def record_suggestions(conversation: Conversation, message_id: int,
                       suggestions: list[dict]) -> None:
    """Log the suggestions shown for a visitor message (outcome ``ignored`` until used)."""
    if not suggestions:
        return
    # One statement for the three: this runs on every visitor message an agent handles.
    SuggestionLog.insert_many([
        {"team": conversation.team_id, "conversation": conversation.id, "message_id": message_id,
         "entry_key": cand["entry_id"], "score": cand["score"], "outcome": "ignored",
         "question": cand["question"], "answer": cand["answer"]}
        for cand in suggestions]).execute()


def last_suggestions(conversation: Conversation) -> dict[str, Any]:
    """The ``suggestions`` frame's data for the visitor's last message, for a
    workspace opened after the frame went out (a reload, a second tab): while
    nobody has answered that message and the conversation is open; otherwise
    ``suggestions`` is empty. Read from the log, in the order they were shown."""
    found: dict[str, Any] = {"conversation_id": conversation.id, "message_id": None,
                             "handler_id": conversation.handler_id, "suggestions": []}
    if conversation.status == "ended":
        return found
    last = (Message.select(Message.id, Message.sender_kind)
            .where(Message.conversation == conversation.id, Message.visibility == "public",
                   Message.sender_kind.in_(("visitor", "agent")))
            .order_by(Message.id.desc()).first())
    if last is None or last.sender_kind != "visitor":
        return found
    rows = list(SuggestionLog.select().where(
        SuggestionLog.conversation == conversation.id, SuggestionLog.message_id == last.id,
        SuggestionLog.question != "").order_by(SuggestionLog.id))
    if rows:
        found["message_id"] = last.id
        found["suggestions"] = [{"entry_id": r.entry_key, "question": r.question,
                                 "answer": r.answer, "score": r.score} for r in rows]
    return found


def record_outcome(conversation: Conversation, message_id: int, entry_key: str,
                   agent_id: int, outcome: str) -> int:
    """Mark a shown suggestion as ``accepted`` or ``edited`` by the agent."""
    if outcome not in {"accepted", "edited"}:
        raise ValueError(outcome)
    return SuggestionLog.update(outcome=outcome, agent=agent_id).where(
        SuggestionLog.conversation == conversation.id,
        SuggestionLog.message_id == message_id,
        SuggestionLog.entry_key == entry_key,
    ).execute()
