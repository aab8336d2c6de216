"""Built-in ticket sink: a signed JSON webhook.

The body is signed with HMAC-SHA256 over ``"<timestamp>.<body>"`` with the
admin's secret: headers ``X-Meiqia-Timestamp`` and ``X-Meiqia-Signature:
sha256=<hex>``. Redirects are not followed. The host is resolved once, every
address is checked (no private, loopback, link-local, reserved or multicast
addresses unless the admin allows them), and the connection goes to the checked
address, so a DNS answer cannot change between the check and the request.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import ipaddress
import json
import socket
import time
from typing import Any
from urllib.parse import urlparse

from meiqia.hookspecs import hookimpl

TIMEOUT = 10
#: The receiver's answer is read only this far (it is not used, only drained).
MAX_RESPONSE = 64 * 1024


class WebhookRefused(ValueError):
    """The URL points somewhere a webhook may not go."""


def sign(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def refused_reason(address: str) -> str | None:
    """Why a webhook may not connect to ``address`` (None: a public address)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for name in ("loopback", "private", "link_local", "reserved", "multicast", "unspecified"):
        if getattr(ip, f"is_{name}"):
            return name.replace("_", "-")
    if not ip.is_global:  # shared address space (100.64/10), documentation ranges…
        return "non-public"
    return None


def resolve_public(host: str, port: int, allow_private: bool) -> str:
    """The address to connect to, after checking every address the host has.

    The caller connects to exactly this address, so a second DNS answer (DNS
    rebinding) cannot send the request somewhere that was not checked.
    """
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as exc:
        raise WebhookRefused(f"cannot resolve {host}: {exc}") from exc
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    if not addresses:
        raise WebhookRefused(f"{host} has no address")
    if not allow_private:
        for address in addresses:
            reason = refused_reason(address)
            if reason:
                raise WebhookRefused(
                    f"{host} resolves to {address}, a {reason} (private) address: allow "
                    "private addresses in the sink settings if this is intended")
    return addresses[0]


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, host: str, address: str, port: int, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host: str, address: str, port: int, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        raw = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(raw, server_hostname=self.host)


class WebhookSink:
    type = "webhook"
    name = "Webhook (JSON, HMAC-SHA256 signed)"

    @staticmethod
    def configuration_schema() -> dict[str, Any]:
        return {
            "type": "object",
            "required": ["url", "secret"],
            "additionalProperties": False,
            "properties": {
                "url": {"type": "string", "title": "地址 URL", "maxLength": 500,
                        "pattern": r"^https?://"},
                "secret": {"type": "string", "title": "签名密钥 Signing secret", "minLength": 16,
                           "maxLength": 200},
                "allow_private_addresses": {"type": "boolean",
                                            "title": "允许内网地址 Allow private and "
                                                     "loopback addresses"},
            },
            "secret": ["secret"],
        }

    @staticmethod
    def validate_config(config: dict[str, Any]) -> None:
        from meiqia.services.errors import ValidationError

        try:
            parsed = urlparse(config["url"])
            port = parsed.port or (443 if parsed.scheme == "https" else 80)
        except ValueError as exc:
            raise ValidationError(f"config.url: {exc}", "config.url") from exc
        if not parsed.hostname:
            raise ValidationError("config.url: needs a host", "config.url")
        if parsed.username or parsed.password:
            raise ValidationError("config.url: no user or password in the URL; sign with "
                                  "the secret instead", "config.url")
        try:
            resolve_public(parsed.hostname, port, bool(config.get("allow_private_addresses")))
        except WebhookRefused as exc:
            raise ValidationError(f"config.url: {exc}", "config.url") from exc

    def _post(self, payload: dict[str, Any], config: dict[str, Any]) -> None:
        parsed = urlparse(config["url"])
        https = parsed.scheme == "https"
        port = parsed.port or (443 if https else 80)
        address = resolve_public(parsed.hostname or "", port,
                                 bool(config.get("allow_private_addresses")))
        body = json.dumps(payload, ensure_ascii=False).encode()
        timestamp = str(int(time.time()))
        conn_class = _PinnedHTTPSConnection if https else _PinnedHTTPConnection
        conn = conn_class(parsed.hostname or "", address, port, TIMEOUT)
        path = (parsed.path or "/") + (f"?{parsed.query}" if parsed.query else "")
        try:
            conn.request("POST", path, body=body, headers={
                "Content-Type": "application/json; charset=utf-8",
                "User-Agent": "meiqia-webhook/1",
                "X-Meiqia-Event": payload["event"],
                "X-Meiqia-Timestamp": timestamp,
                "X-Meiqia-Signature": sign(config["secret"], timestamp, body),
            })
            response = conn.getresponse()
            response.read(MAX_RESPONSE)
        finally:
            conn.close()
        if 300 <= response.status < 400:
            raise RuntimeError(f"webhook answered HTTP {response.status} (a redirect to "
                               f"{response.getheader('Location', '?')}); redirects are not "
                               "followed: set the final URL")
        if not 200 <= response.status < 300:
            raise RuntimeError(f"webhook answered HTTP {response.status}")

    def create_ticket(self, ticket: dict[str, Any], config: dict[str, Any]) -> None:
        self._post(ticket, config)

    def update_ticket(self, ticket: dict[str, Any], config: dict[str, Any],
                      changes: dict[str, Any]) -> None:
        self._post(ticket, config)


@hookimpl
def register_ticket_sinks(app: Any) -> list[type]:
    return [WebhookSink]
