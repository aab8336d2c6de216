"""The life of a conversation (DESIGN §4): start, bot, human, end, transfer, rating.

Only agents end conversations (or the system, e.g. a visitor who leaves a
message instead of waiting); visitors cannot. Ending stores the history
figures and frees a place, which assigns the next queued conversation.
"""

from __future__ import annotations

import contextlib
import functools
import re
import unicodedata
from collections.abc import Callable
from typing import Any

from flask import current_app

from meiqia.db import database
from meiqia.db import find_by_id
from meiqia.db import get_by_id
from meiqia.db import is_database_error
from meiqia.db import is_postgres
from meiqia.db import statement
from meiqia.models import Agent
from meiqia.models import Conversation
from meiqia.models import Group
from meiqia.models import Mention
from meiqia.models import Message
from meiqia.models import Team
from meiqia.models import Visit
from meiqia.models import Visitor
from meiqia.models.base import utcnow
from meiqia.models.conversations import RATINGS
from meiqia.services import capacity
from meiqia.services import events
from meiqia.services import messages
from meiqia.services import permissions
from meiqia.services import routing
from meiqia.services.accounts import iso
from meiqia.services.errors import Conflict
from meiqia.services.errors import Forbidden
from meiqia.services.errors import NotFound
from meiqia.services.errors import ValidationError
from meiqia.services.teams import settings_of
from meiqia.services.validation import check

MODES = ("reply", "anonymous", "internal")
SEND_SCHEMA = {
    "type": "object",
    "required": ["body", "client_msg_id"],
    "additionalProperties": False,
    "properties": {
        "body": {"type": "string", "maxLength": messages.MAX_BODY},
        "mode": {"type": "string", "enum": list(MODES)},
        "client_msg_id": {"type": "string", "maxLength": 64,
                          "description": "The client's own id for the message (1-64 of "
                          "A-Z a-z 0-9 - _ . :); required: a resend with the same id is "
                          "stored once and answered with duplicate: true"},
        "kind": {"type": "string", "enum": ["text", "image", "file"]},
        "attachment": {"type": "string", "maxLength": 40},
        "suggestion": {"type": "object", "properties": {
            "message_id": {"type": "integer"}, "entry_id": {"type": "string"},
            "edited": {"type": "boolean"}}},
    },
}
TRANSFER_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "agent_id": {"type": "integer"},
        "group_id": {"type": "integer"},
        "accept_over_limit": {"type": "boolean"},
    },
}
RATING_SCHEMA = {
    "type": "object",
    "required": ["rating"],
    "additionalProperties": False,
    "properties": {
        "rating": {"type": "string", "enum": list(RATINGS)},
        "comment": {"type": "string", "maxLength": 1000},
    },
}
SUMMARY_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "summary": {"type": "string", "maxLength": 5000},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 40}, "maxItems": 20},
    },
}


def active_for(visitor: Visitor) -> Conversation | None:
    """The visitor's conversation that has not ended, if any. Every widget session and
    every visitor socket's connect asks it, so its SQL is built once (``db.statement``):
    in a reconnect storm peewee building it cost more than the query."""
    sql = statement("conversations.active_for", lambda: Conversation.select().where(
        Conversation.visitor == 0, Conversation.status != "ended").order_by(
        Conversation.id.desc()).limit(1).sql()[0])
    rows = list(Conversation.raw(sql, visitor.id, "ended", 1))
    return rows[0] if rows else None


def start_or_resume(visitor: Visitor, visit: Visit | None,
                    channel: str = "web", welcome: bool = True) -> tuple[Conversation, bool]:
    """The visitor's open conversation, or a new one (one per visitor: two tabs share it).

    A new conversation starts with the bot when the team's ``bot_enabled`` is on,
    otherwise it goes to routing at once. ``channel``: the channel a new one is
    on (``meiqia.channels.inbound`` passes its slug; a visitor of a channel is
    that channel's own, so his open conversation is always on it). ``welcome``
    False: no welcome line (a channel whose class says ``welcome_line = False``).
    """
    with database.atomic():
        if is_postgres():
            # Tabs opening at once: the others wait here for the first one's
            # conversation instead of each starting their own (on SQLite every
            # transaction begins IMMEDIATE, which serialises them already).
            Visitor.select(Visitor.id).where(Visitor.id == visitor.id).for_update().execute()
        current = active_for(visitor)
        if current is not None:
            return current, False
        settings = settings_of(visitor.team)
        conversation = Conversation.create(
            team=visitor.team_id, visitor=visitor.id, visit=visit.id if visit else None,
            status="bot", channel=channel,
        )
    with_bot = bool(settings["bot_enabled"])
    if settings["welcome_message"] and welcome:
        messages.post_message(conversation, "bot" if with_bot else "system",
                              settings["welcome_message"])
    events.emit("conversation.started", visitor.team_id,
                [messages.team_topic(visitor.team_id)],
                {"conversation_id": conversation.id, "visitor_id": visitor.id,
                 "handler_id": None, "group_id": None,
                 "conversation_status": conversation.status})
    if not with_bot:
        # Nobody can take it (nobody online, or all busy with the queue off): the
        # leave-a-message offer comes at once, not after a "human" button that
        # could only bring the same answer.
        _ask_for_human(conversation)
        conversation = get_by_id(Conversation, conversation.id)
    return conversation, True


