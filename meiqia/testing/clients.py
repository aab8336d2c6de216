"""A visitor and an agent that speak the real protocol to a real server.

Everything goes over the served port: REST with real HTTP (cookies, the CSRF
header, the visitor token header) and the websockets of docs/protocol.md. So a
plugin's test sees what a browser and the widget would cause: the same
requests, the same hooks on the same threads, the same frames.
"""

from __future__ import annotations

import http.cookiejar
import json
import urllib.error
import urllib.request
import uuid
from typing import Any

from meiqia.testing.api import ADMIN_PASSWORD
from meiqia.testing.api import AGENT_PASSWORD
from meiqia.testing.api import new_client_id
from meiqia.testing.sockets import LiveServer
from meiqia.testing.sockets import Socket


class Response:
    """An HTTP answer: ``status``, ``headers`` and ``json()``."""

    def __init__(self, status: int, headers: Any, body: bytes) -> None:
        self.status = status
        self.status_code = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    get_json = json

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.body[:200]!r}>"


class HttpClient:
    """JSON over real HTTP to ``base_url``, keeping cookies (a browser's session)."""

    def __init__(self, base_url: str, headers: dict[str, str] | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.headers = dict(headers or {})
        self.cookies = http.cookiejar.CookieJar()
        self._opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.cookies))

    def request(self, method: str, path: str, json_body: Any = None,
                headers: dict[str, str] | None = None) -> Response:
        data = None if json_body is None else json.dumps(json_body).encode()
        merged = {**self.headers, **(headers or {})}
        if data is not None:
            merged.setdefault("Content-Type", "application/json")
        req = urllib.request.Request(self.base_url + path, data=data, method=method,
                                     headers=merged)
        try:
            with self._opener.open(req, timeout=30) as answer:
                return Response(answer.status, answer.headers, answer.read())
        except urllib.error.HTTPError as error:
            with error:
                return Response(error.code, error.headers, error.read())

    def get(self, path: str, **kw: Any) -> Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, json: Any = None, **kw: Any) -> Response:  # noqa: A002
        return self.request("POST", path, json if json is not None else {}, **kw)

    def patch(self, path: str, json: Any = None, **kw: Any) -> Response:  # noqa: A002
        return self.request("PATCH", path, json if json is not None else {}, **kw)

    def delete(self, path: str, **kw: Any) -> Response:
        return self.request("DELETE", path, **kw)

    def cookie_header(self) -> str:
        return "; ".join(f"{c.name}={c.value}" for c in self.cookies)


def _ok(response: Response, *codes: int) -> dict[str, Any]:
    if response.status not in (codes or (200,)):
        raise AssertionError(f"unexpected answer: {response!r}")
    return response.json()


class AgentClient(HttpClient):
    """An agent (or admin) logged in over HTTP, with his workspace socket.

    ``agent`` and ``team`` are the login answer's; writes carry the CSRF
    header. ``socket()`` opens ``/ws/agent`` and waits for ``hello`` (frames
    written before it are counted in it, not sent: docs/protocol.md)."""

    def __init__(self, server: LiveServer) -> None:
        super().__init__(f"http://127.0.0.1:{server.port}")
        self.server = server
        self.agent: dict[str, Any] = {}
        self.team: dict[str, Any] = {}
        self.hello: dict[str, Any] | None = None
        self._socket: Socket | None = None

    def _take(self, data: dict[str, Any]) -> None:
        self.headers["X-CSRF-Token"] = data["csrf_token"]
        self.agent, self.team = data["agent"], data["team"]

    def login(self, email: str, password: str) -> AgentClient:
        self._take(_ok(self.post("/api/v1/auth/login",
                                 json={"email": email, "password": password})))
        return self

    def register(self, team_name: str = "测试团队", email: str = "admin@example.com",
                 name: str = "王管理", password: str = ADMIN_PASSWORD) -> AgentClient:
        """Register a new team with this client as its first admin."""
        self._take(_ok(self.post("/api/v1/auth/register", json={
            "team_name": team_name, "name": name, "email": email, "password": password}), 201))
        return self

    def new_agent(self, name: str | None = None, email: str | None = None,
                  **fields: Any) -> AgentClient:
        """Create an agent of this admin's team and return him logged in.

        Without a ``name``, the first free one of 李客服, 李客服2 … (names are unique
        in a team)."""
        email = email or f"agent-{uuid.uuid4().hex[:8]}@example.com"
        for n in range(1, 100):
            chosen = name or ("李客服" if n == 1 else f"李客服{n}")
            response = self.post("/api/v1/agents", json={"name": chosen, "email": email,
                                                         "password": AGENT_PASSWORD, **fields})
            if name or response.status != 409:
                break
        _ok(response, 201)
        return AgentClient(self.server).login(email, AGENT_PASSWORD)

    def set_team_settings(self, **settings: Any) -> dict[str, Any]:
        """``PATCH /api/v1/team`` with these settings (``bot_enabled=False`` …)."""
        return _ok(self.patch("/api/v1/team", json={"settings": settings}))

    def go_online(self) -> AgentClient:
        """Set himself online and open his workspace socket: routing serves only
        agents with a workspace open (docs/protocol.md, "Agent presence")."""
        _ok(self.patch(f"/api/v1/agents/{self.agent['id']}", json={"status": "online"}))
        self.socket()
        return self

    def socket(self) -> Socket:
        """His workspace socket (opened once), after its ``hello``."""
        if self._socket is None:
            self._socket = Socket(self.server.url("/ws/agent"), self.cookie_header())
            self.hello = self._socket.expect("hello", timeout=15)["data"]
        return self._socket

    def expect(self, kind: str, timeout: float = 10.0, where: Any = None) -> dict:
        """The next frame of ``kind`` on his socket (see ``Socket.expect``)."""
        return self.socket().expect(kind, timeout, where)

    def send(self, conversation_id: int, body: str, mode: str = "reply",
             timeout: float = 10.0) -> dict[str, Any]:
        """Send a message over his socket; the ``ack``'s message."""
        cid = new_client_id()
        self.socket().send("message", {"conversation_id": conversation_id, "body": body,
                                       "client_msg_id": cid, "mode": mode})
        frame = self.expect("ack", timeout, where=lambda d: d["client_msg_id"] == cid)
        return frame["data"]["message"]

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


