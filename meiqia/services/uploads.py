"""Uploads: images (checked by content, ≤ MAX_IMAGE_BYTES) and files (≤ MAX_FILE_BYTES).

Why this shape: an upload may be 50 MB and may be a lie. So the multipart body
is decoded as it arrives (``receive``) and each chunk goes straight to
``<instance>/uploads/<key>.part``; the size is counted on the way and the
upload is refused the moment it passes its limit, before the rest is read.
What a file *is* comes from its first bytes, never from its name or the
browser's word; SVG is not an image for us (it can carry script). Only a
complete, checked file is renamed to its random ``key`` and recorded, in one
transaction; on any failure (too large, wrong type, the client went away)
nothing is left, neither the file nor the row. The name the user gave is kept
only as data, without folders or control characters.

Visitors' uploads are limited per hour, per visitor and per team
(``services.upload_quota``): checked before the body is read and again, exactly,
when the upload is recorded.

Who may see an attachment is who may see its conversation: the visitor of
that conversation, or an agent whose scope (``services.permissions``) holds it.
"""

from __future__ import annotations

import logging
import os
import secrets
import unicodedata
from collections.abc import Callable
from collections.abc import Iterator
from typing import Any
from typing import BinaryIO

from flask import current_app
from werkzeug.http import parse_options_header
from werkzeug.sansio.multipart import Data
from werkzeug.sansio.multipart import Epilogue
from werkzeug.sansio.multipart import Field
from werkzeug.sansio.multipart import File
from werkzeug.sansio.multipart import MultipartDecoder
from werkzeug.sansio.multipart import NeedData

from meiqia.db import database
from meiqia.models import Agent
from meiqia.models import Attachment
from meiqia.models import Conversation
from meiqia.models import Visitor
from meiqia.private_files import private_folder
from meiqia.private_files import private_opener
from meiqia.services import permissions
from meiqia.services import upload_quota
from meiqia.services.accounts import iso
from meiqia.services.errors import NotFound
from meiqia.services.errors import ServiceError
from meiqia.services.errors import TooLarge
from meiqia.services.errors import ValidationError

log = logging.getLogger(__name__)

CHUNK = 64 * 1024
KINDS = ("image", "file")
#: Room for the multipart envelope (boundaries, part headers, the small fields).
ENVELOPE_BYTES = 16 * 1024
#: Small form fields (``kind``) are kept in memory up to this size.
MAX_FIELD_BYTES = 1024
MAX_PARTS = 8
#: Magic bytes of the image types we show inline.
IMAGE_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)
#: Enough of a file for the header of any of them (a PNG's IHDR ends at byte 29).
HEAD_BYTES = 32
KEY_CHARS = 32  # secrets.token_urlsafe(24)


def sniff_image(head: bytes) -> str | None:
    """The image type (PNG, JPEG, GIF, WebP) the first ``HEAD_BYTES`` prove, else
    None: the signature and, after it, the header a viewer needs (a PNG's IHDR with
    its size, a GIF's screen size, a JPEG's first segment, a WebP's image chunk), so
    a file that only starts like an image (the 8 bytes of a PNG signature) is none.
    The one check of what an image is: chat messages, tickets' attachments and the
    channels' inbound media all go through it."""
    for signature, content_type in IMAGE_SIGNATURES:
        if head.startswith(signature) and _header_ok(content_type, head):
            return content_type
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP" and head[12:16] in (
            b"VP8 ", b"VP8L", b"VP8X"):
        return "image/webp"
    return None


def _header_ok(content_type: str, head: bytes) -> bool:
    if content_type == "image/png":  # IHDR first, 13 bytes, a size that is not 0
        return head[8:16] == b"\x00\x00\x00\rIHDR" and len(head) >= 29 \
            and int.from_bytes(head[16:20], "big") > 0 and int.from_bytes(head[20:24], "big") > 0
    if content_type == "image/gif":  # the logical screen: width and height
        return len(head) >= 13 and head[6:8] != b"\x00\x00" and head[8:10] != b"\x00\x00"
    # JPEG: SOI, then a marker segment (APPn, DQT, SOF …) with a length of its own
    return len(head) >= 6 and 0xC0 <= head[3] <= 0xFE and int.from_bytes(head[4:6], "big") >= 2


def safe_name(name: str | None) -> str:
    """The user's file name without folders or control characters (kept as data).

    ``../../etc/passwd`` becomes ``passwd``; markup is kept as text (it is data,
    escaped wherever it is shown).
    """
    name = unicodedata.normalize("NFC", name or "")
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if unicodedata.category(c)[0] != "C")
    name = name.strip(" .")
    return (name or "file")[:200]