#: Messages of his previous conversation a returning visitor sees at most.
EARLIER_LIMIT = 100


def earlier(visitor: Visitor, current: Conversation) -> dict[str, Any] | None:
    """His conversation before ``current`` (ended), to show above it: a returning
    visitor sees what was said last time. None when there is none."""
    sql = statement("conversations.earlier", lambda: Conversation.select().where(
        Conversation.visitor == 0, Conversation.id < 0,
        Conversation.status == "ended").order_by(Conversation.id.desc()).limit(1).sql()[0])
    found = list(Conversation.raw(sql, visitor.id, current.id, "ended", 1))
    previous = found[0] if found else None
    if previous is None:
        return None
    last = list(Message.select().where(Message.conversation == previous.id,
                                       Message.visibility == "public")
                .order_by(Message.id.desc()).limit(EARLIER_LIMIT))
    return {"conversation_id": previous.id, "ended_at": iso(previous.ended_at),
            "messages": [messages.visitor_view(m) for m in reversed(last)]}


def visitor_message(visitor: Visitor, conversation: Conversation, body: str,
                    client_msg_id: str | None, kind: str = "text",
                    payload: dict | None = None,
                    after: list[Callable[[], None]] | None = None) -> tuple[Any, bool]:
    """A visitor's message: stored, then the bot answers, routing starts, or the
    agent gets suggestions.

    ``after``: where a caller that has more to do first takes that answering
    step, to run it once it is done: a socket acknowledges the message first
    (ranking the question costs more than storing it, the sentence model on an
    English knowledge base, and the visitor's ack need not wait for the bot or
    for suggestions meant for the agent); a channel stores the rest of what the
    customer sent (an e-mail's attachments) first, so the answer comes after the
    whole of it. Without it the step runs before this returns.
    """
    if conversation.visitor_id != visitor.id:
        raise NotFound("no such conversation")
    if conversation.status == "ended":
        return _resent_into_ended(conversation, client_msg_id)
    # ``refresh``: the status as it is now (routing may have run since the caller read it).
    try:
        message, created = messages.post_message(
            conversation, "visitor", body, kind=kind, client_msg_id=client_msg_id,
            payload=payload, refresh=True, refuse_ended=True)
    except messages.StatusChanged:  # it ended after the check above
        return _resent_into_ended(conversation, client_msg_id)
    # A resend (not created) is answered only if its answer was lost (_lost_answer).
    step = _answering_step(conversation, message, kind) if created else \
        _lost_answer(conversation, message, kind)
    if step is not None:
        # A step that fails (the database locked or away, a bug) is retried in the
        # background, not lost: the sender holds his ack (services/answering.py).
        from meiqia.services import answering

        step = functools.partial(answering.run_step, step, conversation.id, message.id)
        if after is None:
            step()
        else:
            after.append(step)
    return message, created


def _resent_into_ended(conversation: Conversation, client_msg_id: str | None) -> tuple[Any, bool]:
    """A message into an ended conversation: a resend of one stored before it
    ended (its ``ack`` was lost, then the agent ended the chat) is acknowledged
    as the duplicate it is; anything new is refused (409: start a new one)."""
    kept = None if not client_msg_id else Message.get_or_none(
        Message.conversation == conversation.id, Message.client_msg_id == client_msg_id,
        Message.sender_kind == "visitor")
    if kept is None:
        raise Conflict("the conversation has ended: start a new one")
    return kept, False


def _lost_answer(conversation: Conversation, message: Any,
                 kind: str) -> Callable[[], None] | None:
    """The answering step of a resent visitor message whose answer never came:
    the process that stored it died before its step ran, or the step was lost
    with the socket. Only while the conversation is with the bot and the message
    is still its last public one (anything after it is an answer). The bot's
    answer is stored under a key made from the message (``_answer_key``), so a
    resend that arrives while the first step still runs adds no second answer."""
    if message.sender_kind != "visitor":
        return None
    current = Conversation.get_by_id(conversation.id)
    if current.status != "bot":
        return None
    last = (Message.select(Message.id)
            .where(Message.conversation == conversation.id, Message.visibility == "public")
            .order_by(Message.id.desc()).first())
    if last is None or last.id != message.id:
        return None
    return _answering_step(current, message, kind)


