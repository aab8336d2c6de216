"""Messages: store, then publish, then acknowledge (DESIGN §5).

``post_message`` is the one entry point for every sender (visitor, agent, bot,
system). A client message id makes a resend idempotent: the second call returns
the stored message and publishes nothing. Public messages go to the
conversation topic (what visitor sockets hear) and the team topic (agents);
internal notes go to the team topic only, so they cannot reach a visitor
socket by construction.
"""

from __future__ import annotations

import re
from types import SimpleNamespace
from typing import Any

import peewee
from flask import current_app

from meiqia import metrics
from meiqia.db import database
from meiqia.db import find_by_id
from meiqia.db import insert_row
from meiqia.db import is_postgres
from meiqia.models import Agent
from meiqia.models import Conversation
from meiqia.models import Mention
from meiqia.models import Message
from meiqia.models.base import utcnow
from meiqia.models.messages import KINDS
from meiqia.plugin_runtime import privacy
from meiqia.services import delivery
from meiqia.services import events
from meiqia.services import names
from meiqia.services import visitor_privacy
from meiqia.services.accounts import iso
from meiqia.services.errors import NotFound
from meiqia.services.errors import ValidationError

MAX_BODY = 5000
CLIENT_ID_RE = re.compile(r"^[\w.:\-]{1,64}$")


def conversation_topic(conversation_id: int) -> str:
    return f"conversation:{conversation_id}"


def team_topic(team_id: int) -> str:
    return f"team:{team_id}"


def agent_topic(agent_id: int) -> str:
    return f"agent:{agent_id}"


def transcript_body(body: str, payload: dict[str, Any] | None) -> str:
    """A message's words as a transcript in text shows them (a ticket's, an
    export's): a bot's "did you mean" keeps the questions it offered in its
    payload, not in its body, so they follow it, one per line (unless a channel's
    line has them written out already: ``written_out``)."""
    if (payload or {}).get("written_out"):
        return body
    offered = [c.get("question") for c in (payload or {}).get("candidates") or []
               if isinstance(c, dict) and c.get("question")]
    return "\n".join([body, *(f"· {q}" for q in offered)]) if offered else body


def _sender_name(message: Message) -> str:
    if message.sender_kind == "agent" and message.shown_agent_id:
        agent = find_by_id(Agent, message.shown_agent_id)
        return agent.display_name if agent else ""
    return {"bot": "bot", "system": "system", "visitor": ""}.get(message.sender_kind, "")


def _reads(channel: Any) -> bool:
    """A channel class reports reads when it declares ``read_receipts`` (or, a
    class of before the channel API, does not say ``reports_reads = False``)."""
    from meiqia.channels.registry import capabilities_of

    return "read_receipts" in capabilities_of(channel)


def reports_reads(conversation: Conversation) -> bool:
    """Whether the conversation's channel can tell when a message was read."""
    channels = current_app.extensions.get("meiqia.channels", {})
    channel = channels.get(conversation.channel)
    return _reads(channel) if channel is not None else True


def readless_ids(conversation_ids: set[int]) -> set[int]:
    """Which of these conversations are on a channel that cannot report reads.

    No query at all when every installed channel reports reads (the web widget
    does), else one for the lot: for replays, never per message.
    """
    channels = current_app.extensions.get("meiqia.channels", {})
    readless = [slug for slug, c in channels.items() if not _reads(c)]
    if not readless or not conversation_ids:
        return set()
    return {cid for (cid,) in Conversation.select(Conversation.id).where(
        Conversation.id.in_(list(conversation_ids)),
        Conversation.channel.in_(readless)).tuples()}


def agent_views(found: list[Message]) -> list[dict[str, Any]]:
    """Agent views of replayed messages, each with its channel's status."""
    readless = readless_ids({m.conversation_id for m in found})
    return [agent_view(m, m.conversation_id not in readless) for m in found]


def status_of(message: Message, can_read: bool = True) -> str:
    """``sent``, ``delivered``, ``read``; or ``delivered_read_unknown`` for a channel
    that cannot report reads (``can_read`` False)."""
    if message.read_at:
        return "read"
    if message.delivered_at:
        return "delivered" if can_read else "delivered_read_unknown"
    return "sent"


