"""Channels API: admins configure channels; agents see and retry deliveries."""

from __future__ import annotations

from flask import g
from flask import request

from meiqia.channels import outbound
from meiqia.services import channels
from meiqia.web import i18n
from meiqia.web.api import route

TAGS = ["channels"]
DELIVERY = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"}, "message_id": {"type": "integer"},
        "conversation_id": {"type": "integer"}, "channel": {"type": "string"},
        "status": {"type": "string", "enum": ["pending", "sent", "retrying", "failed"]},
        "attempts": {"type": "integer"},
        "reason": {"type": ["string", "null"], "description": "why the last attempt failed, in the caller's "
                   "language"},
        "next_attempt_at": {"type": ["string", "null"], "format": "date-time"},
        "external_id": {"type": ["string", "null"]},
        "updated_at": {"type": "string", "format": "date-time"},
    },
}


def _lang() -> str:
    return "en" if i18n.error_language() == "en" else "zh-CN"


@route("/channels", summary="Channels with the team's settings (secrets masked)",
       auth="admin", tags=TAGS,
       description="Every installed channel but the web widget: its form schema "
       "(`configuration_schema()`; its fields' `title`, `description` and `enumNames` "
       "in the caller's language), declared capabilities, whether the team enabled it, "
       "its settings with secret fields as `********` (set) or empty, how many of its "
       "deliveries failed, and `reader`: for an enabled channel with a background reader "
       "(the e-mail channel's mailbox), how it is doing (`state` ok, failing, stale (no "
       "round written for longer than the reader's period and slack, whatever it said "
       "last: no process reads) or waiting; `read_at`, the last round that read; `error`, `error_at`, `failures` in a "
       "row; `message`), in the caller's language; null otherwise. `callback_url`: for a "
       "channel the provider calls (WeChat), the server URL to enter in its console, on the "
       "address this request reached; null for the others.")
def list_channels() -> list:
    return channels.list_channels(g.actor, _lang(), request.host_url)


@route("/channels/<slug>", summary="One channel with the team's settings (secrets masked)",
       auth="admin", tags=TAGS,
       description="As one item of `GET /channels`, `reader` (how its mailbox reader is "
       "doing) included.")
def get_channel(slug: str) -> dict:
    return channels.get(g.actor, slug, _lang(), request.host_url)


@route("/channels/<slug>", ("PUT",), summary="Save a channel's settings / enable it",
       auth="admin", body=channels.CONFIGURE_SCHEMA, tags=TAGS,
       description="Validated against the channel's schema. Send a secret back as "
       "`********` to keep the stored one, only while the fields that decide where it "
       "goes (hosts, ports, URLs, TLS modes, user names, the schema's `secret_bound_to`) "
       "are unchanged: with one changed it is a 422 naming the secret (a saved secret is "
       "only sent to the server it was saved for), and the secret must be typed again. "
       "Restarts the team's channel.")
def configure_channel(slug: str, body: dict) -> dict:
    channels.configure(g.actor, slug, body)
    return channels.get(g.actor, slug, _lang(), request.host_url)


@route("/channels/<slug>/test", ("POST",), summary="Test the channel's connection",
       auth="admin", body=channels.TEST_SCHEMA, tags=TAGS,
       response={"type": "object", "properties": {"ok": {"type": "boolean"},
                                                  "message": {"type": "string"}}},
       description="Calls the channel's `test_connection()` with the stored settings (the "
       "body `{}`; a JSON body is required), or with `config` (unsaved; masked secrets use "
       "the stored ones only while the fields that decide where they go are unchanged, "
       "else a 422 naming the secret and nothing connects). `message`: in the "
       "caller's language when the channel words it per language (the built-in ones do).")
def test_channel(slug: str, body: dict) -> dict:
    return channels.test_connection(g.actor, slug, body, _lang())


@route("/conversations/<int:conversation_id>/deliveries",
       summary="Delivery states of a channel conversation's messages", tags=TAGS,
       tokens="read",
       response={"type": "object", "properties": {
           "deliveries": {"type": "array", "items": DELIVERY}}},
       description="One per message the visitor should get through the conversation's "
       "channel (none for the web widget): pending, sent, retrying (with the reason and "
       "the next attempt) or failed (with the reason).")
def conversation_deliveries(conversation_id: int) -> dict:
    return {"deliveries": outbound.for_conversation(g.actor, conversation_id, _lang())}


@route("/channel-deliveries/<int:delivery_id>/retry", ("POST",),
       summary="Send a failed or retrying channel delivery again now", tags=TAGS,
       tokens="conversations", response=DELIVERY,
       description="A `failed` delivery, or a `retrying` one (it is sent now instead of at "
       "its `next_attempt_at`); 409 for a `pending` or `sent` one, or while an attempt is "
       "running. It is `pending` again, with a fresh round of automatic retries.")
def retry_delivery(delivery_id: int) -> dict:
    return outbound.retry(g.actor, delivery_id, _lang())
