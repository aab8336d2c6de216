"""``ChannelHost``: the runtime's handle a channel gets with its configuration.

Everything a channel may touch of meiqia goes through it: its team and config,
its state store, a logger, HTTP through the SSRF guard, and the Flask app (for
``app_context()``). ``receive(host, ...)`` takes it to know the team and channel.
"""

from __future__ import annotations

import json as jsonlib
import logging
from typing import Any
from urllib.parse import urlencode

from meiqia.channels.state import StateStore


class GatedResponse:
    """The parts of a ``requests`` response channels use."""

    def __init__(self, status: int, headers: dict[str, str], content: bytes, url: str) -> None:
        self.status_code = status
        self.headers = headers
        self.content = content
        self.url = url

    @property
    def ok(self) -> bool:
        return 200 <= self.status_code < 400

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        return jsonlib.loads(self.content.decode("utf-8"))

    def raise_for_status(self) -> None:
        if self.status_code >= 400:
            raise OSError(f"HTTP {self.status_code} from {self.url.split('?', 1)[0]}")


class GatedHTTP:
    """A ``requests``-like session whose every request goes through the one SSRF
    guard (``services/outbound.py``): ``host.outbound_http.post(url, json=...)``,
    ``.get(url, params=...)``, ``.request(method, url, ...)``, or the object
    called as ``host.outbound_http(method, url, ...)``. Redirects are not
    followed; the answer is read up to ``max_response`` bytes. Refused
    destinations raise ``OutboundRefused``, failed connections ``OutboundFailed``.
    Private addresses only where the operator allows them
    (``OUTBOUND_ALLOW_PRIVATE`` / ``OUTBOUND_ALLOWED_NETWORKS``)."""

    def __init__(self, timeout: float = 10.0, max_response: int = 4 * 1024 * 1024) -> None:
        self.timeout = timeout
        self.max_response = max_response

    def request(self, method: str, url: str, *, params: dict | None = None,
                data: bytes | str | dict | None = None, json: Any = None,
                headers: dict[str, str] | None = None,
                timeout: float | None = None) -> GatedResponse:
        from meiqia.services import outbound

        headers = dict(headers or {})
        if params:
            url = url + ("&" if "?" in url else "?") + urlencode(params)
        body: bytes | None
        if json is not None:
            body = jsonlib.dumps(json, ensure_ascii=False).encode("utf-8")
            headers.setdefault("Content-Type", "application/json; charset=utf-8")
        elif isinstance(data, dict):
            body = urlencode(data).encode("ascii")
            headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        elif isinstance(data, str):
            body = data.encode("utf-8")
        else:
            body = data
        status, got, content = outbound.http_request(
            method.upper(), url, body=body, headers=headers,
            timeout=timeout or self.timeout, max_response=self.max_response)
        return GatedResponse(status, got, content, url)

    def get(self, url: str, **kw: Any) -> GatedResponse:
        return self.request("GET", url, **kw)

    def post(self, url: str, **kw: Any) -> GatedResponse:
        return self.request("POST", url, **kw)

    def __call__(self, method: str | None = None, url: str | None = None,
                 **kw: Any) -> Any:
        if method is None:
            return self  # host.outbound_http(): the session itself
        return self.request(method, url or "", **kw)


class ChannelHost:
    """What the runtime gives a channel: ``team_id``, ``channel``, ``config``,
    ``state``, ``log``, ``outbound_http``, ``app``."""

    def __init__(self, app: Any, team_id: int, channel: str, config: dict[str, Any]) -> None:
        self.app = app
        self.team_id = team_id
        self.channel = channel
        self.config = config
        self.state = StateStore(team_id, channel)
        self.log = logging.getLogger(f"meiqia.channels.{channel}")
        self.outbound_http = GatedHTTP()

    def __repr__(self) -> str:  # never the config: it holds secrets
        return f"<ChannelHost team={self.team_id} channel={self.channel}>"
