"""Outbound: every message the visitor should see on a conversation of another
channel than the widget goes out through that channel's ``deliver()``.

``record`` runs inside the transaction that stores the message
(``services/messages.post_message``): the message and its ``channel_delivery``
row commit together, so no visitor-visible message of a channel conversation
exists without a delivery whose state agents see. After the commit
``queue`` hands it to a job (``deliver_job``) that calls ``deliver()`` through
the plugin runtime (budget ``CHANNEL_DELIVER_TIMEOUT``), retries with
exponential backoff (``CHANNEL_DELIVERY_RETRY``), and records each outcome:
``pending`` → ``sent`` (with the far side's id, for threading), ``retrying``
(reason, next attempt) or ``failed`` (reason). A failed delivery keeps its
message; an agent retries it by hand (``retry``; the workspace's button and
``POST /api/v1/channel-deliveries/<id>/retry``), as he may a retrying one (sent
now instead of at its next time). A delivery whose channel is busy with another
of the team's deliveries (``job_gate``) waits its turn: no attempt, a new job in
a few seconds (``_wait_turn``). Each change is pushed to the
agents' sockets as a ``delivery`` frame (docs/protocol.md).

While ``receive`` handles an inbound message, the deliveries its path creates
(welcome, bot answer, handover, leave-a-message) are queued only at its end
(``deferred``), so they go out after the inbound message's external id and
thread are stored.

**One at a time, in order.** A conversation's deliveries go out in the order
their messages were written: a delivery whose conversation has an earlier one
still ``pending`` or ``retrying`` waits (its job ends, "waiting"), and the
earlier one, once sent or failed for good, queues a job for the next
(``_next_in_line``). Jobs run side by side on several workers, so without this
a welcome line, the bot's answer and its "did you mean" list reached a WeChat
follower in whatever order their jobs happened to finish, and a retried one
after the messages written after it. A failed delivery does not hold the
others back (it waits for an agent's retry). The attempt itself is claimed
(``claimed_until``, ``_claim``): the job queued by the predecessor and the
delivery's own may both run, and only one sends.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime
import json
import logging
import random
import re
from collections.abc import Iterator
from typing import Any

from flask import current_app

from meiqia.channels import registry
from meiqia.channels.base import Attachment
from meiqia.channels.base import ChannelConversation
from meiqia.channels.base import ChannelMessage
from meiqia.channels.base import DeliveryError
from meiqia.channels.base import in_language
from meiqia.jobs import Retry
from meiqia.jobs import RetryLater
from meiqia.models import Agent
from meiqia.models import ChannelDelivery
from meiqia.models import ChannelExternalId
from meiqia.models import ChannelThread
from meiqia.models import ChannelVisitor
from meiqia.models import Conversation
from meiqia.models import Message
from meiqia.models.base import utcnow
from meiqia.plugin_runtime import job_gate
from meiqia.services import outbound as gate
from meiqia.services.accounts import iso
from meiqia.services.errors import Conflict
from meiqia.services.errors import NotFound

log = logging.getLogger(__name__)

#: Attempts after the first and the waits between them (seconds), unless the
#: app sets ``CHANNEL_DELIVERY_RETRY`` = (retries, (waits...)).
DEFAULT_RETRY = Retry(max=5, intervals=(10, 60, 300, 1800, 3600))
#: The longest a ``deliver()`` may run (seconds), unless ``CHANNEL_DELIVER_TIMEOUT``.
DEFAULT_TIMEOUT = 30.0

_deferred: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar(
    "meiqia_channel_deferred", default=None)

#: Message kinds that reach the visitor on a channel, by capability.
_SENT_KINDS = {"text", "image", "file", "event"}


def retry_policy() -> Retry:
    setting = current_app.config.get("CHANNEL_DELIVERY_RETRY")
    if setting:
        count, waits = setting
        return Retry(max=int(count), intervals=tuple(int(w) for w in waits))
    return DEFAULT_RETRY


# --- when a message is stored -------------------------------------------------------------


def wants_delivery(conversation: Conversation, message: Message) -> bool:
    """Whether the visitor should get this message through the channel."""
    slug = getattr(conversation, "channel", registry.WEB) or registry.WEB
    if slug == registry.WEB or message.visibility != "public" \
            or message.sender_kind == "visitor":
        return False
    if message.kind == "rating_invite":
        return "rating" in registry.capabilities(slug)
    if message.kind not in _SENT_KINDS:
        return False
    if message.kind in {"image", "file"}:
        return True
    return bool((message.body or "").strip())


def record(conversation: Conversation, message: Message) -> int | None:
    """Create the message's delivery, in the caller's transaction; its id or None."""
    if not wants_delivery(conversation, message):
        return None
    now = utcnow()
    return ChannelDelivery.insert(
        message=message.id, conversation=conversation.id, team=conversation.team_id,
        channel=conversation.channel, status="pending", created_at=now, updated_at=now,
    ).execute()


@contextlib.contextmanager
def deferred() -> Iterator[list[int]]:
    """Collect the deliveries queued inside the block instead of queuing them."""
    held: list[int] = []
    token = _deferred.set(held)
    try:
        yield held
    finally:
        _deferred.reset(token)


def queue(delivery_id: int | None) -> None:
    """After the commit: a job delivers it (or, inside ``deferred``, later)."""
    if delivery_id is None:
        return
    held = _deferred.get()
    if held is not None:
        held.append(delivery_id)
        return
    _enqueue(delivery_id)


def enqueue_all(ids: list[int]) -> None:
    for delivery_id in ids:
        _enqueue(delivery_id)


def _enqueue(delivery_id: int, description: str = "", delay: float = 0.0) -> None:
    try:
        job_id = current_app.extensions["meiqia.jobs"].enqueue(
            deliver_job, delivery_id, retry=retry_policy(),
            description=description or f"channel delivery {delivery_id}",
            keep_if_refused=True,  # Redis down: the workers' sweep queues it later
            delay=delay)
    except Exception as exc:  # noqa: BLE001 - shown to agents, retryable by hand
        log.error("cannot queue channel delivery %s: %s", delivery_id, exc)
        _set(delivery_id, status="failed", last_error=f"could not queue: {exc}"[:2000])
        return
    # The delivery's latest job (one queued by its predecessor replaces its own).
    ChannelDelivery.update(job_id=job_id).where(ChannelDelivery.id == delivery_id).execute()


# --- the job ------------------------------------------------------------------------------


class DeliveryRetry(RetryLater):
    """Raised by the job so the queue runs it again after the backoff."""


#: Delivery states that are still on their way (the others: sent, failed).
_UNFINISHED = ("pending", "retrying")
#: Seconds a claim outlives the attempt's budget (a job killed mid-attempt
#: leaves its claim to lapse; the job's retry then sends).
CLAIM_MARGIN = 30
#: Seconds (at most; at least half) a delivery waits for its turn when another
#: delivery of its team's channel is inside the channel (``job_gate``).
TURN_WAIT = 4.0


class _NotItsTurn(Exception):
    """Another delivery of the same team's channel is inside it: no call was made."""


