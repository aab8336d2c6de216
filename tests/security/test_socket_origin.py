"""Issue 15, item 2: cross-site websocket hijacking of /ws/agent.

The attack: a page on another origin (or a sibling subdomain, which SameSite=Lax
does not stop) opens ``/ws/agent``; the browser adds the agent's session cookie,
and the socket would hand the page every conversation of the team. The
handshake must be refused (403, no upgrade) unless Origin is the instance's own
or listed in ALLOWED_ORIGINS.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from tests.api.test_conversations import start
from tests.conftest import close_app
from tests.conftest import make_app
from tests.helpers import ApiClient
from tests.ws.conftest import Client
from tests.ws.conftest import LiveServer
from tests.ws.conftest import Socket
from tests.ws.conftest import cookie_of

EVIL = ("https://evil.example", "null", "http://127.0.0.1.evil.example",
        "https://cs.example.com.evil.example", "file://")


@pytest.fixture
def served(tmp_path) -> Iterator[Any]:
    """``served(**config)``: an app on a real server, and its registered admin."""
    opened: list[tuple[Any, LiveServer]] = []

    def serve(**config: Any) -> tuple[LiveServer, ApiClient]:
        app = make_app(tmp_path / str(len(opened)), **config)
        server = LiveServer(app)
        opened.append((app, server))
        with app.app_context():
            return server, ApiClient.registered(app)

    yield serve
    for app, server in opened:
        server.stop()
        close_app(app)


def raw_handshake(server: LiveServer, path: str, headers: dict[str, str]) -> str:
    """The status line the server answers a browser-like handshake with."""
    lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{server.port}",
             "Upgrade: websocket", "Connection: Upgrade",
             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as conn:
        conn.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        return conn.recv(4096).decode("latin-1").split("\r\n", 1)[0]


def hello(server: LiveServer, path: str, headers: dict[str, str]) -> dict:
    ws = Client.connect(server.url(path), headers=headers)
    try:
        raw = ws.receive(timeout=5)
        assert raw is not None, "no frame"
        return json.loads(raw)
    finally:
        ws.close()


def test_a_foreign_origin_with_the_session_cookie_is_refused(served):
    server, admin = served()
    cookie = cookie_of(admin)
    for origin in EVIL:
        status = raw_handshake(server, "/ws/agent", {"Origin": origin, "Cookie": cookie})
        assert status.split()[1] == "403", (origin, status)
    # The instance's own origin (as a browser sends Host and Origin): upgraded.
    own = f"http://127.0.0.1:{server.port}"
    status = raw_handshake(server, "/ws/agent", {"Origin": own, "Cookie": cookie})
    assert status.split()[1] == "101", status
    # No Origin at all: not a browser, nothing to hijack.
    assert hello(server, "/ws/agent", {"Cookie": cookie})["type"] == "hello"


def test_allowed_origins_and_a_proxy_that_rewrites_host(served):
    server, admin = served(ALLOWED_ORIGINS=["https://cs.example.com"])
    cookie = cookie_of(admin)
    assert hello(server, "/ws/agent", {"Origin": "https://cs.example.com",
                                       "Cookie": cookie})["type"] == "hello"
    forwarded = {"Origin": "https://chat.example.org", "X-Forwarded-Host": "chat.example.org",
                 "Cookie": cookie}
    # X-Forwarded-Host is believed only when the operator says a proxy sets it.
    assert raw_handshake(server, "/ws/agent", forwarded).split()[1] == "403"
    trusting, admin2 = served(TRUST_FORWARDED_HOST=True)
    forwarded["Cookie"] = cookie_of(admin2)
    assert hello(trusting, "/ws/agent", forwarded)["type"] == "hello"


def test_a_token_socket_without_the_cookie_is_no_hijacking_vector(served):
    """Authenticated by an API token a foreign page cannot borrow: any Origin may
    open it; the token's scope must cover the socket's work (conversations)."""
    server, admin = served()
    with server.server.app.app_context():
        work = admin.post("/api/v1/tokens", json={"name": "坐席集成",
                                                  "scope": "conversations"}).get_json()
        read = admin.post("/api/v1/tokens", json={"name": "只读"}).get_json()
    frame = hello(server, "/ws/agent", {"Origin": "https://crm.example.net",
                                        "Authorization": f"Bearer {work['token']}"})
    assert frame["type"] == "hello"
    refused = Socket(server.url(f"/ws/agent?api_token={read['token']}"))
    try:
        assert refused.expect("error")["data"]["code"] == "forbidden"
    finally:
        Socket.close_all()


def test_the_visitor_socket_opens_from_any_origin(served):
    """The widget runs on the team's own sites: the visitor token, which the page
    must hold, is the credential, never a cookie."""
    server, admin = served()
    app = server.server.app
    with app.app_context():
        _, token, _, _ = start(app, admin.team["id"])
    frame = hello(server, f"/ws/visitor?token={token}",
                  {"Origin": "https://shop.example.net", "Cookie": cookie_of(admin)})
    assert frame["type"] == "hello"


def test_the_refusal_needs_no_server(api):
    """The check runs before the upgrade, in a before_request hook: a plain request
    gets the 403 too (what a proxy in front would see)."""
    response = api.client.get("/ws/agent", headers={"Origin": "https://evil.example"})
    assert response.status_code == 403