def _answer_key(message: Any) -> str:
    """The bot's answer to a visitor message is stored once (``_lost_answer``)."""
    return f"answer-{message.id}"


def _answering_step(conversation: Conversation, message: Any,
                    kind: str) -> Callable[[], None] | None:
    """What answers a stored visitor message, by the conversation's status when it
    was stored: the bot, routing, or the agent's suggestions (None: nothing)."""
    if follow_up(message.payload):
        # It completes a message answered already (an image a channel fetched
        # later, or its line that it could not): answering it too sent a second
        # "cannot read" for one thing he sent (WeChat caps replies per message).
        return None
    if placeholder(message.payload):
        # A line a channel wrote for what it cannot pass on (a voice message
        # without text): for agents to see, not a question for the bot.
        return functools.partial(_cannot_read, conversation, message) \
            if conversation.status == "bot" else None
    if kind != "text":
        return None
    if conversation.status == "bot":
        if wants_human(message.body) or \
                not settings_of(get_by_id(Team, conversation.team_id))["bot_enabled"]:
            return functools.partial(_ask_for_human, conversation)
        return functools.partial(_bot_step, conversation, message)
    if conversation.status == "open":
        return functools.partial(_suggest_to_agent, conversation, message)
    if conversation.status == "queued" and wants_human(message.body):
        # He asks again while he waits: told where he stands.
        return functools.partial(_ask_for_human, conversation)
    return None


#: Whole messages that ask for a person (compared after normalisation).
HUMAN_REQUESTS = (
    "转人工", "人工", "人工客服", "转人工客服", "我要人工", "我要人工客服", "找人工", "真人客服",
    "人工服务", "转接人工", "human", "agent", "human agent", "live agent", "real person",
    "talk to a human", "speak to a human", "talk to an agent", "customer service",
)
_PUNCTUATION = re.compile(r"[\s\W_]+")


def _normalise_request(text: str) -> str:
    """Full width to half width (NFKC), case folded, punctuation squeezed to one space."""
    folded = unicodedata.normalize("NFKC", text or "").casefold()
    return _PUNCTUATION.sub(" ", folded).strip()


_HUMAN_KEYS = frozenset(_normalise_request(w) for w in HUMAN_REQUESTS)


def wants_human(text: str) -> bool:
    """True when the whole message asks for a person: 转人工, 人工！, ＨＵＭＡＮ, "Agent?"…

    Questions that merely mention the words ("人工费多少钱") are not requests.
    """
    key = _normalise_request(text)
    return bool(key) and key in _HUMAN_KEYS


def bot_reply(conversation: Conversation, message: Any) -> dict[str, Any]:
    """The bot's answer to a visitor message: the one place that calls the bot.

    ``meiqia.services.bot.answer_visitor`` when it is installed; without it (or
    when it fails) the question counts as unrecognised and a human is offered.
    """
    try:
        from meiqia.services import bot
    except ImportError:
        bot = None
    if bot is not None:
        try:
            return bot.answer_visitor(conversation=conversation, message=message)
        except Exception as exc:  # noqa: BLE001 - a broken bot must not lose the visitor
            if is_database_error(exc):
                # The database failed, not the bot: the whole step is tried again
                # (services/answering.py), rather than "unrecognised" and a person
                # offered for a question the bot may well know.
                raise
            current_app.logger.exception("the bot failed on conversation %s", conversation.id)
    lang = routing.visitor_language(conversation)
    body = {"zh-CN": "抱歉，我暂时无法回答，正在为您转接人工客服。",
            "en": "Sorry, I can't answer that: let me get you a human agent."}[lang]
    return {"kind": "unrecognised", "body": body, "candidates": [], "offer_human": True,
            "entry_id": None}


def placeholder(payload: dict | None) -> bool:
    """Whether a visitor message is a channel's placeholder line (``receive``'s
    ``placeholder=True``)."""
    channel = (payload or {}).get("channel")
    return isinstance(channel, dict) and channel.get("placeholder") is True


def follow_up(payload: dict | None) -> bool:
    """Whether a visitor message completes one a channel received before
    (``receive``'s ``follow_up=True``): stored for agents, answered by nobody."""
    channel = (payload or {}).get("channel")
    return isinstance(channel, dict) and channel.get("follow_up") is True


