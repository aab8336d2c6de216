"""Visitor-facing API for the web widget (visitor token auth).

Nothing here ever returns an internal note: messages go through
``messages.visitor_view`` and ``messages.history(for_visitor=True)``.
"""

from __future__ import annotations

from typing import Any

from flask import current_app
from flask import g
from flask import request

from meiqia.models import Conversation
from meiqia.models import Visitor
from meiqia.services import conversations
from meiqia.services import messages
from meiqia.services import teams
from meiqia.services import visitors
from meiqia.services.errors import NotFound
from meiqia.services.errors import TokenExpired
from meiqia.services.errors import Unauthorized
from meiqia.services.errors import ValidationError
from meiqia.services.visit_info import client_ip
from meiqia.web import error_text
from meiqia.web import i18n
from meiqia.web import security
from meiqia.web.api import AFTER_QUERY
from meiqia.web.api import query_int
from meiqia.web.api import route

VISITOR_MESSAGE_SCHEMA = {
    "type": "object",
    "required": ["body", "client_msg_id"],
    "additionalProperties": False,
    "properties": {
        "body": {"type": "string", "maxLength": messages.MAX_BODY},
        "client_msg_id": {"type": "string", "maxLength": 64,
                          "description": "The client's own id for the message (1-64 of "
                          "A-Z a-z 0-9 - _ . :); required: a resend with the same id is "
                          "stored once and answered with duplicate: true"},
        "kind": {"type": "string", "enum": ["text", "image", "file"]},
        "attachment": {"type": "string", "maxLength": 40},
    },
}


def request_ip() -> str:
    return client_ip(request.remote_addr, request.headers.get("X-Forwarded-For"),
                     current_app.config["TRUSTED_PROXIES"])


def own_conversation(conversation_id: int) -> Conversation:
    conversation = Conversation.get_or_none(Conversation.id == conversation_id,
                                            Conversation.visitor == g.visitor.id)
    if conversation is None:
        raise NotFound("no such conversation")
    return conversation


@route("/widget/session", ("POST",), summary="Start or resume a visitor session",
       auth="none", body=visitors.SESSION_SCHEMA, tags=["widget"],
       description="Returns the visitor token (keep it), the conversation and its "
       "messages, and `earlier`: his previous, ended conversation (its last 100 public "
       "messages) to show above a new one, or null. A new visitor, or a token with its "
       "`renew_key`, gets a fresh token and the key; a live token alone resumes its "
       "visitor but gets the same token, its own expiry and `renew_key: null` (keep the "
       "key you have). Name, contact and custom info come from the embedding page: a "
       "phone that is no phone number is not stored and is named in `warnings`. "
       "X-Meiqia-Lang sets the language of his system lines.")
def session(body: dict) -> dict:
    existing = None
    has_key = False  # the caller showed the visitor's renewal key
    if body.get("token"):
        try:
            existing = security.visitor_from_token(body["token"])
            has_key = security.renew_key_matches(existing, body.get("renew_key"))
        except TokenExpired:
            # Expired: the same visitor only with his renewal key (never in a URL).
            try:
                existing = security.visitor_for_renewal(body["token"], body.get("renew_key"))
                has_key = True
            except Unauthorized:
                existing = None
        except Unauthorized:
            existing = None  # an old or foreign token starts a new visitor
    warnings: list[ValidationError] = []
    visitor, visit = visitors.start_session(body, request_ip(),
                                            request.headers.get("User-Agent", ""), existing,
                                            warnings)
    if existing is not None and visitor.id == existing.id and not has_key:
        # A live token alone (read from a log, say) resumes its visitor for what is
        # left of its lifetime, never longer and never with the key that would
        # renew it (docs/security.md §11).
        token_info = security.kept_token_info(body["token"])
    else:
        token_info = security.visitor_token_info(visitor)
    lang = i18n.normalise(request.headers.get(i18n.LANG_HEADER))
    if lang and lang != visitor.language:
        # The system lines he reads (handover, leave a message) follow his widget.
        Visitor.update(language=lang).where(Visitor.id == visitor.id).execute()
    conversation, _ = conversations.start_or_resume(visitor, visit)
    return {
        **token_info,
        "visitor": {"name": visitor.name},
        "conversation": conversations.state(conversation),
        "messages": [messages.visitor_view(m) for m in messages.history(conversation)],
        "earlier": conversations.earlier(visitor, conversation),
        # The built-in greeting in his language, until the team writes its own.
        "greeting": teams.greeting(visitor.team, lang or visitor.language or visitor.team.language),
        # What the embedding page passed that was not kept, each said as its 422
        # would say it, in the caller's language: the chat goes on without it.
        "warnings": [error_text.localise(w.to_dict()["error"], i18n.error_language(),
                                         error_text.subject_of(request.path))
                     for w in warnings],
    }


