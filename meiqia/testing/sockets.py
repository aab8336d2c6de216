"""A real server on a free port in a thread, and websocket clients against it.

Moved here from tests/ws/conftest.py (which imports them) so plugin authors'
tests speak the real protocol over a real port, as meiqia's own suite does.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import simple_websocket
from werkzeug.serving import make_server
from wsproto.utilities import LocalProtocolError


class LiveServer:
    def __init__(self, app: Any) -> None:
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        # Open websockets must not keep the test process alive at exit.
        self.server.daemon_threads = True
        self.port = self.server.server_port
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    def http(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join(timeout=5)


class Client(simple_websocket.Client):
    """simple-websocket's client without its lost-first-frame race.

    Its handshake reads up to 4 KB and takes only the first event (the 101
    response). When the server's first frame (our ``hello``) arrives in the same
    read, which happens when the machine is busy, that frame stays parsed-but-
    unread in wsproto's buffer, and the reader thread only looks there after the
    next bytes arrive: the test waits for a ``hello`` that came long ago (the
    "no 'hello' frame within 5.0s" flake). Handling the buffered events right
    after the handshake, before the reader thread starts, delivers it.
    """

    def handshake(self) -> None:
        super().handshake()
        if not self._handle_events():
            # The server said all it had to say and closed, in that same read (an
            # error frame, then the close: a refused token). Stay "connected" so
            # the reader thread starts and sees the end of the stream; what came
            # before the close stays readable.
            self.connected = True


class Socket:
    """A websocket client that reads envelopes with a deadline."""

    opened: list[Socket] = []

    def __init__(self, url: str, cookie: str | None = None) -> None:
        headers = {"Cookie": cookie} if cookie else None
        self.ws = Client.connect(url, headers=headers)
        self.seen: list[dict] = []
        Socket.opened.append(self)

    @classmethod
    def close_all(cls) -> None:
        while cls.opened:
            cls.opened.pop().close()

    def saw(self, kind: str, where: Any = None) -> dict | None:
        """A matching frame already read (e.g. while waiting for another)."""
        for frame in self.seen:
            if frame["type"] == kind and (where is None or where(frame["data"])):
                return frame
        return None

    def send(self, kind: str, data: dict | None = None) -> None:
        self.ws.send(json.dumps({"type": kind, "data": data or {}}, ensure_ascii=False))

    def expect(self, kind: str, timeout: float = 5.0, where: Any = None) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            raw = self.ws.receive(timeout=max(0.01, deadline - time.monotonic()))
            if raw is None:
                continue
            frame = json.loads(raw)
            self.seen.append(frame)
            if frame["type"] == kind and (where is None or where(frame["data"])):
                return frame
        raise AssertionError(f"no {kind!r} frame within {timeout}s; saw "
                             f"{[f['type'] for f in self.seen]}")

    def quiet(self, kind: str, seconds: float = 0.5, where: Any = None) -> bool:
        """True if no matching frame arrives within ``seconds``."""
        try:
            self.expect(kind, seconds, where)
        except AssertionError:
            return True
        return False

    def close(self) -> None:
        try:
            self.ws.close()
        except (simple_websocket.ConnectionClosed, OSError, LocalProtocolError):
            # The server closed first and the client's reader thread already
            # closed the socket: simple-websocket's close() then races it (and
            # wsproto refuses a second close frame: "cannot be sent in state
            # LOCAL_CLOSING").
            pass


def cookie_of(api_client: Any) -> str:
    jar = api_client.client._cookies
    return "; ".join(f"{c.key}={c.value}" for c in jar.values())