def visitor_view(message: Message, can_read: bool = True) -> dict[str, Any]:
    """A message as the visitor may see it (never called for internal notes)."""
    assert message.visibility == "public", "internal notes never reach visitors"
    payload = visitor_privacy.payload(message.payload)
    return {
        "id": message.id,
        "seq": message.seq,
        "conversation_id": message.conversation_id,
        "sender_kind": message.sender_kind,
        "sender_name": _sender_name(message),
        "kind": message.kind,
        "body": message.body,
        "payload": payload,
        "client_msg_id": message.client_msg_id if message.sender_kind == "visitor" else None,
        "created_at": iso(message.created_at),
        "status": status_of(message, can_read),
    }


def agent_view(message: Message, can_read: bool = True) -> dict[str, Any]:
    """A message as agents see it: who really sent it, and internal notes."""
    data = visitor_view(message, can_read) if message.visibility == "public" else {
        "id": message.id, "seq": message.seq, "conversation_id": message.conversation_id,
        "sender_kind": message.sender_kind, "sender_name": _sender_name(message),
        "kind": message.kind, "body": message.body, "payload": dict(message.payload or {}),
        "created_at": iso(message.created_at), "status": status_of(message, can_read),
    }
    data["payload"] = dict(message.payload or {})
    data["client_msg_id"] = message.client_msg_id
    data["visibility"] = message.visibility
    data["agent_id"] = message.agent_id
    data["shown_agent_id"] = message.shown_agent_id
    data["anonymous"] = bool(message.agent_id and message.shown_agent_id
                             and message.agent_id != message.shown_agent_id)
    return data


def check_client_id(client_msg_id: Any, required: bool = False) -> str | None:
    """A valid client message id, or None. ``required`` for messages from clients
    (sockets and the REST message routes): without one a retry would store the
    message twice, so it is refused (docs/protocol.md, guarantee 2)."""
    if client_msg_id is None:
        if required:
            raise ValidationError("client_msg_id: is required", "client_msg_id")
        return None
    if not isinstance(client_msg_id, str) or not CLIENT_ID_RE.fullmatch(client_msg_id):
        raise ValidationError("client_msg_id: 1-64 letters, digits, '-', '_', '.' or ':'",
                              "client_msg_id")
    return client_msg_id


class StatusChanged(Exception):
    """``post_message(while_status=...)`` found the conversation in another status."""