def deliver_job(delivery_id: int) -> str:
    """Job: one attempt at delivering one message, after every earlier one of
    its conversation (module docstring); raise to be retried."""
    delivery = ChannelDelivery.get_or_none(ChannelDelivery.id == delivery_id)
    if delivery is None:
        return "gone"
    if delivery.status not in _UNFINISHED:
        return delivery.status  # sent meanwhile, or given up (a retry by hand queues anew)
    ahead = _ahead_of(delivery)
    if ahead is not None:
        # The one ahead queues this one's job when it is done (``_next_in_line``).
        _nudge(ahead)
        return f"waiting behind delivery {ahead.id}"
    if not _claim(delivery):
        return "another attempt is running"
    attempts = delivery.attempts + 1
    policy = retry_policy()
    try:
        external_id = _attempt(delivery)
    except _NotItsTurn as exc:
        return _wait_turn(delivery, exc)
    except DeliveryError as exc:
        final = not exc.retry or attempts >= policy.max + 1
        _failed_attempt(delivery, attempts, stored_reason(exc), final, policy)
        if final:
            _next_in_line(delivery.conversation_id)
            return f"failed: {exc.reason}"
        raise DeliveryRetry(exc.reason) from None
    _sent(delivery, attempts, external_id)
    _next_in_line(delivery.conversation_id)
    return "sent"