#: The bot's line for a message it cannot read (a channel's placeholder).
CANNOT_READ = {
    "zh-CN": "抱歉，这条消息我看不了，请用文字描述您的问题；需要人工服务请回复“人工”。",
    "en": "Sorry, I cannot read this message: please write your question in words, "
          "or reply \"human\" for a person.",
}


def _cannot_read(conversation: Conversation, message: Any) -> None:
    """Tell the customer the bot cannot read what he sent (not counted as a
    question the bot failed: he did not ask one)."""
    body = CANNOT_READ[routing.visitor_language(conversation)]
    with contextlib.suppress(messages.StatusChanged):  # a person took the chat meanwhile
        messages.post_message(conversation, "bot", body, payload={"bot": "cannot_read"},
                              while_status="bot", client_msg_id=_answer_key(message))


def channel_wording(conversation: Conversation, body: str, payload: dict[str, Any]) -> str:
    """The bot's line as the customer of this conversation's channel gets it: the
    one place that words it per channel, before it is stored, so what agents,
    history and exports show is what was sent. The widget's words as they are; a
    channel has none of its buttons (no 转人工, no "did you mean" buttons), so
    there the line says to reply 人工 and lists the questions as numbered lines
    (``services.bot.reply_text``; ``payload["written_out"]`` then says the body
    holds them, so transcripts do not list them twice)."""
    if (getattr(conversation, "channel", "web") or "web") == "web":
        return body
    try:
        from meiqia.services.bot import reply_text
    except ImportError:  # no bot installed: its lines (bot_reply's) need no rewording
        return body
    worded = reply_text(body, payload, routing.visitor_language(conversation))
    if payload.get("candidates") and worded != body:
        payload["written_out"] = True
    return worded


def _bot_step(conversation: Conversation, message: Any) -> None:
    reply = bot_reply(conversation, message)
    if reply["kind"] == "human":
        _ask_for_human(conversation)
        return
    payload = {"bot": reply["kind"], "candidates": [
        {"entry_id": c["entry_id"], "question": c["question"]} for c in reply["candidates"]
    ] if reply["kind"] == "suggest" else [], "offer_human": reply["offer_human"],
        "entry_id": reply.get("entry_id")}
    body = channel_wording(conversation, reply["body"], payload)
    try:
        # Under the conversation's lock: a person may have taken the chat while the
        # bot was thinking (the visitor pressed "human" and typed at once), and
        # then the person speaks from now on, not the bot.
        _, created = messages.post_message(conversation, "bot", body,
                                           payload=payload, while_status="bot",
                                           client_msg_id=_answer_key(message))
    except messages.StatusChanged:
        return
    if not created:
        return  # a resend's step ran beside the first one: that one answered
    if reply["kind"] == "unrecognised" and reply["offer_human"]:
        # DESIGN §4: the bot failing N times in a row goes to routing.
        _ask_for_human(conversation)


def _ask_for_human(conversation: Conversation) -> str:
    """Route to a person; when nobody can take it, post the leave-a-message offer."""
    return routing.request_human(conversation)


def ask_for_human(visitor: Visitor, conversation: Conversation) -> dict[str, Any]:
    """The visitor pressed "human" (or typed 转人工)."""
    if conversation.visitor_id != visitor.id:
        raise NotFound("no such conversation")
    if conversation.status == "ended":
        raise Conflict("the conversation has ended")
    outcome = _ask_for_human(conversation)
    return {"outcome": outcome, **state(Conversation.get_by_id(conversation.id))}


def _suggest_to_agent(conversation: Conversation, message: Any) -> None:
    from meiqia.services import bot

    found = bot.suggestions_for_agent(conversation, message.body)
    if not found:
        return
    bot.record_suggestions(conversation, message.id, found)
    events.emit("suggestions", conversation.team_id, [messages.team_topic(conversation.team_id)],
                {"conversation_id": conversation.id, "message_id": message.id,
                 "handler_id": conversation.handler_id,
                 "suggestions": [{k: c[k] for k in ("entry_id", "question", "answer", "score")}
                                 for c in found]}, track=False)


