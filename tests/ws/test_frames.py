"""Frames stay whole when the server is blocked writing to a slow reader.

Found by the load benchmark: a client that read slowly and sent pings saw
corrupted frames ("reserved bits must be 0"). simple-websocket answers a ping
from its reader thread with a bare ``socket.send`` while our thread may be in
the middle of ``sendall`` of a large frame; the pong's bytes then land inside
that frame. This test makes it happen on purpose: a raw client with a tiny
receive buffer stops reading while the server pushes large messages at it,
sends pings meanwhile, then reads everything and parses it strictly.
"""

from __future__ import annotations

import socket
import threading

from wsproto import ConnectionType
from wsproto import WSConnection
from wsproto.events import AcceptConnection
from wsproto.events import Ping
from wsproto.events import Pong
from wsproto.events import Request
from wsproto.events import TextMessage
from wsproto.utilities import LocalProtocolError

from tests.api.test_conversations import start
from tests.api.test_conversations import vpost
from tests.ws.conftest import cookie_of

MESSAGES = 60
BODY = "慢读的客户端" * 800  # 4,800 characters, ~14 KB per frame
PINGS = 30


def _connect(port: int, cookie: str) -> tuple[socket.socket, WSConnection]:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    ws = WSConnection(ConnectionType.CLIENT)
    sock.sendall(ws.send(Request(host="127.0.0.1", target="/ws/agent",
                                 extra_headers=[(b"cookie", cookie.encode())])))
    accepted, hello = False, ""
    while True:
        ws.receive_data(sock.recv(65536))
        for event in ws.events():
            accepted = accepted or isinstance(event, AcceptConnection)
            if isinstance(event, TextMessage):
                hello += event.data
                # Live messages follow ``hello`` (its lists carry each last_seq, the
                # socket's starting point: docs/protocol.md, "Positions and resume").
                if event.message_finished and '"hello"' in hello:
                    return sock, ws


def test_a_slow_reader_sending_pings_gets_whole_frames(api, live):
    api.patch("/api/v1/team", json={"settings": {"bot_enabled": False}})
    li = api.new_agent(max_concurrent=3)
    li.go_online()
    client, token, cid, _ = start(api.app, api.team["id"], name="慢读测试")
    sock, ws = _connect(live.port, cookie_of(li))

    def visitor_writes() -> None:
        for n in range(MESSAGES):
            response = vpost(client, token, f"/api/v1/widget/conversations/{cid}/messages",
                             json={"body": f"{n}:{BODY}", "client_msg_id": f"slow-{n}"})
            assert response.status_code in (200, 201), response.get_json()

    writer = threading.Thread(target=visitor_writes)
    writer.start()
    # Not reading: the server's sendall blocks on the full buffers, and the pings
    # make its reader thread write pongs meanwhile.
    pings = 0
    while writer.is_alive() or pings < PINGS:
        sock.sendall(ws.send(Ping(payload=f"p{pings}".encode())))
        pings += 1
        writer.join(0.01)

    bodies: list[str] = []
    pongs = 0
    partial = ""
    sock.settimeout(10)
    try:
        while len({b.split(BODY)[0] for b in bodies}) < MESSAGES or pongs < pings:
            data = sock.recv(65536)
            assert data, "the server closed the socket"
            ws.receive_data(data)
            for event in ws.events():
                if isinstance(event, TextMessage):
                    partial += event.data  # wsproto hands out a message in parts
                    if event.message_finished:
                        if BODY in partial:
                            bodies.append(partial)
                        partial = ""
                elif isinstance(event, Pong):
                    pongs += 1
    except LocalProtocolError as exc:  # pragma: no cover - the bug this test guards
        raise AssertionError(f"corrupted frame after {len(bodies)} messages: {exc}") from exc
    except TimeoutError as exc:
        raise AssertionError(f"{len(bodies)} messages, {pongs} pongs") from exc
    finally:
        sock.close()
    assert pongs == pings
    assert {body.split(BODY)[0].rsplit('"', 1)[-1] for body in bodies} == {
        f"{n}:" for n in range(MESSAGES)}


def test_a_handler_that_fails_closes_the_socket_with_1011(app):
    """An exception after the upgrade must not become an HTTP 500 in the stream."""
    import simple_websocket
    from flask import Blueprint

    from meiqia.web.ws import _contained
    from meiqia.web.ws import sock
    from tests.ws.conftest import LiveServer

    bp = Blueprint("boom", __name__)

    @sock.route("/ws/_boom", bp=bp)
    @_contained
    def boom(ws):
        ws.send('{"type": "hello", "data": {}}')
        raise RuntimeError("the database pool ran dry")

    app.register_blueprint(bp)
    server = LiveServer(app)
    try:
        client = simple_websocket.Client.connect(server.url("/ws/_boom"))
        assert client.receive(timeout=10) == '{"type": "hello", "data": {}}'
        try:
            while client.receive(timeout=10) is not None:
                pass
        except simple_websocket.ConnectionClosed as closed:
            assert closed.reason == 1011
        else:  # pragma: no cover - the failure this test guards against
            raise AssertionError("the socket was not closed")
    finally:
        server.stop()