def _wait_turn(delivery: ChannelDelivery, busy: Exception) -> str:
    """The gate refused the call (one delivery at a time in a team's channel): no
    call reached the far side, so this is no attempt. The delivery keeps its state,
    attempts and reason, and a new job tries again in a few seconds. Counted as an
    attempt, a burst of 40 WeChat answers behind an API taking 8 s each spent its
    retries at the gate and waited the 30-minute backoff of a failed call."""
    ChannelDelivery.update(claimed_until=None).where(
        ChannelDelivery.id == delivery.id).execute()
    wait = random.uniform(TURN_WAIT / 2, TURN_WAIT)  # not all together at the next try
    _enqueue(delivery.id, f"channel delivery {delivery.id} (its turn)", delay=wait)
    log.info("channel %s: delivery %s waits its turn (%s)", delivery.channel, delivery.id,
             busy)
    return "waiting for its turn in the channel"


def _ahead_of(delivery: ChannelDelivery) -> ChannelDelivery | None:
    """The earliest delivery of the same conversation still on its way before this one."""
    return ChannelDelivery.select().where(
        ChannelDelivery.conversation == delivery.conversation_id,
        ChannelDelivery.id < delivery.id,
        ChannelDelivery.status.in_(_UNFINISHED)).order_by(ChannelDelivery.id).first()


#: Seconds after which a pending delivery nobody is sending is given a job again.
STRANDED_SECONDS = 60


def _nudge(ahead: ChannelDelivery) -> None:
    """The delivery everything waits behind: when it has been pending a while with
    no attempt in flight (its process died between the commit and queuing its job),
    queue a job for it, instead of holding the conversation until ``resume_pending``
    at the next start. A second job is harmless (``_claim``)."""
    if ahead.status != "pending" or (ahead.claimed_until is not None
                                     and ahead.claimed_until > utcnow()):
        return
    if ahead.created_at > utcnow() - datetime.timedelta(seconds=STRANDED_SECONDS):
        return
    _enqueue(ahead.id, f"channel delivery {ahead.id} (stranded, nudged)")


def _claim(delivery: ChannelDelivery) -> bool:
    """Take the delivery's next attempt: True for exactly one of the jobs that
    try at once, until the attempt ends or its claim lapses."""
    now = utcnow()
    budget = float(current_app.config.get("CHANNEL_DELIVER_TIMEOUT", DEFAULT_TIMEOUT))
    until = now + datetime.timedelta(seconds=budget + CLAIM_MARGIN)
    return bool(ChannelDelivery.update(claimed_until=until).where(
        ChannelDelivery.id == delivery.id, ChannelDelivery.status.in_(_UNFINISHED),
        ChannelDelivery.claimed_until.is_null() | (ChannelDelivery.claimed_until < now),
    ).execute())


def _next_in_line(conversation_id: int) -> None:
    """Queue a job for the conversation's oldest delivery still on its way (it
    may have one already: the claim lets one of them send)."""
    row = ChannelDelivery.select(ChannelDelivery.id).where(
        ChannelDelivery.conversation == conversation_id,
        ChannelDelivery.status.in_(_UNFINISHED)).order_by(ChannelDelivery.id).first()
    if row is not None:
        _enqueue(row.id, f"channel delivery {row.id} (next in its conversation)")


def _attempt(delivery: ChannelDelivery) -> str | None:
    """Call the channel's ``deliver``; its external id, or DeliveryError."""
    slug, team_id = delivery.channel, delivery.team_id
    cls = registry.channel_class(slug)
    if cls is None:
        raise DeliveryError(f"no plugin provides the channel {slug!r} any more", retry=False)
    obj = registry.instance(team_id, slug)
    if obj is None:
        raise DeliveryError(f"the channel {slug} is not enabled for this team "
                            "(Channels page); enable it and retry", retry=False)
    conversation = conversation_view(delivery.conversation_id)
    message = message_view(delivery.message_id)
    if conversation is None or message is None:
        raise DeliveryError("the conversation or message was deleted", retry=False)
    pm = current_app.extensions["meiqia.plugins"]
    plugin = pm.owner_of(cls) or slug

    def call() -> tuple[str, Any]:
        try:
            return "ok", obj.deliver(conversation, message)
        except DeliveryError as exc:
            return "error", _refusal_is_final(exc)
        except Exception as exc:
            refusal = gate.refusal_in(exc)
            if refusal is None:
                raise
            return "error", _refusal_is_final(DeliveryError(str(refusal)))

    budget = float(current_app.config.get("CHANNEL_DELIVER_TIMEOUT", DEFAULT_TIMEOUT))
    # One delivery at a time inside one team's channel, in all processes
    # (job_gate): a channel whose deliver() hangs holds one shared job thread or
    # urgent loop, and after a timeout none for one more budget; its other
    # deliveries wait their turn (``_wait_turn``: no attempt spent), and other
    # channels' go out meanwhile. Per team: one team's mail server that hangs must
    # not hold every other team's e-mail, nor one team's burst theirs.
    try:
        with job_gate.one_call_inside(plugin, f"{slug}:team-{team_id}", budget) as inside:
            result, failure = pm.runtime.run(plugin, "deliver", call, {}, team_id=team_id,
                                             budget=budget, breaker=False)
            if failure is not None and failure.kind == "timeout":
                inside.keep()
    except job_gate.Busy as exc:
        raise _NotItsTurn(str(exc)) from None
    if failure is not None:
        raise DeliveryError(failure.describe())
    if result is None:  # an admin turned the plugin off for this team
        raise DeliveryError(f"the plugin {plugin} is turned off for this team (Plugins page)",
                            retry=False)
    outcome, value = result
    if outcome == "error":
        raise value
    if value is None or isinstance(value, bool):  # a channel that keeps no ids
        return None
    return str(value)[:500]