def agent_send(actor: Agent, conversation_id: int, data: dict[str, Any]) -> tuple[Any, bool]:
    """An agent replies (as himself), anonymously (shown as the handler) or internally."""
    check(data, SEND_SCHEMA)
    conversation = permissions.get_conversation(actor, conversation_id)
    mode = data.get("mode", "reply")
    if conversation.status == "ended" and mode != "internal":
        raise Conflict("the conversation has ended: only internal notes can be added")
    kind = data.get("kind", "text")
    payload: dict[str, Any] = {}
    if kind in {"image", "file"}:
        payload["attachment"] = attachment_key(conversation, data.get("attachment"), kind)
    shown = actor
    if mode == "anonymous":
        if conversation.handler_id is None:
            raise ValidationError("mode: anonymous replies need a handler", "mode")
        shown = Agent.get_by_id(conversation.handler_id)
    try:
        message, created = messages.post_message(
            conversation, "agent", data["body"], kind=kind,
            visibility="internal" if mode == "internal" else "public",
            agent=actor, shown_agent=shown, client_msg_id=data.get("client_msg_id"),
            payload=payload, refuse_ended=mode != "internal")
    except messages.StatusChanged:  # it ended after the check above
        raise Conflict("the conversation has ended: only internal notes can be added") from None
    suggestion = data.get("suggestion")
    if created and suggestion and suggestion.get("entry_id") and suggestion.get("message_id"):
        from meiqia.services import bot

        bot.record_outcome(conversation, suggestion["message_id"], suggestion["entry_id"],
                           actor.id, "edited" if suggestion.get("edited") else "accepted")
    return message, created


def attachment_key(conversation: Conversation, key: str | None, kind: str) -> str:
    """The upload key an image or file message of either side may carry.

    It must name an upload of this very conversation, and an image message must
    point at an upload stored as an image (content-checked), or the chat would
    show a file of any type inline.
    """
    from meiqia.services import uploads

    return uploads.for_message(conversation, key, kind).key


def end_conversation(actor: Agent, conversation_id: int) -> Conversation:
    """An agent ends a conversation; figures are stored and a place frees."""
    conversation = permissions.get_conversation(actor, conversation_id)
    if conversation.status == "ended":
        raise Conflict("the conversation has already ended")
    return _end(conversation, "agent", actor)


def system_end(conversation_id: int, reason: str, only_if: Any = None,
               note: dict[str, Any] | None = None) -> Conversation:
    """End a conversation without an agent (inactivity, left for a ticket…).

    Ending twice is harmless: an ended conversation is returned as it is.
    ``only_if`` (a condition on Conversation) is re-checked by the ending UPDATE
    itself, so a rule that decided from an earlier look-up (the inactivity
    sweep) ends nothing that changed since: Conflict instead, also when it has
    ended already (so a sweep counts only its own ends). ``note`` goes into the
    ``ended`` event's payload.
    """
    conversation = Conversation.get_or_none(Conversation.id == conversation_id)
    if conversation is None:
        raise NotFound("no such conversation")
    if conversation.status == "ended":
        if only_if is not None:
            raise Conflict("the conversation has already ended")
        return conversation
    return _end(conversation, reason, None, only_if, note)


#: What the visitor reads when the inactivity rule ended his chat.
INACTIVITY_TEXT = {
    "zh-CN": "由于长时间没有新消息，本次对话已自动结束。如需帮助，请重新发起咨询。",
    "en": "This chat ended automatically after a long time without messages. "
          "Start a new one if you need help.",
}


def _end(conversation: Conversation, reason: str, actor: Agent | None,
         only_if: Any = None, note: dict[str, Any] | None = None) -> Conversation:
    from meiqia.services import figures

    now = utcnow()
    condition = (Conversation.id == conversation.id) & (Conversation.status != "ended")
    if only_if is not None:
        condition &= only_if
    with database.atomic():
        updated = Conversation.update(status="ended", ended_at=now, ended_by=actor,
                                      end_reason=reason[:16]).where(condition).execute()
    if not updated:
        raise Conflict("the conversation has already ended" if only_if is None else
                       "the conversation changed: not ended")
    body = ""
    if reason == "inactivity":
        body = INACTIVITY_TEXT[routing.visitor_language(conversation)]
    messages.post_message(conversation, "system", body, kind="event",
                          payload={"event": "ended", "by": actor.display_name if actor else "",
                                   "reason": reason, **(note or {})})
    figures.compute_and_store(conversation)
    was_queued = conversation.status == "queued"
    conversation = Conversation.get_by_id(conversation.id)
    routing.publish_state(conversation)
    if was_queued:  # those behind it in its queue move up
        routing.publish_queue(conversation.team_id, {conversation.group_id})
    events.emit("conversation.ended", conversation.team_id, [], {
        "conversation_id": conversation.id, "reason": reason,
        "ended_by": actor.id if actor else None})
    events.capacity_changed(conversation.team_id)
    return conversation


_NOT_QUEUED = object()


