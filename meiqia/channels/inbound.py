"""``receive``: a channel hands meiqia what a person sent it.

It runs exactly what the widget runs (``services/conversations.py``): the
visitor's open conversation or a new one (welcome line, bot first), the
visitor's message through ``post_message`` (plugins' ``before_message_saved``,
redaction included), then the bot, "人工"/"human" handover, routing, the
queue and the leave-a-message offer. What the visitor should see in return is
delivered by the channel's ``deliver`` from jobs (``channels/outbound.py``),
queued once the inbound message is fully handled, so the reply can thread on it.

Idempotent: an ``external_message_id`` is stored once per (team, channel). A
second delivery of the same message, even at the same moment in another
process, finds the first: the look-up catches a late one, and two at once land
in the same conversation (``start_or_resume`` serialises a visitor's), where
the unique (conversation, client_msg_id) index stores the message once.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import re
import secrets
from collections.abc import Callable
from collections.abc import Sequence
from typing import Any

import peewee
from flask import has_app_context

from meiqia.bot.normalize import has_cjk
from meiqia.channels import outbound
from meiqia.channels.base import Attachment
from meiqia.channels.base import ReceiveResult
from meiqia.channels.host import ChannelHost
from meiqia.db import database
from meiqia.models import ChannelExternalId
from meiqia.models import ChannelThread
from meiqia.models import ChannelVisitor
from meiqia.models import Conversation
from meiqia.models import Visitor
from meiqia.models.base import utcnow
from meiqia.services import conversations
from meiqia.services import messages
from meiqia.services.errors import Conflict
from meiqia.services.errors import ServiceError
from meiqia.services.errors import ValidationError
from meiqia.services.validation import EMAIL_RE
from meiqia.services.validation import check

#: What a message longer than ``messages.MAX_BODY`` ends with; the whole text is
#: stored beside it as a file of this name.
TOO_LONG_NOTE = "\n…（内容过长，完整内容见附件 · too long, the whole text is attached）"
FULL_TEXT_NAME = "full-text.txt"
#: Events a channel may report instead of text.
EVENTS = ("subscribe", "unsubscribe", "scan", "click", "location", "view")
MAX_EXTERNAL_ID = 500
MAX_USER_ID = 255
MAX_METADATA = 16 * 1024
#: The line that takes a refused attachment's place (``receive(note_refused=True)``).
REFUSED_NOTE = "[附件未接收 attachment not accepted: {name}: {reason}]"


def receive(
    host: ChannelHost,
    external_user_id: str,
    text: str = "",
    attachments: Sequence[Attachment] = (),
    metadata: dict[str, Any] | None = None,
    external_message_id: str | None = None,
    in_reply_to: Sequence[str] = (),
    display_name: str | None = None,
    subject: str | None = None,
    event: str | None = None,
    placeholder: bool = False,
    note_refused: bool = False,
    email: str | None = None,
    follow_up: bool = False,
) -> ReceiveResult:
    """Store what ``external_user_id`` sent on ``host``'s channel and run the
    widget's path on it; see the module's docstring and docs/plugins.md.

    Raises ``ValidationError`` (bad input: empty text, an attachment the upload
    checks refuse, metadata that is not JSON). ``note_refused``: an attachment
    the upload checks refuse becomes a line saying so (``REFUSED_NOTE``) in its
    place and the rest is stored, instead of the error (a mail cannot be sent
    again the way a chat upload can). ``email``: the customer's address, put on
    his customer card when the card has none (one an agent typed stays).
    ``follow_up``: what is stored completes a message received before (an
    image fetched later, or a line saying it could not be): for agents and the
    record, not answered (the first message was).
    Callable with or without an app context (a poller thread has none: the
    host's app is used)."""
    if not has_app_context():
        from meiqia.db import connection

        with host.app.app_context(), connection():
            return receive(host, external_user_id, text, attachments, metadata,
                           external_message_id, in_reply_to, display_name, subject, event,
                           placeholder, note_refused, email, follow_up)
    team_id, slug = host.team_id, host.channel
    user = _check_user(external_user_id)
    text = text if isinstance(text, str) else ""
    # The widget refuses a NUL; a channel cannot ask its customer again, and no
    # person types one: dropped (docs/plugins.md, "Inbound").
    text = text.replace("\x00", "")
    if event is not None and event not in EVENTS:
        raise ValidationError(f"event: one of {', '.join(EVENTS)}", "event")
    if event is None and not text.strip() and not attachments:
        raise ValidationError("text: must not be empty", "body")
    meta = _check_metadata(metadata)
    ext = _check_external_id(external_message_id)
    if ext is not None:
        seen = _known(team_id, slug, ext)
        if seen is not None:
            return ReceiveResult(seen.conversation_id, seen.message_id, True)
    visitor = visitor_for(team_id, slug, user, display_name, email)
    _note_language(visitor, text)
    queued: list[int] = []
    try:
        with outbound.deferred() as queued:
            return _handle(host, visitor, text, list(attachments), meta, ext, subject, event,
                           placeholder, note_refused, follow_up)
    finally:
        # Also when a later part failed (an attachment refused after the text was
        # stored): what was stored and answered goes out.
        outbound.enqueue_all(queued)


def receive_for(app: Any, team_id: int, slug: str, external_user_id: str,
                text: str = "", **kw: Any) -> ReceiveResult:
    """``receive`` for a team and channel slug (no host at hand)."""
    from meiqia.channels import registry

    return receive(registry.make_host(team_id, slug, app=app), external_user_id, text, **kw)


def _handle(host: ChannelHost, visitor: Visitor, text: str, attachments: list[Attachment],
            meta: dict[str, Any], ext: str | None, subject: str | None,
            event: str | None, placeholder: bool = False,
            note_refused: bool = False, follow_up: bool = False) -> ReceiveResult:
    slug = host.channel
    base_id = _client_id(ext)
    if event == "unsubscribe" or (event is not None and event != "subscribe"):
        conversation = conversations.active_for(visitor)
        if conversation is None:
            return ReceiveResult(0, None, False)
        message, created = _post_event(conversation, event, meta, base_id)
        _record(host, conversation, message.id if created else None, ext)
        return ReceiveResult(conversation.id, message.id, not created)
    for _attempt in range(3):
        conversation, new = conversations.start_or_resume(
            visitor, None, channel=slug, welcome=_welcome_line(host))
        _thread(conversation, new, slug, subject, meta)
        try:
            if event == "subscribe":
                message, created = _post_event(conversation, event, meta, base_id)
                first = message
            else:
                first, created = _post_all(visitor, conversation, text, attachments, meta,
                                           ext, base_id, placeholder, note_refused,
                                           follow_up)
        except Conflict:
            continue  # it ended between the two steps: a new one
        _record(host, conversation, first.id if created else None, ext)
        return ReceiveResult(conversation.id, first.id, not created)
    raise Conflict("the conversation kept ending while the message arrived; send it again")


def _welcome_line(host: ChannelHost) -> bool:
    """Whether a new conversation of the channel opens with the team's welcome
    line: unless its class says ``welcome_line = False`` (the e-mail channel: a
    mail is answered by one mail, not a greeting first and the answer after)."""
    from meiqia.channels import registry

    return bool(getattr(registry.channel_class(host.channel, host.app), "welcome_line", True))


def _post_all(visitor: Visitor, conversation: Conversation, text: str,
              attachments: list[Attachment], meta: dict[str, Any], ext: str | None,
              base_id: str | None, placeholder: bool = False,
              note_refused: bool = False, follow_up: bool = False) -> tuple[Any, bool]:
    """The text, then one message per attachment (each like a widget upload; a
    refused one, with ``note_refused``, a line saying so), then the answer (none
    for a ``follow_up``: ``conversations.follow_up``)."""
    channel: dict[str, Any] = {"external_id": ext, "metadata": meta}
    if follow_up:
        channel["follow_up"] = True
    payload = {"channel": channel} if ext or meta or follow_up else None
    first = None
    first_created = False
    answer: list[Callable[[], None]] = []
    if len(text) > messages.MAX_BODY:
        # A message longer than a chat message may be: the start, a note, and the
        # whole text as a file beside it (it was cut without a word).
        attachments = [Attachment(FULL_TEXT_NAME, "text/plain; charset=utf-8",
                                  text.encode("utf-8")), *attachments]
        text = text[:messages.MAX_BODY - len(TOO_LONG_NOTE)] + TOO_LONG_NOTE
    if text.strip():
        text_payload = payload
        if placeholder:
            text_payload = {"channel": {**channel, "placeholder": True}}
        first, first_created = conversations.visitor_message(
            visitor, conversation, text, base_id, payload=text_payload, after=answer)
    # The bot's line that it cannot read a refused file: once, and only for a
    # mail without text (the text's answer is what he gets).
    say_cannot_read = first is None
    try:
        for index, item in enumerate(attachments):
            client_id = f"{base_id}.{index}" if base_id else None
            try:
                message, created = _post_attachment(visitor, conversation, item, client_id,
                                                    payload)
            except ServiceError as exc:
                if not note_refused or isinstance(exc, Conflict) \
                        or not isinstance(item, Attachment):
                    raise
                # A line for agents in the file's place (a placeholder: no question).
                note = REFUSED_NOTE.format(name=item.filename, reason=exc)
                line = {"channel": {**channel, "placeholder": True}}
                message, created = conversations.visitor_message(
                    visitor, conversation, note, client_id, payload=line,
                    after=answer if say_cannot_read else [])
                say_cannot_read = False
            if first is None:
                first, first_created = message, created
    finally:
        # The bot's answer (or routing) after the whole of what he sent, an e-mail's
        # attachments included; also when a later attachment was refused.
        for step in answer:
            step()
    assert first is not None
    return first, first_created


def _post_attachment(visitor: Visitor, conversation: Conversation, item: Attachment,
                     client_id: str | None, payload: dict | None) -> tuple[Any, bool]:
    from meiqia.services import uploads

    if not isinstance(item, Attachment) or not isinstance(item.data, bytes | bytearray):
        raise ValidationError("attachments: Attachment objects with data", "file")
    image = uploads.sniff_image(bytes(item.data[:uploads.HEAD_BYTES])) is not None
    stored = uploads.store(io.BytesIO(bytes(item.data)), item.filename, conversation,
                           "visitor", visitor.id, image=image)
    kind = "image" if stored.is_image else "file"
    body = {**(payload or {}), "attachment": stored.key}
    message, created = conversations.visitor_message(
        visitor, conversation, stored.original_name, client_id, kind=kind, payload=body)
    if not created:  # a duplicate: the first delivery's file is the one kept
        with contextlib.suppress(Exception):
            import os

            path = uploads.path_of(stored)
            stored.delete_instance()
            os.remove(path)
    return message, created


def _post_event(conversation: Conversation, event: str, meta: dict[str, Any],
                base_id: str | None) -> tuple[Any, bool]:
    """An event (subscribe…) is a line for agents only: nothing goes back out."""
    return messages.post_message(conversation, "system", "", kind="event",
                                 visibility="internal", client_msg_id=base_id,
                                 payload={"event": "channel", "channel_event": event,
                                          "metadata": meta})


# --- the visitor and the conversation's thread ------------------------------------------


def visitor_for(team_id: int, slug: str, external_user_id: str,
                display_name: str | None = None, email: str | None = None) -> Visitor:
    """The visitor behind an external user id, created on first contact (two
    first contacts at once make one: the unique index decides). ``email`` fills
    his card's e-mail when it is empty, so a ticket made from his conversation
    can be answered by mail; an address an agent typed is never replaced."""
    row = ChannelVisitor.get_or_none(ChannelVisitor.team == team_id,
                                     ChannelVisitor.channel == slug,
                                     ChannelVisitor.external_user_id == external_user_id)
    name = (display_name or "").strip()[:120]
    address = email.strip() if isinstance(email, str) else ""
    if not (len(address) <= 254 and EMAIL_RE.match(address)):
        address = ""  # not an address: the message still counts, the card stays empty
    if row is None:
        try:
            with database.atomic():
                visitor = Visitor.create(team=team_id, uid=secrets.token_urlsafe(18),
                                         name=name or external_user_id[:120], email=address)
                ChannelVisitor.create(team=team_id, channel=slug,
                                      external_user_id=external_user_id, visitor=visitor)
            return visitor
        except peewee.IntegrityError:
            row = ChannelVisitor.get(ChannelVisitor.team == team_id,
                                     ChannelVisitor.channel == slug,
                                     ChannelVisitor.external_user_id == external_user_id)
    visitor = Visitor.get_by_id(row.visitor_id)
    changes: dict[Any, Any] = {Visitor.last_seen_at: utcnow()}
    if name and visitor.name in ("", external_user_id[:120]) and name != visitor.name:
        changes[Visitor.name] = visitor.name = name
    Visitor.update(changes).where(Visitor.id == visitor.id).execute()
    if address and not visitor.email:
        # Only while the card is still empty, also against an agent saving it now.
        if Visitor.update(email=address).where(Visitor.id == visitor.id,
                                               Visitor.email == "").execute():
            visitor.email = address
    return visitor


_LATIN = re.compile(r"[A-Za-z]")


def _note_language(visitor: Visitor, text: str) -> None:
    """A channel's customer has no widget to say his language: his first words do.
    Text with a Chinese character is zh-CN; text with at least three Latin letters
    and no Chinese is English; anything else (a number, an emoji) says nothing yet.
    Set once, while empty, so the system lines (the bot's, the handover) are in his
    language (an outside check: "Where is my parcel?" got 抱歉，我没有理解…)."""
    if visitor.language or not text:
        return
    lang = "zh-CN" if has_cjk(text) else "en" if len(_LATIN.findall(text)) >= 3 else ""
    if lang and Visitor.update(language=lang).where(
            Visitor.id == visitor.id, Visitor.language == "").execute():
        visitor.language = lang


def _thread(conversation: Conversation, new: bool, slug: str, subject: str | None,
            meta: dict[str, Any]) -> None:
    now = utcnow()
    subject = (subject or "").strip()[:1000] or None
    try:
        ChannelThread.insert(conversation=conversation.id, team=conversation.team_id,
                             channel=slug, subject=subject, metadata=meta,
                             last_inbound_at=now).execute()
    except peewee.IntegrityError:
        changes: dict[Any, Any] = {ChannelThread.last_inbound_at: now}
        ChannelThread.update(changes).where(
            ChannelThread.conversation == conversation.id).execute()
        if subject:
            ChannelThread.update(subject=subject).where(
                ChannelThread.conversation == conversation.id,
                ChannelThread.subject.is_null()).execute()


def _record(host: ChannelHost, conversation: Conversation, message_id: int | None,
            ext: str | None) -> None:
    if ext is None or message_id is None:
        return
    ChannelExternalId.insert(team=host.team_id, channel=host.channel, external_id=ext,
                             conversation=conversation.id, message=message_id,
                             direction="in").on_conflict_ignore().execute()


def _known(team_id: int, slug: str, ext: str) -> ChannelExternalId | None:
    return ChannelExternalId.get_or_none(ChannelExternalId.team == team_id,
                                         ChannelExternalId.channel == slug,
                                         ChannelExternalId.external_id == ext)


def conversation_of(team_id: int, slug: str, external_ids: Sequence[str]) -> int | None:
    """The conversation one of these external ids (ours or the visitor's) belongs
    to, newest first; None when none is known."""
    ids = [i for i in external_ids if isinstance(i, str) and i][:100]
    if not ids:
        return None
    row = (ChannelExternalId.select(ChannelExternalId.conversation)
           .where(ChannelExternalId.team == team_id, ChannelExternalId.channel == slug,
                  ChannelExternalId.external_id.in_(ids))
           .order_by(ChannelExternalId.id.desc()).first())
    return row.conversation_id if row else None


# --- input checks ----------------------------------------------------------------------


def _check_user(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValidationError("external_user_id: must not be empty", "external_user_id")
    value = value.strip()
    if len(value) > MAX_USER_ID:
        raise ValidationError(f"external_user_id: at most {MAX_USER_ID} characters",
                              "external_user_id")
    return value


def _check_external_id(value: Any) -> str | None:
    """Text of at most MAX_EXTERNAL_ID characters (a gateway's numeric id: pass
    ``str(id)``), with the schema check's own words (``expected string``)."""
    if value is None or value == "":
        return None
    return check(value, {"type": "string", "maxLength": MAX_EXTERNAL_ID},
                 "external_message_id")


def _check_metadata(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValidationError("metadata: expected an object", "metadata")
    try:
        size = len(json.dumps(value, ensure_ascii=False))
    except (TypeError, ValueError):
        raise ValidationError("metadata: must be JSON (text, numbers, lists, objects)",
                              "metadata") from None
    if size > MAX_METADATA:
        raise ValidationError(f"metadata: at most {MAX_METADATA} bytes as JSON", "metadata")
    return value


def _client_id(ext: str | None) -> str | None:
    """The message's client id from the external id: the unique (conversation,
    client_msg_id) index is what stores two racing deliveries once."""
    if ext is None:
        return None
    return "ch." + hashlib.sha256(ext.encode("utf-8")).hexdigest()[:48]