class VisitorClient(HttpClient):
    """A widget visitor: a session over HTTP, then his socket.

    ``start()`` is ``POST /api/v1/widget/session`` (``token``,
    ``conversation_id``); ``send()`` writes over ``/ws/visitor`` and returns the
    stored message from its ``ack``; ``expect()`` waits for a frame (the bot's
    answer is a ``message`` with ``sender_kind`` ``bot``)."""

    def __init__(self, server: LiveServer, team_id: int, lang: str = "zh-CN") -> None:
        super().__init__(f"http://127.0.0.1:{server.port}", {"X-Meiqia-Lang": lang})
        self.server = server
        self.team_id = team_id
        self.token = ""
        self.conversation_id = 0
        self.session: dict[str, Any] = {}
        self.hello: dict[str, Any] | None = None
        self._socket: Socket | None = None

    def start(self, **fields: Any) -> VisitorClient:
        """Start the session; ``fields``: ``name``, ``phone``, ``email``, ``custom``…"""
        self.session = _ok(self.post("/api/v1/widget/session",
                                     json={"team_id": self.team_id, **fields}))
        self.token = self.session["token"]
        self.headers["X-Visitor-Token"] = self.token
        self.conversation_id = self.session["conversation"]["conversation_id"]
        return self

    def socket(self) -> Socket:
        """His socket (opened once, after ``start``), after its ``hello``."""
        if not self.token:
            self.start()
        if self._socket is None:
            self._socket = Socket(self.server.url(f"/ws/visitor?token={self.token}"))
            self.hello = self._socket.expect("hello", timeout=15)["data"]
        return self._socket

    def expect(self, kind: str, timeout: float = 10.0, where: Any = None) -> dict:
        """The next frame of ``kind`` on his socket (see ``Socket.expect``)."""
        return self.socket().expect(kind, timeout, where)

    def send(self, body: str, timeout: float = 10.0) -> dict[str, Any]:
        """Send a message over his socket; the ``ack``'s message (or an
        AssertionError with the ``error`` frame the server sent instead)."""
        cid = new_client_id()
        sock = self.socket()
        sock.send("message", {"body": body, "client_msg_id": cid})
        frame = sock.expect("ack", timeout, where=lambda d: d["client_msg_id"] == cid)
        return frame["data"]["message"]

    def bot_reply(self, timeout: float = 10.0) -> dict[str, Any]:
        """The bot's next message to him (its ``data``)."""
        return self.expect("message", timeout,
                           where=lambda d: d.get("sender_kind") == "bot")["data"]

    def ask_for_human(self) -> None:
        """The widget's 转人工 button (``human`` frame)."""
        self.socket().send("human", {})

    def messages(self) -> list[dict[str, Any]]:
        """His conversation's messages over REST."""
        return _ok(self.get(f"/api/v1/widget/conversations/{self.conversation_id}/messages")
                   )["messages"]

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None