def _refusal_is_final(exc: DeliveryError) -> DeliveryError:
    """A delivery the SSRF gate refused (a private address), raised by the channel or
    wrapped in its DeliveryError (whose reason is kept), fails at once: the same URL
    is refused on every attempt (docs/security.md §6). A name that does not resolve
    is retried, unless the channel said otherwise."""
    refusal = gate.refusal_in(exc)
    if refusal is not None and gate.is_permanent(refusal) and exc.retry:
        return DeliveryError(exc.reason, retry=False)
    return exc


#: A Chinese character (the lead of a ``中文 · English`` reason).
_CJK = re.compile(r"[\u3000-\u303f\u3400-\u9fff\uff00-\uffef]")
#: Characters each language of a stored reason keeps (the column holds both).
REASON_CHARS = 900


def stored_reason(exc: DeliveryError) -> str:
    """What a failed attempt stores as its reason: each language's words
    (``{"zh-CN": …, "en": …}`` as JSON) when the channel gave them, else its one
    text. Agents read the reason in their own language (``reason_in``); stored as
    one ``中文 · English`` string, every agent read both (an outside check)."""
    reasons = {lang: str(text)[:REASON_CHARS] for lang, text in (exc.reasons or {}).items()
               if lang in ("zh-CN", "en") and text}
    if reasons:
        return json.dumps(reasons, ensure_ascii=False)
    return exc.reason


def reason_in(stored: str | None, lang: str) -> str | None:
    """A stored reason for a reader of ``lang`` (None: none stored).

    Each language's words where they were stored apart (``stored_reason``); the
    reader's half of a ``中文 · English`` reason (what the channels word that way,
    and rows stored before); an English reason of the runtime's or ours ("timed out
    after 30s") in Chinese where the error texts know it (``error_text``)."""
    if not stored:
        return None
    if stored.startswith("{"):
        try:
            texts = json.loads(stored)
        except ValueError:
            texts = None
        if isinstance(texts, dict) and texts:
            return in_language(texts, lang)
    lead, sep, rest = stored.partition(" · ")
    if sep and _CJK.search(lead) and not _CJK.match(rest):
        return lead if lang == "zh-CN" else rest
    from meiqia.web import error_text

    return error_text.translate_stored(stored, lang)


def _failed_attempt(delivery: ChannelDelivery, attempts: int, reason: str, final: bool,
                    policy: Retry) -> None:
    reason = (reason or "failed")[:2000]
    next_at = None if final else utcnow() + datetime.timedelta(
        seconds=policy.delay(attempts))
    _set(delivery.id, status="failed" if final else "retrying", attempts=attempts,
         last_error=reason, next_attempt_at=next_at, claimed_until=None)
    log.warning("channel %s: delivery %s of message %s %s: %s", delivery.channel,
                delivery.id, delivery.message_id,
                "failed" if final else f"will be retried (attempt {attempts})", reason)


def _sent(delivery: ChannelDelivery, attempts: int, external_id: str | None) -> None:
    from meiqia.services import messages

    _set(delivery.id, status="sent", attempts=attempts, last_error="",
         next_attempt_at=None, external_id=external_id, claimed_until=None)
    if external_id:
        ChannelExternalId.insert(team=delivery.team_id, channel=delivery.channel,
                                 external_id=external_id,
                                 conversation=delivery.conversation_id,
                                 message=delivery.message_id,
                                 direction="out").on_conflict_ignore().execute()
    conversation = Conversation.get_or_none(Conversation.id == delivery.conversation_id)
    if conversation is not None:
        messages.mark_delivered(conversation, [delivery.message_id])