def human_size(size: int) -> str:
    """``5242880`` → ``5 MB``; limits are told to people, not to machines."""
    mb, kb = 1024 * 1024, 1024
    if size >= mb:
        return f"{size // mb} MB" if size % mb == 0 else f"{size / mb:.1f} MB"
    if size >= kb:
        return f"{size // kb} KB" if size % kb == 0 else f"{size / kb:.1f} KB"
    return f"{size} bytes"


def limit_for(kind: str) -> int:
    return int(current_app.config["MAX_IMAGE_BYTES" if kind == "image" else "MAX_FILE_BYTES"])


def _too_large(kind: str) -> TooLarge:
    what = "an image" if kind == "image" else "a file"
    return TooLarge(f"file: {what} may be at most {human_size(limit_for(kind))}", "file")


def folder() -> str:
    return private_folder(os.path.join(current_app.instance_path, "uploads"))


def path_of(attachment: Attachment) -> str:
    return os.path.join(folder(), attachment.key)


class _Sink:
    """One upload on its way to disk: counts, keeps the head, removes itself on failure."""

    def __init__(self, limit: int, kind: str | None) -> None:
        self.key = secrets.token_urlsafe(24)
        self.path = os.path.join(folder(), self.key)
        self.part = self.path + ".part"
        self.limit = limit
        self.kind = kind
        self.size = 0
        self.head = b""
        self.out: BinaryIO | None = open(self.part, "wb", opener=private_opener)  # noqa: SIM115 - closed in finish/discard

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.limit:
            raise _too_large(self.kind or "file")
        if len(self.head) < HEAD_BYTES:
            self.head += chunk[: HEAD_BYTES - len(self.head)]
        assert self.out is not None
        self.out.write(chunk)

    def close(self) -> None:
        if self.out is not None:
            self.out.close()
            self.out = None

    def discard(self) -> None:
        self.close()
        for path in (self.part, self.path):
            if os.path.exists(path):
                os.remove(path)


def _record(sink: _Sink, kind: str, filename: str | None, conversation: Conversation,
            uploader_kind: str, uploader_id: int) -> Attachment:
    """Check the complete file, then rename and record it in one transaction."""
    sink.close()
    if sink.size > limit_for(kind):  # the kind was only known after the file
        raise _too_large(kind)
    if sink.size == 0:
        raise ValidationError("file: the file is empty", "file")
    content_type = sniff_image(sink.head)
    if kind == "image" and content_type is None:
        raise ValidationError(
            f"file: {safe_name(filename)!r} is not a PNG, JPEG, GIF or WebP image (the "
            "content was checked, not the name; SVG is not accepted)", "file")
    with database.atomic():
        if uploader_kind == "visitor":  # exact, and serialised with the team's others
            upload_quota.check(conversation.team_id, uploader_id, sink.size, lock=True)
        attachment = Attachment.create(
            team=conversation.team_id, conversation=conversation.id, key=sink.key,
            original_name=safe_name(filename),
            content_type=content_type if kind == "image" else "application/octet-stream",
            size=sink.size, is_image=kind == "image", uploader_kind=uploader_kind,
            uploader_id=uploader_id)
        os.replace(sink.part, sink.path)
    return attachment


def _check_open(conversation: Conversation) -> None:
    if conversation.status == "ended":
        raise ValidationError("the conversation has ended; uploads are closed")


def store(stream: BinaryIO, filename: str | None, conversation: Conversation,
          uploader_kind: str, uploader_id: int, image: bool) -> Attachment:
    """Store a file read from ``stream`` (in chunks); nothing is left on failure."""
    _check_open(conversation)
    kind = "image" if image else "file"
    if uploader_kind == "visitor":
        upload_quota.check(conversation.team_id, uploader_id, 0)
    sink = _Sink(limit_for(kind), kind)
    try:
        while chunk := stream.read(CHUNK):
            sink.write(chunk)
        return _record(sink, kind, filename, conversation, uploader_kind, uploader_id)
    except BaseException:
        sink.discard()
        raise


def _chunks(read: Callable[[int], bytes]) -> Iterator[bytes | None]:
    while chunk := read(CHUNK):
        yield chunk
    yield None


def check_declared_size(content_length: int | None, kind: str | None) -> None:
    """Refuse a body whose Content-Length is over the limit before reading it."""
    if kind is not None and kind not in KINDS:
        raise ValidationError("kind: image or file", "kind")
    if content_length is not None and content_length > limit_for(kind or "file") + ENVELOPE_BYTES:
        raise _too_large(kind or "file")


