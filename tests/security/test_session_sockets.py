"""Issue 15, item 3, to the end: an agent socket does not outlive its session.

The attack: a stolen cookie (or a token) opens ``/ws/agent``; the owner logs out,
signs out everywhere, changes his password or revokes the token, and the socket
the attacker holds would go on streaming every conversation of the team. The
socket must close at once (``unauthorized`` error frame, then close code 1008),
while sockets of sessions that are still live stay open.
"""

from __future__ import annotations

from typing import Any

import simple_websocket

from tests.helpers import ADMIN_PASSWORD
from tests.helpers import ApiClient
from tests.security.test_socket_origin import served  # noqa: F401 - the fixture
from tests.ws.conftest import Socket
from tests.ws.conftest import cookie_of


def closed_for_its_session(sock: Socket, timeout: float = 5.0) -> bool:
    frame = sock.expect("error", timeout, where=lambda d: d["code"] == "unauthorized")
    assert "session has ended" in frame["data"]["message"]
    try:
        sock.ws.receive(timeout=2)  # the close frame follows
    except simple_websocket.ConnectionClosed as closed:
        assert closed.reason == 1008, closed
    return not sock.ws.connected


def second_browser(admin: ApiClient) -> ApiClient:
    other = ApiClient(admin.app)
    assert other.login("admin@example.com", ADMIN_PASSWORD).status_code == 200
    return other


def test_logout_closes_the_agent_socket_of_that_session_only(served):  # noqa: F811
    server, admin = served()
    other = second_browser(admin)
    mine = Socket(server.url("/ws/agent"), cookie_of(admin))
    theirs = Socket(server.url("/ws/agent"), cookie_of(other))
    mine.expect("hello")
    theirs.expect("hello")
    try:
        assert other.post("/api/v1/auth/logout", json={}).status_code == 200
        assert closed_for_its_session(theirs)
        # The other browser's session ended, not this one: this socket stays.
        assert mine.quiet("error", 1.0)
        mine.send("ping")
        mine.expect("pong")
    finally:
        mine.close()
        theirs.close()


def test_sign_out_everywhere_closes_every_agent_socket(served):  # noqa: F811
    server, admin = served()
    other = second_browser(admin)
    sockets = [Socket(server.url("/ws/agent"), cookie_of(client)) for client in (admin, other)]
    for sock in sockets:
        sock.expect("hello")
    try:
        response = admin.post("/api/v1/auth/sessions/end-all", json={})
        assert response.status_code == 200, response.get_json()
        for sock in sockets:
            assert closed_for_its_session(sock)
    finally:
        for sock in sockets:
            sock.close()


def test_a_password_change_closes_the_sockets_of_older_sessions(served):  # noqa: F811
    server, admin = served()
    other = second_browser(admin)
    stolen = Socket(server.url("/ws/agent"), cookie_of(other))
    stolen.expect("hello")
    try:
        response = admin.patch(f"/api/v1/agents/{admin.agent['id']}",
                               json={"password": "a-new-pass-2",
                                     "current_password": ADMIN_PASSWORD})
        assert response.status_code == 200, response.get_json()
        assert closed_for_its_session(stolen)
    finally:
        stolen.close()


def test_a_revoked_token_closes_its_socket(served):  # noqa: F811
    server, admin = served()
    made = admin.post("/api/v1/tokens", json={"name": "集成", "scope": "conversations"})
    assert made.status_code in (200, 201), made.get_json()
    token = made.get_json()
    from tests.ws.conftest import Client

    class TokenSocket(Socket):
        def __init__(self, url: str, bearer: str) -> None:
            self.ws = Client.connect(url, headers={"Authorization": f"Bearer {bearer}"})
            self.seen: list[dict[str, Any]] = []
            Socket.opened.append(self)

    sock = TokenSocket(server.url("/ws/agent"), token["token"])
    sock.expect("hello")
    try:
        assert admin.delete(f"/api/v1/tokens/{token['id']}").status_code in (200, 204)
        assert closed_for_its_session(sock)
    finally:
        sock.close()