def _set(delivery_id: int, **changes: Any) -> None:
    ChannelDelivery.update(updated_at=utcnow(), **changes).where(
        ChannelDelivery.id == delivery_id).execute()
    publish(delivery_id)


def publish(delivery_id: int) -> None:
    """Tell the agents' sockets the delivery's new state (``delivery`` frame)."""
    from meiqia.services import events
    from meiqia.services import messages

    delivery = ChannelDelivery.get_or_none(ChannelDelivery.id == delivery_id)
    if delivery is None:
        return
    owner = Conversation.select(Conversation.handler, Conversation.group).where(
        Conversation.id == delivery.conversation_id).first()
    data = to_dict(delivery)
    data["reasons"] = {lang: reason_in(delivery.last_error, lang) for lang in ("zh-CN", "en")}
    data["handler_id"] = owner.handler_id if owner else None
    data["group_id"] = owner.group_id if owner else None
    events.emit("delivery", delivery.team_id, [messages.team_topic(delivery.team_id)], data,
                track=False)


# --- what the channel gets -------------------------------------------------------------------


def conversation_view(conversation_id: int) -> ChannelConversation | None:
    conversation = Conversation.get_or_none(Conversation.id == conversation_id)
    if conversation is None:
        return None
    who = ChannelVisitor.get_or_none(ChannelVisitor.visitor == conversation.visitor_id,
                                     ChannelVisitor.channel == conversation.channel)
    thread = ChannelThread.get_or_none(ChannelThread.conversation == conversation_id)
    from meiqia.models import Visitor
    from meiqia.services.routing import visitor_language

    visitor = Visitor.get_or_none(Visitor.id == conversation.visitor_id)
    return ChannelConversation(
        id=conversation.id, team_id=conversation.team_id, channel=conversation.channel,
        visitor_external_id=who.external_user_id if who else "",
        visitor_name=visitor.name if visitor else "", status=conversation.status,
        subject=thread.subject if thread else None,
        metadata=dict(thread.metadata or {}) if thread else {},
        last_inbound_at=thread.last_inbound_at if thread else None,
        language=visitor_language(conversation))


_RATING_TEXT = {"zh-CN": "请您对本次服务进行评价。", "en": "Please rate this conversation."}


def message_view(message_id: int) -> ChannelMessage | None:
    from meiqia.services import messages
    from meiqia.services import uploads

    message = Message.get_or_none(Message.id == message_id)
    if message is None:
        return None
    conversation = Conversation.get_by_id(message.conversation_id)
    body = message.body or ""
    if message.kind == "rating_invite" and not body:
        from meiqia.services.routing import visitor_language

        body = _RATING_TEXT[visitor_language(conversation)]
    # A bot line is stored in the channel's words already
    # (``services.conversations.channel_wording``): sent as stored.
    if message.sender_kind in {"bot", "agent"} and message.kind == "text":
        from meiqia.services.rich_text import plain_text
        from meiqia.services.routing import visitor_language

        # The widget's links and images, written out: a channel gets plain text.
        body = plain_text(body, visitor_language(conversation))
    attachments = []
    key = (message.payload or {}).get("attachment") if message.kind in {"image", "file"} \
        else None
    if key:
        from meiqia.models import Attachment as Stored

        stored = Stored.get_or_none(Stored.key == key)
        if stored is not None:
            with open(uploads.path_of(stored), "rb") as handle:
                data = handle.read()
            attachments.append(Attachment(filename=stored.original_name,
                                          content_type=stored.content_type, data=data,
                                          url=f"/api/v1/uploads/{stored.key}"))
    ids = [(row.external_id, row.direction) for row in list(
        ChannelExternalId.select(ChannelExternalId.external_id, ChannelExternalId.direction)
        .where(ChannelExternalId.conversation == conversation.id,
               ChannelExternalId.message.is_null(False))
        .order_by(ChannelExternalId.id))]
    inbound = [ext for ext, direction in ids if direction == "in"]
    kind = {"agent": "agent", "bot": "bot"}.get(message.sender_kind, "system")
    sender = messages._sender_name(message)
    if kind == "agent" and message.shown_agent_id:
        agent = Agent.get_or_none(Agent.id == message.shown_agent_id)
        sender = agent.display_name if agent else sender
    return ChannelMessage(
        id=message.id, conversation_id=conversation.id, kind=kind, body=body,
        sender_name=sender, created_at=message.created_at, attachments=attachments,
        in_reply_to_external_id=inbound[-1] if inbound else None,
        references=[ext for ext, _direction in ids])