def post_message(
    conversation: Conversation,
    sender_kind: str,
    body: str = "",
    *,
    kind: str = "text",
    visibility: str = "public",
    agent: Agent | None = None,
    shown_agent: Agent | None = None,
    client_msg_id: str | None = None,
    payload: dict[str, Any] | None = None,
    refresh: bool = False,
    while_status: str | None = None,
    refuse_ended: bool = False,
) -> tuple[Message, bool]:
    """Store a message and publish it; return (message, created).

    ``created`` is False when the client message id was seen before: the
    stored message is returned and nothing is published again. With
    ``refresh``, the conversation's status, handler and group are set to what
    they are in the database now (read back by the same UPDATE), which spares
    the caller a second look-up. With ``while_status``, the message is stored only
    if the conversation still has that status under its lock, else nothing is
    stored and ``StatusChanged`` is raised: the bot's reply to a question asked just
    before a person took the chat must not arrive after the person. With
    ``refuse_ended``, likewise when the conversation has ended: a check of the
    status before the call can be overtaken by an end (a slow redaction plugin
    runs in between), this one cannot.
    """
    client_msg_id = check_client_id(client_msg_id)
    if kind not in KINDS:
        raise ValidationError(f"kind: one of {', '.join(KINDS)}", "kind")
    if not isinstance(body, str):
        raise ValidationError("body: expected text", "body")
    body = body.strip() if kind == "text" else body
    if kind == "text" and not body:
        raise ValidationError("body: must not be empty", "body")
    if len(body) > MAX_BODY:
        raise ValidationError(f"body: at most {MAX_BODY} characters", "body")
    # A resend of a stored message is caught by the unique index on
    # (conversation, client_msg_id) below, not by a look-up first: one query less
    # on every message, and resends are rare.
    from meiqia.channels import outbound as channel_outbound

    draft = {"sender_kind": sender_kind, "kind": kind, "body": body,
             "payload": payload or {}, "visibility": visibility}
    # The redactors one after the other, each within its budget and given the
    # message as the ones before changed it; one that fails or answers something
    # unusable is never skipped silently: the message is masked or refused (fails
    # closed, plugin_runtime.privacy).
    draft = privacy.check_message(current_app.extensions["meiqia.plugins"], draft,
                                  conversation, current_app.config["PRIVACY_FALLBACK"])
    now = utcnow()
    values = {"conversation": conversation.id, "sender_kind": sender_kind, "kind": kind,
              "body": draft["body"], "payload": draft["payload"], "visibility": visibility,
              "agent": agent, "shown_agent": shown_agent or agent,
              "client_msg_id": client_msg_id, "created_at": now,
              "delivered_at": None, "read_at": None}
    try:
        if _one_statement(conversation, values):
            message, now_row = _store_in_one_statement(conversation, values, while_status,
                                                       refuse_ended)
            delivery_id, mentioned = None, []
        else:
            # Its lock waits bounded (DATABASE_BUSY_TIMEOUT) when the transaction is
            # the store's own; a caller's transaction keeps its own waits.
            bounded = not database.in_transaction()
            with database.atomic():
                # The conversation's lock and the message's position first, then the
                # INSERT: seq order is commit order (meiqia/services/delivery.py). The
                # handler and group as they are now (a transfer may have raced), for
                # the agents' sockets to filter the event by.
                position = delivery.next_position(conversation.id, message_at=now,
                                                  bounded=bounded)
                if position is None:
                    raise NotFound("no such conversation")
                seq, handler_id, group_id, status, message_id = position
                if (while_status is not None and status != while_status) or \
                        (refuse_ended and status == "ended"):
                    raise StatusChanged(status)  # rolls the position back
                now_row = [(handler_id, group_id, status)]
                fields = {} if message_id is None else {"id": message_id}
                message = insert_row(Message, {**fields, **values, "seq": seq})
                if message_id is None:  # not taken with the position (SQLite)
                    Conversation.update(last_message_id=message.id, last_message_at=now).where(
                        Conversation.id == conversation.id).execute()
                # A channel conversation's visitor-visible message and its delivery
                # commit together: none is lost between the two (meiqia/channels/outbound.py).
                delivery_id = channel_outbound.record(conversation, message)
                mentioned = _store_mentions(conversation, message, agent) \
                    if _may_mention(values) else []
    except peewee.IntegrityError:
        # Two resends raced: the other one stored it first.
        existing = Message.get_or_none(Message.conversation == conversation.id,
                                       Message.client_msg_id == client_msg_id)
        if existing is None:
            raise
        _resync_after_resend(conversation, existing)
        return existing, False
    metrics.MESSAGES.labels(sender_kind, visibility).inc()
    if now_row and refresh:
        conversation.handler_id, conversation.group_id, conversation.status = now_row[0]
    publish_message(conversation, message, now_row[0] if now_row else None)
    channel_outbound.queue(delivery_id)
    for agent_id in mentioned:
        events.emit("mention", conversation.team_id, [agent_topic(agent_id)],
                    {"conversation_id": conversation.id, "message_id": message.id,
                     "by": agent.display_name if agent else "",
                     "body": message.body[:200]}, track=False)
    return message, True


def _one_statement(conversation: Conversation, values: dict[str, Any]) -> bool:
    """Whether the message can be stored with its position in one statement
    (``delivery.store_at_next_position``): on PostgreSQL, outside a transaction
    (inside one a failed statement would abort the caller's), and when nothing
    else commits with it (a channel delivery, mentions)."""
    from meiqia.channels import outbound as channel_outbound

    if not is_postgres() or database.in_transaction():
        return False
    if _may_mention(values):
        return False
    # ``wants_delivery`` reads four plain fields: no model instance needed to ask.
    return not channel_outbound.wants_delivery(conversation, SimpleNamespace(**values))


def _may_mention(values: dict[str, Any]) -> bool:
    """Whether the message may @-mention agents: an agent's internal note with an
    at-sign, ASCII or not (``names.AT_SIGNS``: ``＠`` typed in full-width mode)."""
    return values["visibility"] == "internal" and values["agent"] is not None \
        and names.has_at_sign(values["body"])


def _store_in_one_statement(conversation: Conversation, values: dict[str, Any],
                            while_status: str | None, refuse_ended: bool = False
                            ) -> tuple[Message, list[tuple[Any, Any, str]]]:
    """The message stored at its position by one statement: (row, [(handler id,
    group id, status)] as they are now)."""
    stored = delivery.store_at_next_position(Message, conversation.id, values["created_at"],
                                             values, while_status, refuse_ended)
    if stored is None:  # no row matched: gone, or in a status refused
        now = Conversation.select(Conversation.status).where(
            Conversation.id == conversation.id).tuples().first()
        if now is None:
            raise NotFound("no such conversation")
        raise StatusChanged(now[0])
    message_id, seq, handler_id, group_id, status = stored
    message = Message(**values, id=message_id, seq=seq)
    message._dirty.clear()
    return message, [(handler_id, group_id, status)]


