"""Uploads and downloads of images and files, for visitors and agents.

The body is streamed straight to the service (never parsed into memory or a
temporary file by Flask first); downloads go only to those who may see the
conversation, with headers that stop a browser from running what was uploaded.
"""

from __future__ import annotations

from typing import Any

from flask import g
from flask import request

from meiqia.models import Conversation
from meiqia.services import permissions
from meiqia.services import uploads
from meiqia.services.errors import NotFound
from meiqia.web.api import FILE
from meiqia.web.api import route
from meiqia.web.downloads import send_download

#: What a download is: an image of a type ``uploads.sniff_image`` proved, or a file.
DOWNLOAD_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp",
                  "application/octet-stream")
UPLOAD_FORM = {
    "type": "object",
    "required": ["file"],
    "properties": {
        "kind": {"type": "string", "enum": ["image", "file"], "default": "file",
                 "description": "Before the file (or as ?kind=). image: PNG, JPEG, GIF or "
                                "WebP, checked by content, at most 5 MB; file: any type, "
                                "at most 50 MB."},
        "file": {"type": "string", "format": "binary", "contentMediaType":
                 "application/octet-stream"},
    },
}
UPLOAD_DOC = ("Multipart form with the field `file` and `kind` (`image` or `file`). "
              "Answers the attachment; send its key as `attachment` of a message of "
              "that kind. Too large: 413 with the limit; not an image: 422. A visitor past "
              "the hourly upload quota (his own, or his site's visitors' together): 429 "
              "with `Retry-After` (seconds).")
ATTACHMENT = {
    "type": "object",
    "properties": {
        "key": {"type": "string"}, "name": {"type": "string"}, "size": {"type": "integer"},
        "content_type": {"type": "string"}, "is_image": {"type": "boolean"},
        "url": {"type": "string"}, "created_at": {"type": "string"},
    },
}
KIND_QUERY = {"type": "object", "properties": {"kind": {"type": "string",
                                                        "enum": ["image", "file"]}}}


def _receive(conversation: Conversation, uploader_kind: str, uploader_id: int) -> dict:
    kind = request.args.get("kind")
    # Before touching request.stream: it would answer a too long body itself,
    # without saying the limit.
    uploads.check_declared_size(request.content_length, kind)
    attachment = uploads.receive(
        request.stream, request.content_type, request.content_length, conversation,
        uploader_kind, uploader_id, kind=kind)
    return uploads.public_dict(attachment)


@route("/widget/conversations/<int:conversation_id>/uploads", ("POST",),
       summary="Upload an image or a file (visitor, own conversation)", auth="visitor",
       status=201, tags=["uploads"], description=UPLOAD_DOC, form=UPLOAD_FORM,
       query=KIND_QUERY, response=ATTACHMENT)
def visitor_upload(conversation_id: int) -> dict:
    conversation = Conversation.get_or_none(Conversation.id == conversation_id,
                                            Conversation.visitor == g.visitor.id)
    if conversation is None:
        raise NotFound("no such conversation")
    return _receive(conversation, "visitor", g.visitor.id)


@route("/conversations/<int:conversation_id>/uploads", ("POST",),
       summary="Upload an image or a file (agent, conversation in scope)", status=201,
       tags=["uploads"], description=UPLOAD_DOC, form=UPLOAD_FORM, query=KIND_QUERY,
       response=ATTACHMENT)
def agent_upload(conversation_id: int) -> dict:
    conversation = permissions.get_conversation(g.actor, conversation_id)
    return _receive(conversation, "agent", g.actor.id)


@route("/attachments/<key>", summary="Download an attachment (only for those who may "
       "see its conversation)", auth="agent_or_visitor", tags=["uploads"],
       content={media: FILE for media in DOWNLOAD_TYPES},
       description="Images inline with their checked type, everything else as a "
                   "download; always `nosniff` and `default-src 'none'`. Visitors may "
                   "pass their token as `?token=` for `<img src>`.")
def download(key: str) -> Any:
    attachment = uploads.attachment_for(g.visitor if g.visitor is not None else g.actor, key)
    response = send_download(uploads.path_of(attachment), attachment.original_name,
                             "image" if attachment.is_image else "attachment",
                             inline=attachment.is_image, mimetype=attachment.content_type,
                             max_age=0, conditional=True, etag=attachment.key)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response.headers["Cache-Control"] = "private, max-age=0"
    return response