# --- what agents see and do ---------------------------------------------------------------


def to_dict(delivery: ChannelDelivery, lang: str = "en") -> dict[str, Any]:
    """A delivery as agents see it, its ``reason`` in ``lang`` (``reason_in``); the
    ``delivery`` frame carries ``reasons`` (both) instead, and each socket keeps its
    agent's (``ws._Pump``)."""
    return {"id": delivery.id, "message_id": delivery.message_id,
            "conversation_id": delivery.conversation_id, "channel": delivery.channel,
            "status": delivery.status, "attempts": delivery.attempts,
            "reason": reason_in(delivery.last_error, lang),
            "next_attempt_at": iso(delivery.next_attempt_at),
            "external_id": delivery.external_id,
            "updated_at": iso(delivery.updated_at)}


def for_conversation(actor: Agent, conversation_id: int,
                     lang: str = "en") -> list[dict[str, Any]]:
    """The deliveries of a conversation the agent may see, oldest first, their
    reasons in ``lang``."""
    from meiqia.services import permissions

    conversation = permissions.get_conversation(actor, conversation_id)
    return [to_dict(d, lang) for d in ChannelDelivery.select().where(
        ChannelDelivery.conversation == conversation.id).order_by(ChannelDelivery.id)]


#: What an agent may send again by hand: a failed delivery, and a retrying one
#: (now, instead of at its next attempt's time).
_RETRIABLE = ("failed", "retrying")


def retry(actor: Agent, delivery_id: int, lang: str = "en") -> dict[str, Any]:
    """An agent sends a failed or retrying delivery now, with a fresh round of
    retries. A retrying one waited for its next time (up to an hour after four
    failures) and the agent's button answered 409; its scheduled job, when it
    comes, finds it sent, or tries once more (``_claim``: never two at once)."""
    from meiqia.services import permissions
    from meiqia.services.accounts import audit

    delivery = ChannelDelivery.get_or_none(ChannelDelivery.id == delivery_id,
                                           ChannelDelivery.team == actor.team_id)
    if delivery is None:
        raise NotFound("no such delivery")
    permissions.get_conversation(actor, delivery.conversation_id)  # 404 outside his scope
    if delivery.status not in _RETRIABLE:
        raise Conflict("only a failed or retrying message delivery can be retried; this "
                       f"one is {delivery.status}")
    now = utcnow()
    # A fresh round: no attempt of it has failed yet, so no reason (the frame and the
    # answer said "pending" with the last round's "HTTP 400" beside it).
    claimed = ChannelDelivery.update(status="pending", attempts=0, next_attempt_at=None,
                                     job_id=None, claimed_until=None, last_error="",
                                     updated_at=now).where(
        ChannelDelivery.id == delivery.id, ChannelDelivery.status.in_(_RETRIABLE),
        # not while an attempt is in flight (its outcome is on its way)
        ChannelDelivery.claimed_until.is_null() | (ChannelDelivery.claimed_until < now),
    ).execute()
    if not claimed:  # a colleague clicked first, or an attempt is running
        raise Conflict("this message is already being sent again")
    audit(actor, "channel.delivery.retry", "channel_delivery", delivery.id, {})
    publish(delivery.id)
    _enqueue(delivery.id, f"retry channel delivery {delivery.id}")
    return to_dict(ChannelDelivery.get_by_id(delivery.id), lang)


def resume_pending(team_id: int | None = None, older_than_s: int = 300) -> int:
    """Queue again deliveries left ``pending`` with no live job (the process died
    between the commit and the queue). Returns how many were queued."""
    cutoff = utcnow() - datetime.timedelta(seconds=older_than_s)
    query = ChannelDelivery.select(ChannelDelivery.id).where(
        ChannelDelivery.status == "pending", ChannelDelivery.job_id.is_null(),
        ChannelDelivery.created_at < cutoff)
    if team_id is not None:
        query = query.where(ChannelDelivery.team == team_id)
    ids = [row.id for row in list(query)]
    for delivery_id in ids:
        _enqueue(delivery_id)
    return len(ids)