def _resync_after_resend(conversation: Conversation, message: Message) -> None:
    """A resend of a stored message: its first try may have been stored and then
    failed before publishing (the connection lost during COMMIT, so the client
    saw an error; the process killed). The message's events are published again;
    every socket's stream places a message by its ``seq`` and skips one it has
    (``delivery.Stream``), so a socket that missed it gets it, in its place, and
    nobody gets it twice. No plugin hears of it again (``track_event``).

    It used to make every socket of the team resync from the database
    (``hub.resync`` on the team topic): under load a refused frame's resend is
    common, each one cost every agent socket of every process a database replay,
    and the replays took the turns the refused frames waited for (the 2 x gevent
    run at 300 msg/s: 277,553 "subscriber queue full" in five minutes)."""
    _emit_message(conversation, message, None)


def publish_message(conversation: Conversation, message: Message,
                    owner: tuple[int | None, int | None, str] | None = None) -> None:
    """Agents hear every message on the team topic (with the handler, group and
    status, so their sockets filter by scope without a query); visitors hear public
    ones on the conversation topic. ``owner`` is the current (handler id, group id,
    status) when the caller has just read it."""
    _emit_message(conversation, message, owner)
    events.plugins().call("track_event", event={
        "name": "message.created", "team_id": conversation.team_id,
        "at": iso(message.created_at), "conversation_id": conversation.id,
        "message_id": message.id, "sender_kind": message.sender_kind,
        "visibility": message.visibility,
    })


def _emit_message(conversation: Conversation, message: Message,
                  owner: tuple[int | None, int | None, str] | None) -> None:
    """The hub events of a stored message (``publish_message`` without the plugins)."""
    team = conversation.team_id
    if owner is None:
        current = Conversation.select(Conversation.handler, Conversation.group,
                                      Conversation.status).where(
            Conversation.id == conversation.id).first()
        owner = (current.handler_id, current.group_id, current.status) if current else (
            conversation.handler_id, conversation.group_id, conversation.status)
    can_read = reports_reads(conversation)  # the channel registry, no query
    data = agent_view(message, can_read)
    data["handler_id"], data["group_id"], data["conversation_status"] = owner
    published = [([team_topic(team)], data)]
    if message.visibility == "public":
        published.append(([conversation_topic(conversation.id)], visitor_view(message, can_read)))
    events.emit_many("message", team, published)


def mentioned_agents(body: str, agents: list[tuple[int, str, str]]) -> list[int]:
    """Ids of the agents ``body`` @-mentions, by name or nickname, in order.

    Names are matched against the team's real names, not a token pattern: the
    workspace inserts ``@{name} `` and names may hold spaces ("@Li Wei"), and
    Chinese text runs on after a name with no space ("好的@李客服看一下"). Both sides
    are folded as the uniqueness check folds names (``names.name_key``: NFKC, so
    full-width ``＠ＡｇｅｎｔＴｗｏ`` is ``@AgentTwo``, ``﹫`` is ``@`` too; case ignored). At each ``@`` the
    longest name written as its agent writes it wins ("@李客服2号" is 李客服2 when
    both exist; "@李客服 2号桌" is 李客服); failing that, the one name it is with other
    spaces ("@Agent Two" for AgentTwo), if only one fits. An ``@`` after a letter or
    digit is an address, not a mention. A name whose key two agents share (names are
    unique since ``accounts._check_names_free``; older teams may have such pairs)
    mentions neither: a guess could hand one of them the other's conversation.
    """
    return names.mentioned(body, agents)


def _store_mentions(conversation: Conversation, message: Message, by: Agent) -> list[int]:
    """The agents an internal note @-mentions (``_may_mention`` said it may), stored."""
    team = list(Agent.select(Agent.id, Agent.name, Agent.nickname).where(
        Agent.team == conversation.team_id, Agent.active == True).tuples())  # noqa: E712
    ids = [a for a in mentioned_agents(message.body, team) if a != by.id]
    for agent_id in ids:
        Mention.create(conversation=conversation.id, message_id=message.id, agent=agent_id,
                       by_agent=by)
    return ids


