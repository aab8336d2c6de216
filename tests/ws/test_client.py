"""The test client itself: a frame that arrives with the handshake is not lost.

tests/ws/test_lifecycle.py::test_visitor_asks_for_a_human_over_the_socket
failed under load with "no 'hello' frame within 5.0s": the server had sent
``hello`` at once, and on a busy machine it reached the client in the same TCP
read as the 101 response, where simple-websocket's client leaves it unread.
This server always sends the two in one write, so the race is not left to luck.
"""

from __future__ import annotations

import socket
import threading

import simple_websocket
from wsproto import ConnectionType
from wsproto import WSConnection
from wsproto.events import AcceptConnection
from wsproto.events import Request
from wsproto.events import TextMessage

from tests.ws.conftest import Socket


def _bundling_server() -> tuple[int, threading.Event]:
    """A one-shot server that writes the 101 response and a hello frame together."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    done = threading.Event()

    def serve() -> None:
        conn, _ = listener.accept()
        ws = WSConnection(ConnectionType.SERVER)
        while not any(isinstance(e, Request) for e in ws.events()):
            ws.receive_data(conn.recv(65536))
        conn.sendall(ws.send(AcceptConnection())
                     + ws.send(TextMessage(data='{"type": "hello", "data": {}}')))
        done.wait(10)
        conn.close()
        listener.close()

    threading.Thread(target=serve, daemon=True).start()
    return listener.getsockname()[1], done


def test_the_plain_library_client_loses_it():
    """Why tests/ws/conftest.py has its own Client (if this starts failing,
    simple-websocket fixed the race and the subclass can go)."""
    port, done = _bundling_server()
    client = simple_websocket.Client.connect(f"ws://127.0.0.1:{port}/")
    try:
        assert client.receive(timeout=0.5) is None
    finally:
        client.close()  # before the server closes: its reader thread would close first
        done.set()


def test_a_frame_bundled_with_the_101_response_is_received():
    port, done = _bundling_server()
    socket_ = Socket(f"ws://127.0.0.1:{port}/")
    try:
        assert socket_.expect("hello", timeout=5)["data"] == {}
    finally:
        socket_.close()
        done.set()


def test_an_error_and_close_bundled_with_the_101_response_are_received():
    """A refused token: the server answers the upgrade, an error frame and a close
    at once. The error must be readable, and nothing may leak."""
    from wsproto.events import CloseConnection

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def serve() -> None:
        conn, _ = listener.accept()
        ws = WSConnection(ConnectionType.SERVER)
        while not any(isinstance(e, Request) for e in ws.events()):
            ws.receive_data(conn.recv(65536))
        conn.sendall(ws.send(AcceptConnection())
                     + ws.send(TextMessage(data='{"type": "error", "data": {"code": "x"}}'))
                     + ws.send(CloseConnection(code=1000)))
        conn.close()
        listener.close()

    threading.Thread(target=serve, daemon=True).start()
    socket_ = Socket(f"ws://127.0.0.1:{listener.getsockname()[1]}/")
    try:
        assert socket_.expect("error", timeout=5)["data"] == {"code": "x"}
    finally:
        socket_.close()