def transfer(actor: Agent, conversation_id: int, data: dict[str, Any]) -> Conversation:
    """Hand a conversation to a colleague who is there (online or invisible, with a
    workspace open: 409 otherwise) within his limit, unless he himself accepts more,
    or to a group (queued for that group's agents; when none of them is online the
    next presence sweep offers the visitor to leave a message).

    Only a transfer to a group changes the conversation's group. A transfer to an
    agent (taking it oneself included), inside the group or outside it, keeps it:
    the chat stays its group's, so when it goes back to a queue (its handler goes
    away) it waits in its group's queue, seen by its group only, not in the team's
    general one, every scoped agent's pool (docs/security.md §1). An agent who sees
    the chat only because he was @mentioned in it may not transfer it (403)."""
    check(data, TRANSFER_SCHEMA)
    if ("agent_id" in data) == ("group_id" in data):
        raise ValidationError("give either agent_id or group_id", "agent_id")
    conversation = permissions.get_conversation(actor, conversation_id)
    if permissions.mentioned_in(actor, conversation) and \
            not permissions.within_own_scope(actor, conversation):
        raise Forbidden("you were @mentioned in this conversation: you may read it and "
                        "write in it, not take it over or transfer it")
    if conversation.status == "ended":
        raise Conflict("the conversation has ended")
    old_handler = conversation.handler_id
    # A queued conversation taken or moved by hand leaves its queue: those behind
    # it move up (``assign_waiting`` only tells about the ones it assigns).
    left_queue = conversation.group_id if conversation.status == "queued" else _NOT_QUEUED
    if "agent_id" in data:
        target = Agent.get_or_none(Agent.id == data["agent_id"], Agent.team == actor.team_id,
                                   Agent.active == True)  # noqa: E712
        if target is None:
            raise ValidationError("agent_id: no such agent in this team", "agent_id")
        if target.id == old_handler:
            raise Conflict(f"{target.display_name} handles it already")
        if target.id != actor.id and not _can_take_transfers(target):
            # A live chat handed to nobody: the visitor told "Bob 为您服务" waits for
            # an agent who is not there (the transfer list shows him greyed out).
            raise Conflict(f"{target.display_name} is not online: a chat can only be "
                           "transferred to an agent with the workspace open", "agent_id")
        # Only the receiver himself may take more than his limit; a limit of 0
        # means "no automatic assignment", and transfers to him stay allowed.
        over_ok = (data.get("accept_over_limit") and target.id == actor.id) \
            or target.max_concurrent == 0
        with routing.team_transaction(actor.team_id):
            load = capacity.open_counts(actor.team_id).get(target.id, 0)
            if load >= target.max_concurrent and not over_ok:
                raise Conflict(f"{target.display_name} is at the limit "
                               f"({load}/{target.max_concurrent})", "agent_id")
            # Compare and swap on the handler read above: of two agents taking one
            # queued conversation at once, the second finds it taken (409), instead
            # of silently replacing the first as its handler.
            moved = Conversation.update(
                handler=target.id, status="open", assigned_at=utcnow(),
            ).where(Conversation.id == conversation.id, Conversation.status != "ended",
                    _handler_is(old_handler)).execute()
        if not moved:
            raise _moved_meanwhile(conversation.id)
        note = {"event": "transferred", "to": target.display_name}
        events.emit("assigned", actor.team_id, [messages.agent_topic(target.id)],
                    {"conversation_id": conversation.id, "by": actor.display_name})
    else:
        group = Group.get_or_none(Group.id == data["group_id"], Group.team == actor.team_id)
        if group is None:
            raise ValidationError("group_id: no such group in this team", "group_id")
        with routing.team_transaction(actor.team_id):
            moved = Conversation.update(
                handler=None, status="queued", queued_at=utcnow(), group=group.id,
            ).where(Conversation.id == conversation.id, Conversation.status != "ended",
                    _handler_is(old_handler)).execute()
        if not moved:
            raise _moved_meanwhile(conversation.id)
        note = {"event": "transferred", "to": group.name}
    messages.post_message(conversation, "system", "", kind="event", visibility="internal",
                          payload={**note, "by": actor.display_name})
    conversation = Conversation.get_by_id(conversation.id)
    if "agent_id" in data:
        routing.announce_handover(conversation)
    routing.publish_state(conversation, previous_handler_id=old_handler)
    if left_queue is not _NOT_QUEUED:
        routing.publish_queue(actor.team_id, {left_queue})
    events.capacity_changed(actor.team_id)
    return Conversation.get_by_id(conversation.id)