def history(conversation: Conversation, after: int = 0, for_visitor: bool = True,
            limit: int = 500, after_seq: int | None = None) -> list[Message]:
    """Messages after id ``after`` (or after position ``after_seq``) in order;
    visitors never get internal notes. Within a conversation id order is seq
    order (both follow the conversation's lock), so either bound is exact."""
    query = Message.select().where(Message.conversation == conversation.id)
    query = query.where(Message.id > after) if after_seq is None else query.where(
        Message.seq > after_seq)
    if for_visitor:
        query = query.where(Message.visibility == "public")
    return list(query.order_by(Message.id).limit(limit))


def between(conversation_id: int, after: int, before: int | None, limit: int,
            for_visitor: bool) -> list[Message]:
    """Messages with ``after < seq < before`` in seq order: what a socket's gap or
    resume needs (``delivery.Stream``). Rows without a seq are not positioned."""
    query = Message.select().where(Message.conversation == conversation_id,
                                   Message.seq > after)
    if before is not None:
        query = query.where(Message.seq < before)
    if for_visitor:
        query = query.where(Message.visibility == "public")
    return list(query.order_by(Message.seq).limit(limit))


def seq_of(conversation_id: int, message_id: int) -> int:
    """The position of the newest message with an id up to ``message_id`` (0: none):
    turns an old client's ``after=<id>`` into a position."""
    found = Message.select(peewee.fn.MAX(Message.seq)).where(
        Message.conversation == conversation_id, Message.id <= message_id).scalar()
    return int(found or 0)


def agent_replay(actor: Agent, after: int, limit: int = 2000) -> list[Message]:
    """What a reconnecting agent socket missed: messages newer than ``after`` of
    every conversation he may see, internal notes included, oldest first."""
    from meiqia.services import permissions

    return list(
        Message.select().join(Conversation, on=(Message.conversation == Conversation.id))
        .where(Message.id > after, permissions.conversation_filter(actor))
        .order_by(Message.id).limit(limit)
    )


def owner_of(conversation: Conversation) -> dict[str, Any]:
    """Handler, group and status: what agent sockets filter team events by, without
    a query (a chat nobody handles in no group is a scoped agent's only while it is
    queued: permissions.conversation_filter)."""
    return {"handler_id": conversation.handler_id, "group_id": conversation.group_id,
            "conversation_status": conversation.status}


def mark_read(conversation: Conversation, reader: str, up_to: int) -> int:
    """The visitor or the agent read everything up to ``up_to``: set read times.

    ``up_to`` past the conversation's last message is taken as that message (a
    client cannot mark read what does not exist yet); the event carries the id
    stored. Returns how many messages became read."""
    others = ["agent", "bot", "system"] if reader == "visitor" else ["visitor"]
    now = utcnow()
    with database.atomic():
        last = Conversation.select(Conversation.last_message_id).where(
            Conversation.id == conversation.id).scalar()
        up_to = min(up_to, int(last or 0))
        count = Message.update(read_at=now, delivered_at=peewee.fn.COALESCE(
            Message.delivered_at, now)).where(
            Message.conversation == conversation.id, Message.id <= up_to,
            Message.sender_kind.in_(others), Message.read_at.is_null(),
            Message.visibility == "public").execute()
        field = Conversation.visitor_read_id if reader == "visitor" else Conversation.agent_read_id
        Conversation.update({field: up_to}).where(
            Conversation.id == conversation.id, field < up_to).execute()
    if count:
        event = {"conversation_id": conversation.id, "reader": reader, "up_to": up_to,
                 **owner_of(conversation)}
        events.emit("read", conversation.team_id,
                    [team_topic(conversation.team_id), conversation_topic(conversation.id)],
                    event, track=False)
    return count


def mark_delivered(conversation: Conversation, message_ids: list[int]) -> None:
    """Messages reached the visitor (his socket, live or replayed on reconnect, or
    the channel's delivery): agents see the "delivered" tick, or "delivered, read
    state unknown" (``status``) on a channel that cannot report reads."""
    if not message_ids:
        return
    count = Message.update(delivered_at=utcnow()).where(
        Message.conversation == conversation.id, Message.id.in_(message_ids),
        Message.delivered_at.is_null()).execute()
    if count:
        status = "delivered" if reports_reads(conversation) else "delivered_read_unknown"
        events.emit("delivered", conversation.team_id, [team_topic(conversation.team_id)],
                    {"conversation_id": conversation.id, "message_ids": message_ids,
                     "status": status, **owner_of(conversation)},
                    track=False)