def receive(stream: BinaryIO, content_type: str | None, content_length: int | None,
            conversation: Conversation, uploader_kind: str, uploader_id: int,
            kind: str | None = None, after_end: bool = False) -> Attachment:
    """Decode a ``multipart/form-data`` body as it arrives and store its ``file``.

    ``kind`` (``image`` or ``file``) comes from the query string or from a
    ``kind`` field before the file; given after the file it is still honoured
    (the file limit applies while streaming, the image limit at the end).
    ``after_end``: also into an ended conversation (a ticket's attachment: the
    leave-a-message form is offered after the chat ended).
    """
    if not after_end:
        _check_open(conversation)
    if kind is not None and kind not in KINDS:
        raise ValidationError("kind: image or file", "kind")
    mimetype, options = parse_options_header(content_type or "")
    boundary = options.get("boundary", "")
    if mimetype != "multipart/form-data" or not boundary:
        raise ServiceError("send multipart/form-data with the file in the field 'file'")
    check_declared_size(content_length, kind)
    if uploader_kind == "visitor":  # before reading the body: its least possible size
        upload_quota.check(conversation.team_id, uploader_id,
                           max(0, (content_length or 0) - ENVELOPE_BYTES))

    # The decoder's buffer holds one chunk plus what it has not yet parsed.
    decoder = MultipartDecoder(boundary.encode("latin-1"), 4 * CHUNK, max_parts=MAX_PARTS)
    sink: _Sink | None = None
    filename: str | None = None
    done = False
    field_name: str | None = None
    field_value = bytearray()
    current: Field | File | None = None
    try:
        for data in _chunks(stream.read):
            decoder.receive_data(data)
            event = decoder.next_event()
            while not isinstance(event, NeedData | Epilogue):
                if isinstance(event, File):
                    if event.name != "file" or sink is not None:
                        raise ValidationError("file: send one file, in the field 'file'",
                                              "file")
                    current, filename = event, event.filename
                    sink = _Sink(limit_for(kind or "file"), kind)
                elif isinstance(event, Field):
                    current, field_name, field_value = event, event.name, bytearray()
                elif isinstance(event, Data):
                    if isinstance(current, File):
                        assert sink is not None
                        sink.write(event.data)
                    else:
                        field_value += event.data
                        if len(field_value) > MAX_FIELD_BYTES:
                            raise ValidationError(f"{field_name}: too long", field_name)
                        if not event.more_data and field_name == "kind":
                            kind = field_value.decode("utf-8", "replace").strip()
                            if kind not in KINDS:
                                raise ValidationError("kind: image or file", "kind")
                event = decoder.next_event()
            if isinstance(event, Epilogue):
                done = True
        if sink is None:
            raise ValidationError("file: attach the file as the multipart field 'file'", "file")
        if not done:
            raise ServiceError("the upload ended before the file was complete")
        return _record(sink, kind or "file", filename, conversation, uploader_kind,
                       uploader_id)
    except ValueError as exc:  # the decoder's word for a malformed body
        if sink is not None:
            sink.discard()
        # The decoder's own words name codecs and byte positions: logged, not sent.
        log.info("upload: malformed multipart body: %s", exc)
        raise ServiceError("the multipart body is malformed") from None
    except BaseException:
        if sink is not None:
            sink.discard()
        raise


def attachment_for(who: Agent | Visitor, key: str) -> Attachment:
    """The attachment ``key`` if ``who`` may see its conversation, else NotFound.

    A visitor sees the attachments of his own conversations; an agent those of
    the conversations in his scope. Outside that, it does not exist.
    """
    if not isinstance(key, str) or not 0 < len(key) <= 40:
        raise NotFound("no such attachment")
    attachment = Attachment.get_or_none(Attachment.key == key)
    if attachment is None or attachment.conversation_id is None:
        raise NotFound("no such attachment")
    conversation = Conversation.get_or_none(Conversation.id == attachment.conversation_id)
    if conversation is None:
        raise NotFound("no such attachment")
    if isinstance(who, Visitor):
        allowed = conversation.visitor_id == who.id
    else:
        allowed = (conversation.team_id == who.team_id
                   and permissions.can_see_conversation(who, conversation))
    if not allowed:
        raise NotFound("no such attachment")
    return attachment


def for_message(conversation: Conversation, key: str | None, kind: str) -> Attachment:
    """The upload a message of ``kind`` (image or file) in ``conversation`` points at.

    For the message code: the key must name an upload of this very
    conversation, and an image message must point at an image.
    """
    if not key:
        raise ValidationError("attachment: required for images and files", "attachment")
    attachment = Attachment.get_or_none(Attachment.key == key,
                                        Attachment.conversation == conversation.id)
    if attachment is None:
        raise ValidationError("attachment: no such upload in this conversation", "attachment")
    if kind == "image" and not attachment.is_image:
        raise ValidationError("attachment: this upload is a file, not an image", "attachment")
    return attachment


def public_dict(attachment: Attachment) -> dict[str, Any]:
    """What clients get: ``name`` is the user's text, to be shown escaped."""
    return {
        "key": attachment.key,
        "name": attachment.original_name,
        "size": attachment.size,
        "content_type": attachment.content_type,
        "is_image": attachment.is_image,
        "url": f"/api/v1/attachments/{attachment.key}",
        "created_at": iso(attachment.created_at),
    }