RENEW_SCHEMA = {
    "type": "object",
    "required": ["token", "renew_key"],
    "additionalProperties": False,
    "properties": {
        "token": {"type": "string", "maxLength": 500},
        "renew_key": {"type": "string", "maxLength": 100},
    },
}
RENEW_OUT = {
    "type": "object",
    "properties": {
        "token": {"type": "string"},
        "token_expires_at": {"type": "string", "format": "date-time"},
        "renew_key": {"type": "string"},
    },
}


@route("/widget/token", ("POST",), summary="Renew a visitor token (before or after expiry)",
       auth="none", body=RENEW_SCHEMA, response=RENEW_OUT, tags=["widget"],
       description="The widget calls this when less than half of its token's lifetime "
       "(VISITOR_TOKEN_DAYS) is left, or after a ``token_expired`` error. The token "
       "(expired or not) must be genuine and ``renew_key`` the one the session route "
       "gave: it never travels in a URL, so whoever read a token in a log cannot renew "
       "it. Answers a fresh token for the same visitor. Refused with 401 "
       "``unauthorized``: ``field`` is ``token`` for a token that is not genuine (forged, "
       "or of no visitor), ``renew_key`` for a genuine token with a wrong key.")
def renew_token(body: dict) -> dict:
    visitor = security.visitor_for_renewal(body["token"], body["renew_key"])
    return security.visitor_token_info(visitor)


@route("/widget/conversations/<int:conversation_id>/messages", summary="Messages after an id or a position",
       auth="visitor", tags=["widget"],
       query=AFTER_QUERY)
def list_messages(conversation_id: int) -> dict:
    conversation = own_conversation(conversation_id)
    after = query_int("after", 0)
    after_seq = query_int("after_seq", 0) if "after_seq" in request.args else None
    can_read = messages.reports_reads(conversation)
    return {"messages": [messages.visitor_view(m, can_read) for m in
                         messages.history(conversation, after=after, after_seq=after_seq)],
            "conversation": conversations.state(conversation)}


@route("/widget/conversations/<int:conversation_id>/messages", ("POST",),
       summary="Send a message (idempotent by client_msg_id)", auth="visitor",
       body=VISITOR_MESSAGE_SCHEMA, status=201, tags=["widget"])
def send(conversation_id: int, body: dict) -> Any:
    conversation = own_conversation(conversation_id)
    payload = None
    kind = body.get("kind", "text")
    if kind in {"image", "file"}:
        payload = {"attachment": conversations.attachment_key(
            conversation, body.get("attachment"), kind)}
    message, created = conversations.visitor_message(
        g.visitor, conversation, body["body"], body.get("client_msg_id"), kind=kind,
        payload=payload)
    return {"message": messages.visitor_view(message), "duplicate": not created}


@route("/widget/conversations/<int:conversation_id>/human", ("POST",),
       summary="Ask for a human agent", auth="visitor", tags=["widget"])
def human(conversation_id: int) -> dict:
    return conversations.ask_for_human(g.visitor, own_conversation(conversation_id))


@route("/widget/conversations/<int:conversation_id>/read", ("POST",),
       summary="Mark messages read up to an id", auth="visitor", tags=["widget"],
       body={"type": "object", "required": ["up_to"], "additionalProperties": False,
             "properties": {"up_to": {"type": "integer", "minimum": 0}}})
def read(conversation_id: int, body: dict) -> dict:
    """`up_to` past the conversation's last message counts as its last message, so
    messages that come later stay unread; `marked`: how many became read."""
    count = messages.mark_read(own_conversation(conversation_id), "visitor", body["up_to"])
    return {"marked": count}


@route("/widget/conversations/<int:conversation_id>/rating", ("POST",),
       summary="Rate the conversation", auth="visitor", body=conversations.RATING_SCHEMA,
       tags=["widget"])
def rating(conversation_id: int, body: dict) -> dict:
    conversation = conversations.rate(g.visitor, conversation_id, body)
    return conversations.state(conversation)
