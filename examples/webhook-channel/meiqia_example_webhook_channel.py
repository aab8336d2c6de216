"""A meiqia channel in one file: customers' messages come from any system that
can POST signed JSON, and replies go back to it the same way.

Inbound: ``POST /channels/webhook/<team id>/inbound`` with
``{"user_id", "text", "message_id"?, "name"?}``, headers ``X-Meiqia-Timestamp``
(Unix seconds) and ``X-Meiqia-Signature: sha256=<hex HMAC-SHA256(secret,
"<timestamp>.<body>")>``. It answers ``{"conversation_id", "message_id",
"duplicate"}``: the same ``message_id`` sent twice is stored once.

Outbound: every message the customer should see (bot answers, agents' replies,
handover and leave-a-message lines) is POSTed to the configured URL as
``{"type": "message", "user_id", "conversation_id", "message_id", "kind",
"sender", "text", "in_reply_to", "created_at"}``, signed the same way, through
meiqia's SSRF guard (``host.outbound_http``; the URL is checked by it when
saved too). A 2xx answer is "sent" (its JSON ``id``, if any, is kept as the
external id); 4xx, and a URL the guard refuses, are refusals retrying will not
fix; anything else is retried with backoff by meiqia.

Uses the public channel API (``meiqia.channels``) and the SSRF gate's check for
settings (``meiqia.services.outbound.check_url``, docs/plugins.md).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

from flask import Blueprint
from flask import jsonify
from flask import request

from meiqia.channels import Channel
from meiqia.channels import ChannelConversation
from meiqia.channels import ChannelMessage
from meiqia.channels import DeliveryError
from meiqia.channels import host_for
from meiqia.channels import receive
from meiqia.hookspecs import hookimpl

SLUG = "webhook"
#: A signed request older (or newer) than this is refused: a replayed capture fails.
MAX_SKEW = 300


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>``: the HMAC-SHA256 of ``"<timestamp>.<body>"`` with the secret."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def signed_headers(secret: str, body: bytes, now: float | None = None) -> dict[str, str]:
    timestamp = str(int(now if now is not None else time.time()))
    return {"Content-Type": "application/json", "X-Meiqia-Timestamp": timestamp,
            "X-Meiqia-Signature": sign(secret, timestamp, body)}


def verify(secret: str, timestamp: str | None, signature: str | None, body: bytes,
           now: float | None = None) -> bool:
    """The signature is right and the timestamp recent (constant-time compare)."""
    if not timestamp or not signature or not timestamp.isdigit():
        return False
    if abs((now if now is not None else time.time()) - int(timestamp)) > MAX_SKEW:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


class WebhookChannel(Channel):
    type = SLUG
    name = {"zh-CN": "Webhook 渠道", "en": "Webhook"}
    capabilities = frozenset()  # text only: no typing preview, read receipts, rating

    @staticmethod
    def configuration_schema() -> dict[str, Any]:
        return {
            "type": "object",
            "required": ["outbound_url", "secret"],
            "properties": {
                "outbound_url": {"type": "string", "format": "uri", "maxLength": 500,
                                 "title": "Reply URL",
                                 "description": "Replies are POSTed here, signed"},
                "secret": {"type": "string", "minLength": 16, "maxLength": 200,
                           "title": "Signing secret"},
            },
            "secret": ["secret"],
        }

    @staticmethod
    def validate_config(config: dict[str, Any]) -> None:
        """The reply URL must pass the SSRF guard when the admin saves it (a 422 on
        the field), not only at the first reply; it is checked again on every one."""
        from meiqia.services import outbound
        from meiqia.services.errors import ValidationError

        try:
            outbound.check_url(config["outbound_url"])
        except outbound.OutboundRefused as exc:
            raise ValidationError(f"config.outbound_url: {exc}",
                                  "config.outbound_url") from exc

    def _post(self, payload: dict[str, Any]) -> Any:
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        try:
            return self.host.outbound_http.post(
                self.config["outbound_url"], data=body,
                headers=signed_headers(self.config["secret"], body), timeout=10)
        except Exception as exc:  # refused by the SSRF guard, or the connection failed
            raise DeliveryError(str(exc)) from None

    def deliver(self, conversation: ChannelConversation, message: ChannelMessage) -> str | None:
        answer = self._post({
            "type": "message", "user_id": conversation.visitor_external_id,
            "conversation_id": conversation.id, "message_id": message.id,
            "kind": message.kind, "sender": message.sender_name, "text": message.body,
            "in_reply_to": message.in_reply_to_external_id,
            "created_at": message.created_at.isoformat() + "Z"})
        if 400 <= answer.status_code < 500 and answer.status_code != 429:
            raise DeliveryError(f"the receiver refused the message: HTTP {answer.status_code}",
                                retry=False)
        if not answer.ok:
            raise DeliveryError(f"the receiver answered HTTP {answer.status_code}")
        try:
            data = answer.json()
        except ValueError:
            return None
        found = data.get("id") if isinstance(data, dict) else None
        return str(found) if found else None

    def test_connection(self) -> str:
        answer = self._post({"type": "ping"})
        if not answer.ok:
            raise DeliveryError(f"the receiver answered HTTP {answer.status_code}")
        return f"the receiver answered HTTP {answer.status_code}"


bp = Blueprint("example_webhook_channel", __name__)


@bp.post("/channels/webhook/<int:team_id>/inbound")
def inbound(team_id: int) -> Any:
    from meiqia.services.errors import ValidationError

    host = host_for(team_id, SLUG)
    if host is None:  # no such team, or it has not turned the channel on
        return jsonify(error="no such channel"), 404
    body = request.get_data(cache=False)
    secret = host.config.get("secret") or ""
    if len(secret) < 16 or not verify(secret, request.headers.get("X-Meiqia-Timestamp"),
                  request.headers.get("X-Meiqia-Signature"), body):
        return jsonify(error="bad or missing signature"), 401
    try:
        data = json.loads(body)
    except ValueError:
        return jsonify(error="the body must be JSON"), 400
    if not isinstance(data, dict) or not isinstance(data.get("user_id"), str) \
            or not isinstance(data.get("text"), str):
        return jsonify(error="user_id and text (strings) are required"), 400
    message_id = data.get("message_id")
    try:
        result = receive(host, data["user_id"], data["text"],
                         external_message_id=str(message_id) if message_id else None,
                         display_name=data.get("name") if isinstance(data.get("name"), str)
                         else None)
    except ValidationError as exc:
        return jsonify(error=str(exc)), 422
    return jsonify(conversation_id=result.conversation_id, message_id=result.message_id,
                   duplicate=result.duplicate)


@hookimpl
def register_channels(app: Any) -> list[type]:
    return [WebhookChannel]


@hookimpl
def register_blueprints(app: Any) -> list[Blueprint]:
    return [bp]