def _can_take_transfers(agent: Agent) -> bool:
    """Whether a colleague can be handed a live chat: he is at work (status online,
    or invisible: hidden from routing, not from his colleagues) with a workspace
    open (``presence.is_connected``); not offline, and not away (online with no
    workspace). Taking a chat oneself needs neither: the actor is there."""
    from meiqia.services import presence

    return agent.status in {"online", "invisible"} and presence.is_connected(agent.id)


def _handler_is(agent_id: int | None) -> Any:
    return Conversation.handler.is_null() if agent_id is None \
        else Conversation.handler == agent_id


def _moved_meanwhile(conversation_id: int) -> Conflict:
    """Why a transfer's conditional update changed nothing: ended, or taken by
    someone else since the request read it."""
    now = Conversation.get_by_id(conversation_id)
    if now.status == "ended":
        return Conflict("the conversation has ended")
    who = now.handler.display_name if now.handler_id else "someone else"
    return Conflict(f"{who} took this conversation a moment ago", "agent_id")


def invite_rating(actor: Agent, conversation_id: int) -> Any:
    from meiqia.channels import registry

    conversation = permissions.get_conversation(actor, conversation_id)
    if "rating" not in registry.capabilities(conversation.channel):
        raise Conflict("this conversation's channel cannot carry rating invitations")
    message, _ = messages.post_message(conversation, "agent", "", kind="rating_invite",
                                       agent=actor)
    return message


def rate(visitor: Visitor, conversation_id: int, data: dict[str, Any]) -> Conversation:
    """The visitor rates, once: after the end, or when an agent invited him."""
    check(data, RATING_SCHEMA)
    conversation = Conversation.get_or_none(Conversation.id == conversation_id,
                                            Conversation.visitor == visitor.id)
    if conversation is None:
        raise NotFound("no such conversation")
    invited = Message.select().where(Message.conversation == conversation.id,
                                     Message.kind == "rating_invite").exists()
    if conversation.status != "ended" and not invited:
        raise Forbidden("rating opens when an agent invites you or the chat ends")
    # One rating per conversation: it is the visitor's verdict on the chat, and a
    # second one would silently rewrite figures already seen (history, dashboard).
    # The condition is in the UPDATE, so two tabs rating at once store one.
    rated = Conversation.update(rating=data["rating"],
                                rating_comment=data.get("comment", "").strip()).where(
        Conversation.id == conversation.id, Conversation.rating.is_null()).execute()
    if not rated:
        raise Conflict("you have rated this conversation already", "rating")
    events.emit("rated", conversation.team_id, [messages.team_topic(conversation.team_id)],
                {"conversation_id": conversation.id, "rating": data["rating"],
                 "handler_id": conversation.handler_id, "group_id": conversation.group_id})
    return Conversation.get_by_id(conversation.id)


def set_summary(actor: Agent, conversation_id: int, data: dict[str, Any]) -> Conversation:
    check(data, SUMMARY_SCHEMA)
    conversation = permissions.get_conversation(actor, conversation_id)
    changes = {}
    if "summary" in data:
        changes["summary"] = data["summary"].strip()
    if "tags" in data:
        changes["tags"] = sorted({t.strip() for t in data["tags"] if t.strip()})
    if changes:
        Conversation.update(**changes).where(Conversation.id == conversation.id).execute()
    return Conversation.get_by_id(conversation.id)


def state(conversation: Conversation) -> dict[str, Any]:
    """What the widget needs to draw the conversation."""
    handler = find_by_id(Agent, conversation.handler_id)
    return {
        "conversation_id": conversation.id,
        "status": conversation.status,
        "queue_position": routing.queue_position(conversation),
        "handler": {"name": handler.display_name} if handler else None,
        "rating": conversation.rating,
        "availability": capacity.availability(conversation.team_id),
    }


#: A system event's line in the agents' pages: the key under ``ws.ev.`` and the payload
#: fields it names (static/js/message-body.js's ``eventText`` draws the same).
_EVENT_LINES: dict[str, tuple[str, dict[str, str]]] = {
    "transferred": ("transferred", {"by": "by", "to": "to"}),
    "leave_message": ("leave_message", {}),
    "handover": ("handover", {"name": "agent"}),
    "requeued": ("requeued", {"from": "from"}),
    "waiting_for_agent": ("waiting_for_agent", {}),
}


