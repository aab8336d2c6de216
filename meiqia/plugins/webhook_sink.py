"""Built-in ticket sink: a signed JSON webhook.

The body is signed with HMAC-SHA256 over ``"<timestamp>.<body>"`` with the
admin's secret: headers ``X-Meiqia-Timestamp`` and ``X-Meiqia-Signature:
sha256=<hex>``. The request goes through ``services.outbound`` (the SSRF gate of
every outbound connection): no private, loopback, link-local, reserved or
multicast address unless the instance's operator allows private networks, the
checked address is the one connected to, redirects are not followed. The
delivery's idempotency key goes in the ``Idempotency-Key`` header.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

from meiqia.hookspecs import hookimpl
from meiqia.services import outbound

TIMEOUT = 10
#: The receiver's answer is read only this far (it is not used, only drained).
MAX_RESPONSE = 64 * 1024


def sign(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


class WebhookSink:
    type = "webhook"
    name = {"zh-CN": "Webhook（JSON，HMAC-SHA256 签名）", "en": "Webhook (JSON, HMAC-SHA256 signed)"}

    @staticmethod
    def configuration_schema() -> dict[str, Any]:
        return {
            "type": "object",
            "required": ["url", "secret"],
            "additionalProperties": False,
            "properties": {
                "url": {"type": "string", "title": {"zh-CN": "地址", "en": "URL"},
                        "maxLength": 500, "pattern": r"^https?://"},
                "secret": {"type": "string", "minLength": 16, "maxLength": 200,
                           "title": {"zh-CN": "签名密钥", "en": "Signing secret"}},
            },
            "secret": ["secret"],
        }

    @staticmethod
    def validate_config(config: dict[str, Any]) -> None:
        from meiqia.services.errors import ValidationError
        from meiqia.services.validation import http_url

        # The one URL check (a bad port, host or bracket, a user name: a 422 in the
        # admin's words, never urllib's), then the SSRF gate for its address.
        http_url(config["url"], "config.url")
        try:
            outbound.check_url(config["url"])
        except outbound.OutboundRefused as exc:
            raise ValidationError(f"config.url: {exc}", "config.url") from exc

    def _post(self, payload: dict[str, Any], config: dict[str, Any]) -> None:
        body = json.dumps(payload, ensure_ascii=False).encode()
        timestamp = str(int(time.time()))
        status, headers, _ = outbound.http_request("POST", config["url"], body=body, headers={
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "meiqia-webhook/1",
            "X-Meiqia-Event": payload["event"],
            "X-Meiqia-Timestamp": timestamp,
            "X-Meiqia-Signature": sign(config["secret"], timestamp, body),
            # The same on every attempt of one delivery: the receiver drops a repeat
            # (a job runs at least once; docs/plugins.md "Ticket sinks").
            **({"Idempotency-Key": payload["idempotency_key"]}
               if payload.get("idempotency_key") else {}),
        }, timeout=TIMEOUT, max_response=MAX_RESPONSE)
        if 300 <= status < 400:
            raise RuntimeError(f"webhook answered HTTP {status} (a redirect to "
                               f"{headers.get('location', '?')}); redirects are not "
                               "followed: set the final URL")
        if not 200 <= status < 300:
            raise RuntimeError(f"webhook answered HTTP {status}")

    def create_ticket(self, ticket: dict[str, Any], config: dict[str, Any]) -> None:
        self._post(ticket, config)

    def update_ticket(self, ticket: dict[str, Any], config: dict[str, Any],
                      changes: dict[str, Any]) -> None:
        self._post(ticket, config)


@hookimpl
def register_ticket_sinks(app: Any) -> list[type]:
    return [WebhookSink]