def preview_text(message: Message, lang: str) -> str:
    """A message as one line of the workspace's conversation list, in the reader's
    language ``lang``. An event's body is the line the visitor was sent, in his
    language ("Bob 为您服务"); an agent reads the event in his own, as the chat shows
    it (message-body.js): "Bob took over" / "Bob 开始接待"."""
    from meiqia.web import i18n

    p = message.payload or {}
    if message.kind == "rating_invite":
        return i18n.text_in(lang, "ws.rating_invited")
    if message.kind != "event":
        return message.body
    event = str(p.get("event") or "")
    if event == "ended":
        if p.get("reason") == "inactivity":
            n = p.get("minutes") or ""
            key = "ws.ev.ended_inactivity.one" if str(n) == "1" else "ws.ev.ended_inactivity"
            return i18n.text_in(lang, key, n=n)
        return i18n.text_in(lang, "ws.ev.ended", by=p.get("by") or "")
    if event in _EVENT_LINES:
        key, fields = _EVENT_LINES[event]
        return i18n.text_in(lang, f"ws.ev.{key}",
                            **{name: p.get(field) or "" for name, field in fields.items()})
    return message.body or event


def reader_language(actor: Agent | None) -> str:
    """The language the agent reads the answer in: inside a request the one its
    messages are in (``i18n.error_language``: the page's, else his setting...), else
    his setting."""
    from flask import has_request_context

    from meiqia.web import i18n

    if has_request_context():
        return i18n.error_language()
    return i18n.agent_language(actor) if actor is not None else "zh-CN"


def summary_row(conversation: Conversation, actor: Agent | None = None,
                lang: str | None = None) -> dict[str, Any]:
    """A conversation as a row of the workspace's lists. ``last_message`` is its last
    message's first 80 characters in the reader's language ``lang`` (``preview_text``:
    a system event in his words, not the visitor's)."""
    visitor = conversation.visitor
    unread = 0
    if actor is not None and conversation.handler_id == actor.id:
        unread = Message.select().where(
            Message.conversation == conversation.id, Message.sender_kind == "visitor",
            Message.id > conversation.agent_read_id).count()
    last = Message.get_or_none(Message.id == conversation.last_message_id) \
        if conversation.last_message_id else None
    return {
        "id": conversation.id,
        "status": conversation.status,
        "visitor": {"id": visitor.id, "name": visitor.name,
                    "online": bool(visitor.online_until and visitor.online_until > utcnow())},
        "handler_id": conversation.handler_id,
        "group_id": conversation.group_id,
        "created_at": iso(conversation.created_at),
        "last_message_at": iso(conversation.last_message_at),
        "last_seq": conversation.last_seq,
        "last_message": (preview_text(last, lang or reader_language(actor))[:80]
                         if last.visibility == "public" or actor is not None else "")
                        if last else "",
        "unread": unread,
        "queue_position": routing.queue_position(conversation),
        "rating": conversation.rating,
        "tags": conversation.tags or [],
        **channel_info(conversation.channel),
    }


def channel_info(slug: str) -> dict[str, Any]:
    """The conversation's channel for agents: its slug, its name in both
    languages and what it can carry (``capabilities``: the workspace hides the
    typing preview, read ticks and rating invitations a channel lacks)."""
    from meiqia.channels import registry

    return {"channel": slug, "channel_name": registry.names(slug),
            "capabilities": sorted(registry.capabilities(slug))}


def lists(actor: Agent) -> dict[str, Any]:
    """The workspace's left column: mine, colleagues' (in scope), @me, the queue."""
    base = Conversation.select().where(permissions.conversation_filter(actor),
                                       Conversation.status != "ended")
    mine = base.where(Conversation.handler == actor.id)
    colleagues = base.where(Conversation.handler.is_null(False),
                            Conversation.handler != actor.id)
    mentioned_ids = Mention.select(Mention.conversation).where(
        Mention.agent == actor.id, Mention.seen_at.is_null())
    at_me = Conversation.select().where(Conversation.id.in_(mentioned_ids))
    queued = base.where(Conversation.status == "queued")
    order = (Conversation.last_message_at.desc(nulls="LAST"), Conversation.id.desc())
    lang = reader_language(actor)  # the previews' language, decided once
    return {
        "mine": [summary_row(c, actor, lang) for c in mine.order_by(*order).limit(200)],
        "colleagues": [summary_row(c, actor, lang) for c in colleagues.order_by(*order).limit(200)],
        "at_me": [summary_row(c, actor, lang) for c in at_me.order_by(*order).limit(200)],
        "queue_count": queued.count(),
        "queue": [summary_row(c, actor, lang) for c in
                  queued.order_by(Conversation.queued_at, Conversation.id).limit(100)],
    }


def mentions_seen(actor: Agent, conversation_id: int) -> int:
    return Mention.update(seen_at=utcnow()).where(
        Mention.agent == actor.id, Mention.conversation == conversation_id,
        Mention.seen_at.is_null()).execute()

