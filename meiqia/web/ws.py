"""Websockets (DESIGN §5): ``/ws/visitor`` and ``/ws/agent``.

Envelopes are ``{"type", "id", "ts", "data"}`` (docs/protocol.md). On connect a
client names the position it has (``?after_seq=``, the highest message ``seq`` it
received); it first gets every later message from the database, then live
events from the hub. Message frames go out through the socket's
``delivery.Stream``, which keeps each conversation in seq order and sends
nothing twice, so nothing is lost or repeated across reconnects, restarts or a
switch of process.

Each socket has one thread (a greenlet under gevent) for as long as it is open,
which reads client frames from the socket itself (no simple-websocket reader
thread, ``_receive``): under gevent a small greenlet of the socket's own that
takes over once ``hello`` and the replay are sent, after which the request
returns (``_contained``, ``detached_sockets``); without gevent, or with
``WS_SERVE_AFTER_REQUEST`` false, the request's own. A pump thread exists
only while hub events wait for the socket (``_Pump``); writes share a lock. A hub event's
frame is encoded once per process, however many sockets send it
(``hub.SharedData``). The visitor socket subscribes only to its conversation
topic, where internal notes are never published.

Connecting takes a database turn (``socket_unit``); a socket that cannot get one
(a connect storm, the database down) gets ``unavailable`` with
``retry_after_ms`` and close 1013, never 1011 (docs/protocol.md, "Outages").

When the hub reports a gap (Redis down, a listener reconnected, a process
killed between commit and publish, a queue overflow: meiqia/hub.py), the pump
calls ``resync``: the socket replays from the database what it may have missed,
with the same replay as ``after=`` at connect, and carries on live.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import json
import logging
import queue
import random
import threading
import time
from collections.abc import Callable
from collections.abc import Iterator
from typing import Any

import peewee
from flask import Flask
from flask import current_app
from flask import request
from flask_sock import Sock
from playhouse.pool import MaxConnectionsExceeded
from simple_websocket import ConnectionClosed

from meiqia import embedded_server
from meiqia import metrics
from meiqia.db import connection
from meiqia.db import find_by_id
from meiqia.db import get_by_id
from meiqia.db import snapshot_reads
from meiqia.db import spend_wait
from meiqia.failure_log import FailureLog
from meiqia.failure_log import first_line
from meiqia.hub import RESYNC
from meiqia.hub import SharedData
from meiqia.models import Agent
from meiqia.models import Conversation
from meiqia.models import Mention
from meiqia.models.base import utcnow
from meiqia.plugin_runtime import privacy
from meiqia.services import conversations
from meiqia.services import delivery
from meiqia.services import messages
from meiqia.services import permissions
from meiqia.services import presence
from meiqia.services import safe_json
from meiqia.services import visitor_privacy
from meiqia.services.errors import ServiceError
from meiqia.services.validation import INT_MAX
from meiqia.services.validation import INT_MIN
from meiqia.services.validation import check
from meiqia.web import detached_sockets
from meiqia.web import error_text
from meiqia.web import i18n
from meiqia.web import security

log = logging.getLogger(__name__)
sock = Sock()

#: Largest client frame accepted (bytes of UTF-8); bigger ones get an error frame.
MAX_FRAME = 64 * 1024
#: Largest client message simple-websocket reads at all (it counts characters of a
#: text message): past it, it closes the socket with 1009 before we see the frame,
#: so a client cannot make the server buffer a message of any size.
MAX_READ = MAX_FRAME * 4
#: Deepest nesting of a client frame (the envelope counts as one level).
MAX_DEPTH = safe_json.MAX_DEPTH
#: Seconds between pings (NAT and proxy idle timeouts).
PING_SECONDS = 25


def init_app(app: Flask) -> None:
    size = app.config.get("WS_DB_CONCURRENCY") or max(2, app.config["DATABASE_POOL_SIZE"] * 3 // 4)
    # gevent's own semaphore under gevent (meiqia/embedded_server.py says why).
    app.extensions["meiqia.ws_gate"] = embedded_server.bounded_semaphore(size)
    # No server-initiated pings: simple_websocket closes a socket (1008) when a pong
    # is late, which under load drops healthy clients. Clients send "ping" frames
    # every PING_SECONDS instead (the widget does), which also keeps NATs open.
    # No reader thread either: the handler reads its socket itself (``_receive``).
    app.config.setdefault("SOCK_SERVER_OPTIONS", {"ping_interval": None,
                                                  "max_message_size": MAX_READ,
                                                  "thread_class": _NoReaderThread})
    sock.init_app(app)
    app.before_request(_decline_compression)


def _decline_compression() -> None:
    """Answer a websocket handshake without permessage-deflate.

    Every browser offers it, and simple-websocket accepts it: each socket then
    keeps a zlib compressor (window 32 KB, memory level 8: about 90 KB resident
    once the ``hello`` is sent) and a decompressor (about 9 KB) for its whole
    life. Measured with 2,050 sockets offering it (``benchmarks/ws_load.py
    --deflate``): 156 KB per socket against 45 KB without, for frames of a few
    hundred bytes that compression barely shortens. The offer is removed before
    the handshake is answered, so the server declines it as RFC 7692 allows and
    the client sends and expects plain frames (the ``ws`` server of Node.js has
    it off by default for the same reason).
    """
    if request.environ.get("HTTP_SEC_WEBSOCKET_EXTENSIONS") and request.path.startswith("/ws/"):
        del request.environ["HTTP_SEC_WEBSOCKET_EXTENSIONS"]


class _NoReaderThread:
    """simple-websocket's ``thread_class`` that starts no thread.

    ``simple_websocket.Base`` always starts a reader thread that reads the socket
    into a buffer the handler then waits on: one more greenlet (and its stack)
    per socket, idle almost always. Our handler does nothing but wait for client
    frames, so it reads the socket itself (``_receive``) and the thread is not
    needed. Pongs and close replies are still answered as they are read.
    """

    name = "simple_websocket.Base._thread (not started)"

    def __init__(self, target: Any = None, **_kw: Any) -> None:
        self.target = target

    def start(self) -> None:
        pass

    def join(self, timeout: float | None = None) -> None:
        pass

    def is_alive(self) -> bool:
        return False


def _receive(ws: Any, timeout: float | None) -> str | bytes | None:
    """The next client message, read in the calling (handler) thread; None after
    ``timeout`` seconds without one. Raises ConnectionClosed when the client
    closed or the connection broke.

    What ``simple_websocket.Base._thread`` does, inline: read, feed wsproto, let
    ``_handle_events`` answer pings and close frames (through ``_SerialSocket``,
    so never inside another frame) and buffer complete messages. The socket's
    timeout also bounds a write blocked on a client that stopped reading: after
    ``timeout`` seconds that write fails and the socket closes as broken.
    """
    from wsproto.utilities import LocalProtocolError

    while True:
        if ws.input_buffer:
            return ws.input_buffer.pop(0)
        if not ws.connected:
            raise ConnectionClosed(ws.close_reason, ws.close_message)
        try:
            ws.sock.settimeout(timeout)
            data = ws.sock.recv(ws.receive_bytes)
        except TimeoutError:
            return None
        except OSError as exc:
            ws.connected = False
            raise ConnectionClosed(1006, str(exc)) from exc
        if not data:
            ws.connected = False
            raise ConnectionClosed(1006, "connection lost")
        try:
            ws.ws.receive_data(data)
            ws.connected = ws._handle_events()
        except (OSError, LocalProtocolError) as exc:
            ws.connected = False
            raise ConnectionClosed(1006, str(exc)) from exc


def _finish(ws: Any, timeout: float = 2.0) -> None:
    """Close the websocket and its TCP socket at the end of a handler, as
    simple-websocket's reader thread did: the close frame (if not sent yet), then,
    unless the client closed first, its answer awaited for at most ``timeout``
    seconds, then the socket. Closing the TCP socket at once could reset the
    connection with the client's last bytes unread, and a reset may lose our close
    frame (its code, e.g. 1013) on the client's side."""
    with contextlib.suppress(Exception):
        if ws.connected:
            if detached_sockets.stopping():
                ws.close(reason=detached_sockets.GOING_AWAY, message="server restarting")
            else:
                ws.close()
    if ws.close_reason == _NO_STATUS_RCVD:  # the client has not closed: wait for it
        ws.connected = True
        deadline = time.monotonic() + timeout
        with contextlib.suppress(Exception):
            while time.monotonic() < deadline:
                _receive(ws, max(0.01, deadline - time.monotonic()))
    ws.connected = False
    with contextlib.suppress(Exception):
        ws.sock.close()


#: simple-websocket's ``close_reason`` until the client's close frame is read.
_NO_STATUS_RCVD = 1005


def envelope(kind: str, data: dict | None = None, msg_id: int | None = None) -> str:
    return json.dumps({"type": kind, "id": msg_id,
                       "ts": utcnow().isoformat(timespec="milliseconds") + "Z",
                       "data": data or {}}, ensure_ascii=False)


class GateBusy(MaxConnectionsExceeded):
    """No database turn within DATABASE_BUSY_TIMEOUT: the database is busy, not
    down (handled as an exhausted pool everywhere, except by ``resync``)."""


_unit_depth = threading.local()


@contextlib.contextmanager
def socket_unit() -> Iterator[None]:
    """A database connection for one unit of socket work, at most
    ``WS_DB_CONCURRENCY`` at a time per process.

    A process holds thousands of sockets and a pool of DATABASE_POOL_SIZE
    connections. Without a bound, a burst of frames makes every socket thread
    wait inside the pool, the pool times out, and frames fail (what the
    2,000-socket benchmark saw). Behind this gate the burst waits in line,
    first come first served (``threading.Semaphore`` and gevent's wake waiters in order),
    and the pool keeps room for HTTP requests. Nested units share the outer
    turn. Waiting longer than DATABASE_BUSY_TIMEOUT raises as an exhausted pool
    does, which the socket answers with an ``unavailable`` error frame.
    """
    depth = getattr(_unit_depth, "value", 0)
    gate = current_app.extensions.get("meiqia.ws_gate") if depth == 0 else None
    started = time.monotonic()
    if gate is not None and not gate.acquire(
            timeout=current_app.config["DATABASE_BUSY_TIMEOUT"]):
        raise GateBusy("too many socket frames are waiting for the database")
    _unit_depth.value = depth + 1
    try:
        with connection():
            if gate is not None:
                # The wait at the gate is the frame's too: what is left of the busy
                # timeout is what it may still wait for a lock (db_wait).
                spend_wait(time.monotonic() - started)
            yield
    finally:
        _unit_depth.value = depth
        if gate is not None:
            gate.release()


class _SerialSocket:
    """A websocket's TCP socket whose writes are whole and never interleave.

    Two threads write to one socket: the hub pump and the frame loop (acks,
    errors, and the answers to pings and close frames, which simple-websocket
    writes with a bare ``socket.send``). A blocked ``sendall`` of a large frame
    (slow reader) lets another thread's bytes land inside the frame, which the
    client sees as a corrupted frame ("reserved bits must be 0"). Every write
    goes through one lock here, and ``send`` writes everything, like ``sendall``.
    """

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self.lock = threading.RLock()

    def send(self, data: bytes, flags: int = 0) -> int:
        with self.lock:
            self._sock.sendall(data, flags)
        return len(data)

    def sendall(self, data: bytes, flags: int = 0) -> None:
        with self.lock:
            self._sock.sendall(data, flags)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def _shed_handshake(ws: Any) -> None:
    """Drop what wsproto keeps of the HTTP handshake once the socket is open.

    ``WSConnection.handshake`` holds its h11 connection (parser, buffers,
    state) for the socket's life although only the websocket connection is used
    after it: 2.5 KB per socket (tracemalloc, 1,000 handshakes), out of about 45.
    """
    conn = getattr(ws, "ws", None)
    handshake = getattr(conn, "handshake", None)
    if handshake is not None and getattr(conn, "connection", None) is not None:
        handshake._h11_connection = None
        handshake._initiating_request = None


#: What a socket's errors are about, for their fields' labels (``error_text.SUBJECT_LABELS``;
#: ``subject_of("/ws/visitor")``).
SUBJECT = "ws"


class Channel:
    """One socket: thread-safe sends; message frames go through ``stream``."""

    def __init__(self, ws: Any, lang: str = "en") -> None:
        self.ws = ws
        #: The language of this socket's error frames (``?lang=`` of its URL, see
        #: ``i18n.error_language``); other frames carry data, not prose.
        self.lang = lang
        if not isinstance(ws.sock, _SerialSocket):
            ws.sock = _SerialSocket(ws.sock)
        _shed_handshake(ws)
        #: Encoding a frame and writing it happen under the socket's own lock, so
        #: wsproto's frame state and the wire see frames in the same order.
        self.lock = ws.sock.lock
        self.closed = threading.Event()
        #: The socket's message frames in order (set once the socket knows what it
        #: may see); ``stream.resume`` / ``stream.catch_up_all`` resync it.
        self.stream: delivery.Stream | None = None
        #: ``visitor`` or ``agent`` (the metrics' label).
        self.kind = "visitor"

    def send(self, kind: str, data: dict | None = None, msg_id: int | None = None) -> None:
        if type(data) is SharedData:
            # The hub's event data, the same object for every socket of this process:
            # encoded once per fan-out (its ``ts`` is the first socket's send time).
            key = (kind, msg_id)
            text = data.frames.get(key)
            if text is None:
                text = data.frames[key] = envelope(kind, data, msg_id)
        else:
            text = envelope(kind, data, msg_id)
        with self.lock:
            try:
                _send_all(self.ws, text)
            except OSError as exc:
                # The client went away mid-write (a broken pipe during a replay): the
                # same as a closed socket, not a server error; it resumes by after_seq.
                raise ConnectionClosed(1006, str(exc)) from exc

    def error(self, code: str, message: str, ref: Any = None) -> None:
        """An ``error`` frame, its message in the socket's language (English
        original as ``message_en`` when translated), code and ref unchanged."""
        self.send("error", error_text.localise(
            {"code": code, "message": message, "ref": ref}, self.lang, SUBJECT))


def _send_all(ws: Any, text: str) -> None:
    """Send one text frame completely (see ``_SerialSocket``)."""
    from wsproto.events import TextMessage

    if not ws.connected:
        raise ConnectionClosed(ws.close_reason, ws.close_message)
    ws.sock.sendall(ws.ws.send(TextMessage(data=text)))


class _Pump:
    """Forwards a socket's hub events, in a thread that exists only while events wait.

    An idle socket has no pump thread: the subscription calls ``wake`` when it
    queues an event (or a resync), which starts one; it drains the queue and ends.
    One blocked pump greenlet per socket, most of them idle, was a third of a
    socket's memory under gevent (issue 19). Events that arrive while the socket
    is still connecting (its replay) wait for ``arm``, so a live frame never
    overtakes ``hello`` or the replay.

    Message events go through the channel's stream (order, once, ack), the others
    as they come. ``shape`` rewrites an event's data first (the visitor socket's
    privacy filter). ``catch_up(since)`` closes a gap the hub found (``resync``); a
    pending resync is served before the next event, so a live event never
    overtakes it.
    """

    __slots__ = ("app", "channel", "sub", "allow", "shape", "catch_up", "lock",
                 "armed", "running", "thread")

    def __init__(self, app: Flask, channel: Channel, sub: Any,
                 allow: Callable[[str, dict], bool],
                 shape: Callable[[dict], dict] | None = None,
                 catch_up: Callable[[float], None] | None = None) -> None:
        self.app, self.channel, self.sub = app, channel, sub
        self.allow, self.shape, self.catch_up = allow, shape, catch_up
        self.lock = threading.Lock()
        self.armed = self.running = False
        self.thread: Any = None  # a thread, or a greenlet under gevent
        sub.notify = self.wake

    def arm(self) -> None:
        """The socket is connected (``hello`` and the replay sent): live events may go."""
        with self.lock:
            self.armed = True
        self.wake()

    def wake(self) -> None:
        """Something was queued: make sure a pump thread is draining (cheap when one is)."""
        with self.lock:
            if self.running or not self.armed or self.channel.closed.is_set():
                return
            if self.sub.queue.empty() and self.sub.resync_since is None:
                return
            self.running = True
            # Started under the lock, so ``stop`` never joins a thread not yet started.
            self.thread = embedded_server.start_worker(self._run)

    def stop(self, timeout: float = 2.0) -> None:
        """Detach from the hub and let a running drain end (``_stop_pump``)."""
        self.channel.closed.set()
        self.sub.close()
        with self.lock:
            thread = self.thread
        if thread is not None and not embedded_server.is_current(thread):
            thread.join(timeout)

    def _run(self) -> None:
        sub, channel = self.sub, self.channel
        with self.app.app_context():
            while True:
                if channel.closed.is_set():
                    with self.lock:
                        self.running = False
                    return
                if self.catch_up is not None and sub.resync_since is not None:
                    try:
                        resync(channel, sub, self.catch_up)
                    except ConnectionClosed:
                        channel.closed.set()
                    continue
                try:
                    item = sub.queue.get_nowait()
                except queue.Empty:
                    with self.lock:
                        # ``wake`` queues before it looks at ``running``: anything put
                        # before this check is seen here, anything after starts a new one.
                        if sub.queue.empty() and (self.catch_up is None
                                                  or sub.resync_since is None):
                            self.running = False
                            return
                    continue
                if item is _STOP or item is RESYNC:
                    continue
                self._forward(*item)

    def _forward(self, topic: str, event: dict) -> None:
        channel = self.channel
        data = event.get("data") or {}
        msg_id = data.get("id") if event.get("type") == "message" else None
        sent = False
        try:
            if not self.allow(topic, event):
                return
            if self.shape is not None:
                data = self.shape(data)
            if "reasons" in data and event.get("type") == "delivery":
                data = _in_own_language(data, channel.lang)
            if msg_id is not None and channel.stream is not None:
                channel.stream.deliver(data)
            else:
                channel.send(event["type"], data)
            sent = True
        except ConnectionClosed:
            channel.closed.set()
        except Exception as exc:  # noqa: BLE001 - one bad event must not kill the socket
            if msg_id is not None and not sent and self.catch_up is not None:
                # The scope check (or the stream's gap fill) needed the database
                # and it failed (a restart): the message is not dropped, the
                # resync brings it from the database.
                log.warning("ws: message %s not forwarded (%s); resyncing", msg_id, exc)
                self.sub.request_resync(time.time())
            else:
                log.exception("ws: could not forward %s", event.get("type"))


def _in_own_language(data: dict, lang: str) -> dict:
    """A ``delivery`` event for this socket: its ``reason`` in the agent's language
    (the event carries both, ``reasons``; docs/protocol.md)."""
    reasons = data.get("reasons") or {}
    shown = {k: v for k, v in data.items() if k != "reasons"}
    shown["reason"] = reasons.get("en" if lang == "en" else "zh-CN", shown.get("reason"))
    return shown


_STOP: Any = ("", {"type": "_stop"})

#: Seconds before a gap's start whose messages an agent socket's resync looks at:
#: the conversations with a message since then are caught up, each from the
#: stream's own position (a message is published after its commit, so one
#: committed just before the gap may be among those the hub lost).
RESYNC_MARGIN = 5.0
#: Tries of a resync's database replay before the socket is closed (1012) instead
#: (a turn the gate has not given yet is waited for, not counted: ``GateBusy``),
#: for the client to resume with ``after_seq=`` (docs/protocol.md, "Outages").
RESYNC_ATTEMPTS = 3


def resync(channel: Channel, sub: Any, catch_up: Callable[[float], None]) -> None:
    """Close a gap the hub found (meiqia/hub.py): ``catch_up(since)`` sends from
    the database what the socket's stream has not sent yet, per conversation from
    its position (``delivery.Stream``: in seq order, nothing twice), then the
    live events follow. If the database cannot answer after RESYNC_ATTEMPTS, the
    socket is closed with 1012 and the client resumes by itself with
    ``after_seq=``, as after any close.
    """
    since = sub.take_resync()
    if since is None:
        return
    attempt = 0
    while attempt < RESYNC_ATTEMPTS:
        try:
            with socket_unit():
                catch_up(since)
            return
        except GateBusy:
            # Busy, not down: every socket of the process resyncing at once (a peer
            # thought silent while its workers were busy) waits in line. Closing them
            # with 1012 would turn the wait into a reconnect storm (8,309 sockets of
            # 10,000 in benchmarks/ws_sockets.py before this).
            if channel.closed.wait(random.uniform(0.5, 2.0)):
                return
            continue
        except DATABASE_ERRORS as exc:
            log.warning("ws: resync failed (%s); trying again", exc)
            if channel.closed.wait(0.5 * 2 ** attempt):
                return
        attempt += 1
    log.warning("ws: resync impossible, the database is unavailable; closing with 1012")
    channel.closed.set()
    try:
        channel.ws.close(reason=1012, message="missed events: reconnect with after_seq=")
    except Exception:  # noqa: BLE001 - already gone
        pass


@contextlib.contextmanager
def _sending(stream: delivery.Stream, conversation_id: int, client_id: str) -> Iterator[None]:
    """This socket stores a message: when it comes by on the stream, it is the
    socket's ``ack``, not a ``message`` (docs/protocol.md, rule 4).

    A frame that failed on the database (``unavailable``) may have been stored
    all the same (the connection lost after its COMMIT). The client sends it
    again; meanwhile it may come by first, filling the gap before a later
    message, or published again by a resend: it stays this socket's own, so it
    still goes out as the ``ack``. Any other failure stored nothing.

    While the store is under way, the message and what follows it in its
    conversation wait on the stream for its outcome (``delivery.Stream``): it may
    come by stored by another tab's send of the same id, and then this send's one
    ack says ``"duplicate": true``; ``_run_frame`` lets them go if the frame ends
    without an ack."""
    stream.expect_own(conversation_id, client_id)
    try:
        yield
    except DATABASE_ERRORS:
        raise
    except BaseException:
        stream.forget_own(conversation_id, client_id)
        raise


def _stop_pump(pump: _Pump) -> None:
    pump.stop()


def _too_big(text: str) -> bool:
    """More than MAX_FRAME bytes of UTF-8. A character is at most 4 bytes, so only
    text of over a quarter of the limit is encoded to be sure (never a chat frame)."""
    if len(text) > MAX_FRAME:
        return True
    return len(text) * 4 > MAX_FRAME and len(text.encode("utf-8")) > MAX_FRAME


def _frames(ws: Any, channel: Channel) -> Any:
    """Client frames as dicts; malformed ones answered with an error frame.

    Bounded before parsing (``services.safe_json``): size, then nesting depth,
    then JSON, then shape; then no NUL or lone surrogate in any string, checked
    before any string of the frame is used or echoed (an echoed surrogate
    cannot be encoded, which closed the socket with 1011). The socket stays open.
    """
    while not channel.closed.is_set():
        try:
            raw = _receive(ws, PING_SECONDS * 2)
        except ConnectionClosed:
            return
        if raw is None:
            continue
        if isinstance(raw, bytes) or _too_big(raw):
            channel.error("bad_frame", f"frames must be JSON text of at most {MAX_FRAME} bytes")
            continue
        try:
            frame = safe_json.loads(raw, MAX_DEPTH, text_check=False)
        except ServiceError as exc:  # too deep, not JSON
            channel.error("bad_frame", exc.message)
            continue
        if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
            channel.error("bad_frame", 'expected {"type": ..., "data": {...}}')
            continue
        if safe_json.suspect(raw):
            try:  # the envelope's fields, then data's, named as the API names them;
                # a bad key by where it is: "frame", "data", or the field that holds it
                safe_json.check_text({k: v for k, v in frame.items() if k != "data"},
                                     root="frame")
                safe_json.check_text(frame.get("data"), root="data")
            except ServiceError as exc:
                channel.error(exc.code, exc.message, _ref(frame))
                continue
        if not isinstance(frame.get("data", {}), dict):
            channel.error("bad_frame", "data must be an object", frame.get("type"))
            continue
        yield frame


def _ref(frame: dict) -> Any:
    """What an error frame names as ``ref``: the frame's ``client_msg_id`` when it
    is a valid one (``messages.CLIENT_ID_RE``: an invalid id is what the error is
    about, and is never echoed back), else its type when that is storable text,
    else None."""
    data = frame.get("data")
    client_id = data.get("client_msg_id") if isinstance(data, dict) else None
    if isinstance(client_id, str) and messages.CLIENT_ID_RE.fullmatch(client_id):
        return client_id
    kind = frame.get("type")
    if kind and isinstance(kind, str) and not safe_json.not_text(kind):
        return kind[:64]
    return None


#: The ``ref`` of an error frame that refuses a socket at connect (before or
#: instead of ``hello``); the server closes the socket after it.
CONNECT = "connect"


#: The database busy (SQLite lock past the busy timeout) or unreachable.
#: A pool with no free connection within its timeout is as unavailable as a
#: database that refuses connections.
DATABASE_ERRORS = (peewee.OperationalError, peewee.InterfaceError, MaxConnectionsExceeded)


def _contained(handler: Callable[[Any], Callable[[], None] | None]) -> Any:
    """A socket route from a handler in two parts, neither letting an exception out.

    ``handler(ws)`` connects the socket in its request (authentication,
    subscription, ``hello``, the replay) and returns what serves it from then on
    (the frame loop), or None when the socket ended at connect. Under gevent
    (``WS_SERVE_AFTER_REQUEST``, on by default) what serves it runs after the
    request has returned, in a greenlet of its own (``detached_sockets``: a
    third of the memory); otherwise in the request.

    flask-sock lets an exception reach Flask, which writes an HTTP 500 response
    into the upgraded socket: the client reads those bytes as a websocket frame
    and drops the connection with "reserved bits must be 0" (what the load
    benchmark saw when the PostgreSQL pool ran dry). Closing with 1011 instead
    tells the client to reconnect, and the replay (``after=``) gives it whatever
    it missed.
    """

    @functools.wraps(handler)
    def run(ws: Any) -> None:
        path = request.path
        app = current_app._get_current_object()
        detachable = detached_sockets.prepare(ws)
        sockets = metrics.OPEN_SOCKETS.labels(path.rsplit("/", 1)[-1])
        sockets.inc()
        handed_over = False
        try:
            serve = _guarded(path, ws, handler, ws)
            if serve is None:
                return
            if detachable:
                def serve_detached() -> None:
                    try:
                        _guarded(path, ws, serve)
                    finally:
                        sockets.dec()
                        _finish(ws)

                detached_sockets.start(app, ws, serve_detached)
                handed_over = True
                return
            _guarded(path, ws, serve)
        finally:
            if not handed_over:
                sockets.dec()
                _finish(ws)

    return run


def _guarded(path: str, ws: Any, step: Callable[..., Any], *args: Any) -> Any:
    """``step(*args)``; a closed socket or an error no one foresaw gives None
    (the latter logged, and the socket closed with 1011)."""
    try:
        return step(*args)
    except ConnectionClosed:
        return None
    except Exception:  # noqa: BLE001 - contained on purpose, logged
        log.exception("ws: %s handler failed; closing the socket", path)
        try:
            ws.close(reason=1011, message="server error, reconnect")
        except Exception:  # noqa: BLE001 - the socket may be gone already
            pass
        return None


def _refused() -> FailureLog:
    """The log of frames refused because the database failed, one per app: during
    an outage every frame of every socket is one (a warning each, two lines with
    psycopg2's text, flooded the log), so one warning as it starts, a count
    meanwhile, one line when a frame goes through again."""
    refused = current_app.extensions.get("meiqia.ws_refused")
    if refused is None:
        refused = current_app.extensions.setdefault("meiqia.ws_refused", FailureLog(
            log, "ws: the database for socket frames",
            "each such frame is answered `unavailable`"))
    return refused


def _unavailable(channel: Channel, frame: dict, exc: Exception) -> None:
    """Answer the frame with ``unavailable`` and keep the socket: nothing of the
    frame was stored, and the client may send it again (same client_msg_id)."""
    _refused().failed(f"ws: database unavailable for a {frame.get('type')} frame "
                      f"({first_line(exc)})")
    data = frame.get("data") or {}
    channel.error("unavailable", "the database is busy or unreachable; send it again",
                  data.get("client_msg_id") or frame.get("type"))


#: Close code of a socket refused at connect because the database could not give
#: it a turn (RFC 6455 1013, "Try Again Later"); the client reconnects after
#: ``retry_after_ms`` (docs/protocol.md, "Outages").
TRY_AGAIN_LATER = 1013
#: The retry hint of a refused connect (milliseconds): at least the first, plus up
#: to the second at random, so a storm of refused clients does not come back as
#: one storm.
RETRY_AFTER_MS = (1000, 4000)


def _try_again_later(channel: Channel, exc: Exception) -> None:
    """Refuse a socket at connect, politely: the database had no turn for it (the
    gate's wait passed DATABASE_BUSY_TIMEOUT, the pool ran dry, the database is
    down). An ``unavailable`` error frame with ``retry_after_ms`` (jittered), then
    close 1013. Before this, the connect storm of 1,000 sockets saw hundreds closed
    with 1011 ("server error"), which clients treat as a fault, not as back-pressure.
    Nothing was subscribed or recorded yet, so there is nothing to undo."""
    log.warning("ws: connect refused, the database is unavailable (%s); close 1013", exc)
    retry = random.randint(*RETRY_AFTER_MS)
    with contextlib.suppress(Exception):
        channel.send("error", {**error_text.localise(
            {"code": "unavailable",
             "message": "the server is busy; reconnect after retry_after_ms",
             "ref": CONNECT}, channel.lang), "retry_after_ms": retry})
    channel.closed.set()
    with contextlib.suppress(Exception):
        channel.ws.close(reason=TRY_AGAIN_LATER, message="busy, try again later")


def _pong(channel: Channel, frame: dict) -> bool:
    """Answer a ``ping`` without a database turn; whether it was one.

    Every client pings every PING_SECONDS: at 10,000 sockets that is 400 frames a
    second, which waited in line for the database with real frames (the frame
    handlers load the conversation first) and, in a connect storm, were answered
    ``unavailable`` (benchmarks/ws_sockets.py). The presence write a ping may
    carry is done before, as for any frame."""
    if frame["type"] != "ping":
        return False
    channel.send("pong", {})
    return True


def _bookkeeping(what: str, write: Callable[..., Any], *args: Any) -> bool:
    """A write that keeps presence or delivery ticks right: worth doing again later,
    never worth the socket. Returns whether it was recorded.

    With the database busy (SQLite's write lock held past the timeout, PostgreSQL's
    pool dry) a failed presence update at connect closed the socket with 1011; the
    widget reconnected into the same wait, again and again, and its message never
    got the ``unavailable`` answer on which it is sent again. Reads still work then,
    so the socket serves its replay, and the next frame tries presence again.
    """
    try:
        with socket_unit():
            write(*args)
        return True
    except DATABASE_ERRORS as exc:
        log.warning("ws: %s not recorded, the database is unavailable: %s", what, exc)
        return False


def _touch(note: Callable[..., Any], *args: Any) -> bool:
    """A socket's sign of life (``presence.Touches``): noted for the process's
    next presence sweep, no database turn; written at once, as bookkeeping,
    where the process has no sweeper."""
    if presence.batched():
        note(*args)
        return True
    return _bookkeeping("presence", note, *args)


def _after() -> int:
    """The legacy ``?after=<message id>`` (before positions). Raises ValueError on
    anything but a whole number, as ``after_seq`` does (a typo such as ``-5`` or
    ``abc`` replayed the whole conversation without a word)."""
    raw = request.args.get("after")
    if raw is None:
        return 0
    try:
        return delivery.parse_position(raw)
    except ValueError:
        raise ValueError("after: a whole number from 0 to 2147483647") from None


def _visitor_position(conversation_id: int) -> int:
    """Where a visitor socket resumes: ``?after_seq=``, else the position of the
    legacy ``?after=<message id>`` (exact: within a conversation ids follow seqs).
    Raises ValueError on an ``after_seq`` that is no position."""
    raw = request.args.get("after_seq")
    if raw is not None:
        return delivery.parse_position(raw)
    after = _after()
    return messages.seq_of(conversation_id, after) if after else 0


@sock.route("/ws/visitor")
@_contained
def visitor_socket(ws: Any) -> Callable[[], None] | None:
    app = current_app._get_current_object()
    channel = Channel(ws)
    # Before the database turn: a refused connect is answered in his language too.
    channel.lang = i18n.error_language(agent_preference=False)
    try:
        with socket_unit():
            try:
                visitor = security.visitor_from_token(security.socket_visitor_token())
            except ServiceError as exc:
                channel.error(exc.code, exc.message, CONNECT)
                return
            conversation = conversations.active_for(visitor)
            if conversation is None:
                conversation = Conversation.select().where(
                    Conversation.visitor == visitor.id).order_by(Conversation.id.desc()).first()
            if conversation is None:
                channel.error("no_conversation",
                              "start a session first (POST /api/v1/widget/session)", CONNECT)
                return
            try:
                position = _visitor_position(conversation.id)
            except ValueError as exc:
                channel.error("invalid", str(exc), CONNECT)
                return
            hub = app.extensions["meiqia.hub"]
            # Subscribe before the replay: an event published in between is then
            # both replayed and heard, and the stream skips the second copy.
            sub = hub.subscribe([messages.conversation_topic(conversation.id)])
            present = _bookkeeping("presence", presence.visitor_connected, visitor.id)
            try:
                # The state as it is now that the socket listens: a change made
                # between the read above and the subscribe (a request for a person
                # from the page, routing) was published to nobody here, and a hello
                # from the first read would show the old state for good.
                conversation = get_by_id(Conversation, conversation.id)
                channel.send("hello", visitor_privacy.event(conversations.state(conversation)))
                channel.stream = _visitor_stream(channel, conversation)
                channel.stream.resume(conversation.id, position, conversation.last_seq)
            except BaseException:
                # Dropped during the replay (or the database failed): no pump will ever
                # drain this subscription, so it must not stay attached to the hub.
                sub.close()
                if present:
                    _bookkeeping("presence", presence.visitor_disconnected, visitor.id)
                raise
    except DATABASE_ERRORS as exc:
        _try_again_later(channel, exc)
        return

    def catch_up(since: float) -> None:
        """A resync: the missed messages from the stream's position, then the
        conversation's state now (a ``conversation`` frame: it may have been
        assigned or ended meanwhile)."""
        channel.stream.catch_up(conversation.id)
        current = get_by_id(Conversation, conversation.id)
        channel.send("conversation", visitor_privacy.event(conversations.state(current)))

    pump = _Pump(app, channel, sub, _everything, visitor_privacy.event, catch_up)
    pump.arm()
    known = {"row": conversation}  # the row a message frame stores with (_visitor_frame)

    def serve() -> None:
        """The socket from its ``hello`` on: client frames until it closes."""
        # Not recorded at connect: the first frame tries again.
        last_touch = time.monotonic() if present else float("-inf")
        try:
            for frame in _frames(ws, channel):
                if time.monotonic() - last_touch > PING_SECONDS / 2 and _touch(
                        presence.touches().visitor, visitor.id):
                    last_touch = time.monotonic()
                if _pong(channel, frame):
                    continue
                try:
                    with socket_unit():
                        _visitor_frame(channel, visitor, known, frame)
                except DATABASE_ERRORS as exc:
                    _unavailable(channel, frame, exc)
                else:
                    _refused().succeeded()
        finally:
            _stop_pump(pump)
            _bookkeeping("presence", presence.visitor_disconnected, visitor.id)

    return serve


def _everything(topic: str, event: dict) -> bool:
    """The visitor socket's filter: its one topic carries only what he may see."""
    return True


def _visitor_stream(channel: Channel, conversation: Conversation) -> delivery.Stream:
    """The visitor socket's stream: public messages of his conversation; what it
    sends of the agents' and the bot's reached him (one UPDATE per batch, and the
    agents see their ticks)."""
    can_read = messages.reports_reads(conversation)
    cid = conversation.id

    def fill(conversation_id: int, after: int, before: int | None, limit: int) -> list[dict]:
        with socket_unit():
            return [messages.visitor_view(m, can_read) for m in
                    messages.between(conversation_id, after, before, limit, for_visitor=True)]

    def on_sent(views: list[dict]) -> None:
        ids = [v["id"] for v in views
               if v.get("sender_kind") in {"agent", "bot"} and v.get("status") == "sent"]
        if ids:
            _bookkeeping("delivery", lambda: messages.mark_delivered(
                get_by_id(Conversation, cid), ids))

    return delivery.Stream(channel.send, fill, on_sent=on_sent)


def _run_frame(channel: Channel, frame: dict, handlers: dict[str, Any],
               schemas: dict[str, dict] | None = None) -> None:
    """Call the handler of the frame's type; errors become error frames.

    ``schemas[type]`` checks the frame's ``data`` first (``validation.check``,
    the API's own checker: types, and integers within a database column), so a
    handler never meets a string where it expects an id. An exception no one
    foresaw is logged and answered with ``server_error``: never its text, and
    the socket stays open (database outages go on to ``_unavailable``). A
    handler that returns a list leaves those steps for after its answer
    (``_after_answer``).
    """
    kind, data = frame["type"], frame.get("data") or {}
    handler = handlers.get(kind)
    try:
        if kind == "ping":
            channel.send("pong", {})
        elif handler is None:
            channel.error("unknown_type", f"unknown message type {kind[:40]!r}", _ref(frame))
        else:
            schema = (schemas or {}).get(kind)
            if schema is not None:
                check(data, schema)
            started = time.perf_counter()
            try:
                later = handler(data)
            finally:
                if channel.stream is not None:
                    # A message frame that ended without its ack (the database
                    # failed) no longer holds its conversation's frames back.
                    channel.stream.settle()
            if kind == "message":  # stored and acknowledged
                metrics.ACK_SECONDS.labels(channel.kind).observe(time.perf_counter() - started)
            if isinstance(later, list):  # steps left for after the answer
                _after_answer(later, kind)
    except ServiceError as exc:
        channel.error(exc.code, exc.message, _ref(frame))
    except DATABASE_ERRORS:
        raise
    except ConnectionClosed:
        raise
    except Exception:  # noqa: BLE001 - a bug must not end the socket or leak its text
        log.exception("ws: a %s frame failed", kind[:40])
        channel.error("server_error", "the server could not handle this frame", _ref(frame))


def _after_answer(steps: list[Callable[[], None]], kind: str) -> None:
    """Run what a frame's handler left for after its answer (the bot's answer,
    routing or the agent's suggestions after the visitor's ``ack``). The sender
    has had his ack, so a failure here is logged, never sent to him as an error
    of a frame that was answered (a bot that fails answers "unrecognised" and
    offers a person itself, ``conversations.bot_reply``). A visitor message's
    step never gets here failing: it is retried in the background, not dropped
    (``answering.run_step``, docs/protocol.md "Guarantees" 1)."""
    for step in steps:
        try:
            step()
        except DATABASE_ERRORS as exc:
            log.warning("ws: after a %s frame: the database failed (%s)", kind[:40],
                        type(exc).__name__)
        except Exception:  # noqa: BLE001 - the frame was answered: nothing to tell
            log.exception("ws: after a %s frame: a step failed", kind[:40])


#: An id in a frame: a whole number a database column holds (``check`` bounds it).
_ID = {"type": "integer"}
#: ``data`` of each client frame type (docs/protocol.md); fields not named here
#: are the service's to check (a message's body, mode, attachment).
VISITOR_FRAMES: dict[str, dict] = {
    # The REST route's fields (widget.VISITOR_MESSAGE_SCHEMA) that a socket carries:
    # text only (files go by the upload route); anything else is refused, not dropped.
    "message": {"type": "object", "additionalProperties": False,
                "properties": {"conversation_id": _ID, "client_msg_id": {"type": "string"},
                               "body": {"type": "string"},
                               "kind": {"type": "string", "enum": ["text"]}}},
    "typing": {"type": "object", "properties": {"typing": {"type": "boolean"},
                                                "preview": {"type": "string"},
                                                "conversation_id": _ID}},
    "read": {"type": "object", "required": ["up_to"],
             "properties": {"up_to": {"type": "integer", "minimum": 0},
                            "conversation_id": _ID}},
    "human": {"type": "object", "properties": {"conversation_id": _ID}},
}
#: An agent socket sees many conversations: each of its frames names one.
AGENT_FRAMES: dict[str, dict] = {
    "message": {"type": "object", "required": ["conversation_id"],
                "properties": {"conversation_id": _ID}},
    "replay": {"type": "object", "required": ["conversation_id"],
               "properties": {"conversation_id": _ID,
                              "after": {"type": "integer", "minimum": 0},
                              "after_seq": {"type": "integer", "minimum": 0}}},
    "typing": {"type": "object", "required": ["conversation_id"],
               "properties": {"conversation_id": _ID, "typing": {"type": "boolean"},
                              "preview": {"type": "string"}}},
    "read": {"type": "object", "required": ["conversation_id", "up_to"],
             "properties": {"conversation_id": _ID,
                            "up_to": {"type": "integer", "minimum": 0}}},
}


def _visitor_frame(channel: Channel, visitor: Any, known: dict[str, Conversation],
                   frame: dict) -> None:
    """One client frame of a visitor socket. ``known["row"]``: the socket's
    conversation as last read (at ``hello``, or for a message), kept up to date by
    each message's store.

    A ``message`` frame in a chat an agent handles (as of the last store) stores with
    ``known`` when no redactor is on for the team: the store's one statement reads
    back the status, handler and group (and refuses an ended chat), and the rest of
    what that path reads (the visitor, the team, the channel) never changes, so the
    row read for it on every message was a database round trip in nine of a
    worker's samples (issue 19, docs/benchmarks.md). A redactor gets the row as it
    is now (its tags and fields may have changed), the bot's turn reads it (its
    answer may go by more of it), and so does every other frame, as before."""
    from meiqia.services import events

    row = known["row"]
    conversation_id = row.id
    if frame.get("type") == "message" and row.status == "open" \
            and not privacy.redactors_on(row.team_id):
        conversation = row
    else:
        conversation = get_by_id(Conversation, conversation_id)
        if frame.get("type") == "message":
            known["row"] = conversation  # the store below brings it up to date
    named = frame.get("data", {}).get("conversation_id")
    if isinstance(named, int) and not isinstance(named, bool) and named != conversation_id \
            and INT_MIN <= named <= INT_MAX:
        # A visitor socket speaks for its own conversation only. An id that is no
        # whole number of a database column is the frame's checker's: ``invalid``.
        channel.error("not_found", "no such conversation", _ref(frame))
        return

    def message(data: dict) -> list[Callable[[], None]]:
        client_id = messages.check_client_id(data.get("client_msg_id"), required=True)
        stream = channel.stream
        later: list[Callable[[], None]] = []
        with _sending(stream, conversation.id, client_id):
            sent, created = conversations.visitor_message(
                visitor, conversation, data.get("body", ""), client_id, after=later)
        try:
            stream.ack(messages.visitor_view(sent, messages.reports_reads(conversation)),
                       duplicate=not created)
        except BaseException:
            # The socket dropped at his ack: his message is stored all the same and
            # is answered; his resend, a duplicate, will find the answer in the replay.
            _after_answer(later, "message")
            raise
        return later  # the bot, routing or the agent's suggestions, after his ack

    def typing(data: dict) -> None:
        events.emit("typing", conversation.team_id, [messages.team_topic(conversation.team_id)],
                    {"conversation_id": conversation.id, "who": "visitor",
                     **messages.owner_of(conversation),
                     "typing": bool(data.get("typing", True)),
                     "preview": privacy.typing_preview(conversation.team_id, data.get("preview", ""))}, track=False)

    _run_frame(channel, frame, {
        "message": message,
        "typing": typing,
        "read": lambda data: messages.mark_read(conversation, "visitor",
                                                int(data.get("up_to", 0))),
        "human": lambda data: channel.send(
            "conversation",
            visitor_privacy.event(conversations.ask_for_human(visitor, conversation))),
    }, VISITOR_FRAMES)


@sock.route("/ws/agent")
@_contained
def agent_socket(ws: Any) -> Callable[[], None] | None:
    app = current_app._get_current_object()
    channel = Channel(ws)
    channel.kind = "agent"
    channel.lang = i18n.error_language(agent_preference=False)
    try:
        with socket_unit():
            actor = security.session_agent()
            channel.lang = i18n.error_language()
            credential = _Credential(session_key=security.session_key())
            if actor is None:
                from meiqia.services.accounts import agent_for_token

                token = security.socket_api_token()
                credential = _Credential(token=token)
                actor = agent_for_token(token) if token else None
                if actor is not None:  # his language (i18n.error_language), as on REST
                    request.environ["meiqia.token_agent"] = actor
                    channel.lang = i18n.error_language()
                if actor is not None and not security.token_may_use_agent_socket(actor):
                    channel.error("forbidden", "this API token's scope (read) does not allow "
                                  "this: it needs conversations", CONNECT)
                    return
            if actor is None:
                channel.error("unauthorized", "log in first", CONNECT)
                return
            hub = app.extensions["meiqia.hub"]
            scope = _Scope(actor)
            sub = hub.subscribe([messages.team_topic(actor.team_id),
                                 messages.agent_topic(actor.id)], accept=scope.prefilter)
            try:
                named = delivery.parse_positions(request.args.get("after_seq"))
                after = _after()
            except ValueError as exc:
                channel.error("invalid", str(exc), CONNECT)
                sub.close()
                return
            # His socket's presence row (``services/presence.py``), written before
            # ``hello``: a client that got ``hello`` counts as connected, and a chat
            # routed to him now reaches him (subscribed above). Routing gives chats only
            # to agents with a live row, on any process. Each frame (the workspace pings
            # every PING_SECONDS) keeps it alive; a row not written now (database busy)
            # is written with the next frame.
            socket_row: list[int] = []
            _bookkeeping("presence", lambda: socket_row.append(presence.agent_connected(actor)))
            try:
                # The stream's snapshot, with ``hello``'s lists: whatever is committed
                # after it is heard live (subscribed above), so nothing falls between.
                channel.stream, lists = _agent_stream(channel, scope)
                channel.send("hello", {"agent_id": actor.id, **lists})
                _agent_resume(channel.stream, actor, named, after)
            except BaseException:
                sub.close()  # no pump will drain it (see the visitor socket)
                _bookkeeping("presence", presence.agent_disconnected, actor,
                             socket_row[0] if socket_row else None)
                raise
    except DATABASE_ERRORS as exc:
        _try_again_later(channel, exc)
        return
    pump = _Pump(app, channel, sub, credential.guard(channel, scope.allow), None,
                 lambda since: _agent_catch_up(channel.stream, scope.actor, since))
    pump.arm()

    def serve() -> None:
        """The socket from its ``hello`` on: client frames until it closes."""
        last_touch = time.monotonic()
        touch_every = min(PING_SECONDS / 2, presence.heartbeat_seconds() / 3)
        try:
            for frame in _frames(ws, channel):
                # The sign of life first: it is only a note (the sweeper writes it), while
                # the credential check below may wait its turn for the database with every
                # chat frame of a busy process, and an agent whose pings wait there past
                # AGENT_HEARTBEAT_SECONDS is taken for gone (issue 19's embedded run).
                if socket_row and time.monotonic() - last_touch > touch_every and _touch(
                        presence.touches().agent, actor, socket_row[0]):
                    last_touch = time.monotonic()
                if not credential.still_live(channel):
                    break
                if not socket_row:
                    _bookkeeping("presence",
                                 lambda: socket_row.append(presence.agent_connected(actor)))
                    last_touch = time.monotonic()
                if _pong(channel, frame):
                    continue
                try:
                    with socket_unit():
                        # As he is now: a role, scope or group changed since the
                        # socket opened applies to this frame (docs/security.md §1).
                        current = _still_active(actor.id)
                        if current is None:
                            credential.end(channel)
                            break
                        scope.update(current)
                        _agent_frame(channel, current, frame)
                except DATABASE_ERRORS as exc:
                    _unavailable(channel, frame, exc)
                else:
                    _refused().succeeded()
        finally:
            _stop_pump(pump)
            _bookkeeping("presence", presence.agent_disconnected, actor,
                         socket_row[0] if socket_row else None)

    return serve


def _still_active(agent_id: int) -> Any:
    """The agent's row as it is now, or None when he was deleted or deactivated."""
    current = find_by_id(Agent, agent_id)
    return current if current is not None and current.active else None


#: Seconds an agent socket trusts that the session or token it was opened with is
#: still live; an ended one is also announced at once (``sessions.credentials_changed``).
CREDENTIAL_CHECK_SECONDS = 15


class _Credential:
    """What opened an agent socket: a session id (cookie) or an API token.

    Logging out, "sign out everywhere", a password change, deactivation and a
    revoked token end it on the server; the socket then closes (an
    ``unauthorized`` error frame, then close code 1008), at once when the change
    is announced on his agent topic, else at his next frame or before the next
    event sent to him, once CREDENTIAL_CHECK_SECONDS have passed since the last
    check. A database that cannot answer keeps the socket open.
    """

    def __init__(self, session_key: str | None = None, token: str | None = None) -> None:
        self.session_key = session_key
        self.token = token
        self.checked_at = time.monotonic()

    def live(self) -> bool:
        from meiqia.services import sessions
        from meiqia.services.accounts import agent_for_token

        self.checked_at = time.monotonic()
        try:
            with socket_unit():
                if self.token:
                    return agent_for_token(self.token) is not None
                return sessions.agent_of(self.session_key) is not None
        except DATABASE_ERRORS:
            return True

    def still_live(self, channel: Channel) -> bool:
        """Checked before a frame, at most every CREDENTIAL_CHECK_SECONDS."""
        if time.monotonic() - self.checked_at < CREDENTIAL_CHECK_SECONDS or self.live():
            return True
        self.end(channel)
        return False

    def guard(self, channel: Channel, allow: Callable[[str, dict], bool]
              ) -> Callable[[str, dict], bool]:
        """The pump's filter: a ``credentials.changed`` event is checked, never sent;
        before any other event goes out, a credential not checked for
        CREDENTIAL_CHECK_SECONDS is checked again. A socket that only listens
        sends no frame to be checked before: a session ended where no process
        announced it (``meiqia agent passwd`` on the console of the embedded
        server, a token or session that expired) must still stop its events."""
        from meiqia.services.sessions import CREDENTIALS_CHANGED

        def check(topic: str, event: dict) -> bool:
            if event.get("type") == CREDENTIALS_CHANGED:
                if not self.live():
                    self.end(channel)
                return False
            if time.monotonic() - self.checked_at >= CREDENTIAL_CHECK_SECONDS \
                    and not self.live():
                self.end(channel)
                return False
            return allow(topic, event)

        return check

    def end(self, channel: Channel) -> None:
        with contextlib.suppress(Exception):
            channel.error("unauthorized", "your session has ended: log in again")
        channel.closed.set()
        with contextlib.suppress(Exception):
            channel.ws.close(reason=1008, message="session ended")


#: Seconds an agent socket trusts its cached view of his scope.
SCOPE_CACHE_SECONDS = 30
#: Seconds a cached view still serves while the database is too busy to read it
#: again (the hub's filter uses it meanwhile; past it, events wait for the pump).
SCOPE_STALE_SECONDS = 2 * SCOPE_CACHE_SECONDS
_MISSING = object()


class _Scope:
    """A cheap per-event filter for an agent socket.

    Every team event carries its conversation's handler (and group), ticket
    events their ticket's assignee and group; the agent's visible agents and
    groups, and the conversations he was @mentioned in, are loaded once per
    SCOPE_CACHE_SECONDS, so events need no query (a query per event per agent
    socket is what exhausted the PostgreSQL pool under load). A new mention reaches him on his own topic and widens the
    cached view at once. Only events without the handler ask the database, and
    that answer is cached per conversation.

    ``prefilter`` runs in the hub's fan-out (see ``Subscription``): it answers
    from the cache alone and says True when only a query could tell, so the
    pump's ``allow`` has the last word and most out-of-scope events never wake
    the pump at all.
    """

    def __init__(self, actor: Any) -> None:
        self.actor = actor
        self.everything = permissions.sees_everything(actor)
        self.own_topic = messages.agent_topic(actor.id)
        self.until = 0.0
        #: When the cached view was read (never: -inf).
        self.loaded_at = float("-inf")
        self.agents: set[int] = set()
        self.groups: set[int] = set()
        self.mentioned: set[int] = set()
        self.per_conversation: dict[int, tuple[bool, float]] = {}

    def update(self, actor: Any) -> None:
        """The agent as the database has him now (read for each of his frames and
        each reload): a changed role or scope drops the cached view at once; a
        changed group list is read with the next reload (SCOPE_CACHE_SECONDS). His
        frames themselves are always checked against the database."""
        before = (self.actor.role, self.actor.scope, self.everything)
        self.actor = actor
        self.everything = permissions.sees_everything(actor)
        if (actor.role, actor.scope, self.everything) != before:
            self.until = 0.0  # the cached view was his old scope's
            self.per_conversation.clear()

    def refresh(self) -> None:
        now = time.monotonic()
        if now < self.until:
            return
        try:
            with socket_unit():
                # His row again, not the one read when the socket opened: a scope
                # narrowed by an admin reaches the socket within SCOPE_CACHE_SECONDS
                # (docs/security.md §1), "all" to "self" included.
                current = find_by_id(Agent, self.actor.id)
                if current is not None:
                    self.update(current)
                agents = permissions.visible_agent_ids(self.actor) or set()
                groups = permissions.visible_group_ids(self.actor) or set()
                mentioned = {m.conversation_id for m in Mention.select(
                    Mention.conversation).where(Mention.agent == self.actor.id)}
        except DATABASE_ERRORS:
            if now >= self.loaded_at + SCOPE_STALE_SECONDS:
                raise  # too old to go on with: the pump resyncs when it can
            # The database busy: the view of a moment ago serves a little longer.
            # Waiting here stalled the pump while its queue filled, each event
            # dropped asked for a resync, and resyncs took the database turns that
            # chat messages waited for (the 2 x gevent run at 300 msg/s).
            self.until = now + 1.0
            return
        self.agents, self.groups, self.mentioned = agents, groups, mentioned
        self.loaded_at = now
        self.until = now + SCOPE_CACHE_SECONDS

    def _decide(self, topic: str, event: dict, may_query: bool) -> bool | None:
        """True or False, or None when only the database could tell."""
        data = event.get("data") or {}
        conversation_id = data.get("conversation_id")
        if topic == self.own_topic:
            if may_query and event.get("type") == "mention" and conversation_id is not None:
                self.mentioned.add(conversation_id)
                self.per_conversation.pop(conversation_id, None)
            return True  # addressed to him (assigned, mention)
        if may_query:
            self.refresh()  # his row too: "everything" may have ended
        if self.everything:
            return True
        if str(event.get("type", "")).startswith("ticket."):
            return self._ticket(data, may_query)
        if conversation_id is None:
            return True
        handler = data.get("handler_id", _MISSING)
        if handler is _MISSING and isinstance(data.get("handler"), dict | type(None)) \
                and "handler" in data:
            handler = (data["handler"] or {}).get("id")
        if may_query:
            self.refresh()
        elif time.monotonic() >= self.loaded_at + SCOPE_STALE_SECONDS:
            return None  # never loaded, or too old: the pump decides
        # An internal note on a conversation nobody handles may be on an ended one,
        # which is no shared pool (``permissions.conversation_filter``): the event
        # does not say, so the database decides, every time (notes there are rare,
        # and the conversation may have ended since a cached answer).
        pool_note = handler is None and event.get("type") == "message" \
            and data.get("visibility") == "internal"
        # A conversation nobody handles and in no group is his only while it waits
        # for a person (``queued``): with the bot or ended, it is for admins and
        # ``all`` agents (``permissions.conversation_filter``). An event that does
        # not say the status (a message, a typing) leaves it to the database.
        pool_status = None
        if handler is None and data.get("group_id") is None:
            pool_status = data.get("conversation_status") or (
                data.get("status") if event.get("type") == "conversation" else None)
        if event.get("type") == "conversation" and handler is not _MISSING:
            self.per_conversation.pop(conversation_id, None)  # its handler or status moved
        if handler is not _MISSING and not pool_note and (
                handler is not None or data.get("group_id") is not None
                or pool_status is not None):
            if handler is not None and handler in self.agents:
                return True
            if data.get("previous_handler_id") in self.agents:
                return True  # the transfer that took it from someone he sees
            if handler is None and data.get("group_id") in self.groups:
                return True
            if pool_status == "queued":
                return True
            return conversation_id in self.mentioned
        cached = None if pool_note else self.per_conversation.get(conversation_id)
        if cached and cached[1] > time.monotonic():
            return cached[0]
        if not may_query:
            return None
        with socket_unit():
            conversation = Conversation.get_or_none(Conversation.id == conversation_id)
            ok = bool(conversation) and permissions.can_see_conversation(self.actor, conversation)
        if not pool_note:
            self.per_conversation[conversation_id] = (ok, time.monotonic() + SCOPE_CACHE_SECONDS)
        return ok

    def _ticket(self, data: dict, may_query: bool) -> bool | None:
        """A ticket event, by the ticket rule (``permissions.ticket_visible`` on the
        facts the event carries: assignee, group, the conversation's handler and
        group). No @mention widening, and an event without the facts is not for
        him: ticket events carry old and new values and reply bodies. The one
        exception is the reassignment itself, for whoever could see the ticket's
        previous assignee."""
        if "assignee_id" not in data:
            return False
        if may_query:
            self.refresh()
        elif time.monotonic() >= self.loaded_at + SCOPE_STALE_SECONDS:
            return None
        if data.get("previous_assignee_id") in self.agents:
            return True  # the reassignment that took it from someone he sees
        return permissions.ticket_visible(self.agents, self.groups, data)

    def allow(self, topic: str, event: dict) -> bool:
        return bool(self._decide(topic, event, may_query=True))

    def prefilter(self, topic: str, event: dict) -> bool:
        return self._decide(topic, event, may_query=False) is not False


def _agent_stream(channel: Channel, scope: _Scope) -> tuple[delivery.Stream, dict[str, Any]]:
    """The agent socket's stream: every conversation in his scope (as it is now:
    ``scope.actor``), internal notes included; and his ``hello`` lists.

    A conversation he did not name starts where it stood when he connected, at the
    ``last_seq`` his ``hello`` shows: the starting positions and the lists are read
    after the subscription, in one snapshot (``db.snapshot_reads``), so a message
    committed meanwhile is either in both (sent neither live nor twice) or in
    neither (heard live). Read by two statements, under PostgreSQL's READ
    COMMITTED, one committed between them was in ``hello``'s ``last_seq`` and came
    live as well: a duplicate for a client that loads history up to ``last_seq``.
    One that began later starts at 0."""
    with snapshot_reads():
        snapshot = dict(Conversation.select(Conversation.id, Conversation.last_seq).where(
            Conversation.team == scope.actor.team_id, Conversation.status != "ended").tuples())
        lists = conversations.lists(scope.actor)
    for rows in lists.values():
        for row in rows if isinstance(rows, list) else ():
            # The same values; and an ended chat he was @mentioned in starts where
            # ``hello`` says too.
            snapshot[row["id"]] = row["last_seq"]

    def fill(conversation_id: int, after: int, before: int | None, limit: int) -> list[dict]:
        with socket_unit():
            conversation = Conversation.get_or_none(Conversation.id == conversation_id)
            if conversation is None or not permissions.can_see_conversation(
                    scope.actor, conversation):
                return []
            views = messages.agent_views(messages.between(
                conversation_id, after, before, limit, for_visitor=False))
        for view in views:
            view["handler_id"], view["group_id"] = conversation.handler_id, conversation.group_id
        return views

    return delivery.Stream(channel.send, fill, start=lambda cid: snapshot.get(cid, 0)), lists


def _agent_catch_up(stream: delivery.Stream, actor: Any, since: float) -> None:
    """An agent socket's resync: the conversations in his scope whose last message
    is beyond the stream's position are caught up, each from that position.

    One statement finds them: his scope's conversations still open, or with a
    message since a little before the gap (``RESYNC_MARGIN``), with their last
    ``seq``. It used to be a fill per conversation with a message in the window
    or a position on the stream, found or not behind: a busy team's agent socket
    knows thousands of conversations, and a resync that costs thousands of
    statements per socket, for every agent socket of a process at once, takes
    the database turns that chat messages wait for, until the next resync (the
    2 x gevent run at 300 msg/s; docs/benchmarks.md)."""
    cutoff = datetime.datetime.fromtimestamp(
        since - RESYNC_MARGIN, datetime.UTC).replace(tzinfo=None)
    latest = (Conversation.select(Conversation.id, Conversation.last_seq)
              .where(permissions.conversation_filter(actor),
                     (Conversation.status != "ended") | (Conversation.last_message_at >= cutoff))
              .tuples())
    for cid, last_seq in latest:
        if last_seq and last_seq > stream.position(cid):
            stream.catch_up(cid)


def _agent_resume(stream: delivery.Stream, actor: Any, named: dict[int, int],
                  after: int) -> None:
    """Replay what the agent named (``after_seq``), and for the legacy ``after=<id>``
    every conversation with a newer message, each from its position."""
    if after:
        firsts: dict[int, int] = {}
        for old in messages.agent_replay(actor, after):
            if old.seq is not None:
                firsts.setdefault(old.conversation_id, old.seq - 1)
        for cid, seq in firsts.items():
            named.setdefault(cid, seq)
    if not named:
        return
    visible = dict(Conversation.select(Conversation.id, Conversation.last_seq).where(
        Conversation.id.in_(list(named)), permissions.conversation_filter(actor)).tuples())
    for cid in sorted(visible):
        stream.resume(cid, named[cid], visible[cid])


def _agent_frame(channel: Channel, actor: Any, frame: dict) -> None:
    from meiqia.services import events

    def mine(data: dict) -> Conversation:
        return permissions.get_conversation(actor, int(data.get("conversation_id", 0)))

    def message(data: dict) -> None:
        body = {k: v for k, v in data.items() if k != "conversation_id"}
        client_id = messages.check_client_id(data.get("client_msg_id"), required=True)
        cid = int(data.get("conversation_id", 0))
        stream = channel.stream
        with _sending(stream, cid, client_id):
            sent, created = conversations.agent_send(actor, cid, body)
        # A new message is "sent" on any channel; only a resend's may be further on.
        view = messages.agent_view(sent) if created else messages.agent_views([sent])[0]
        stream.ack(view, duplicate=not created)

    def replay(data: dict) -> None:
        # History, not the stream: one ``replay`` frame, whatever the socket's position.
        conversation = mine(data)
        can_read = messages.reports_reads(conversation)
        after_seq = data.get("after_seq")
        found = messages.history(conversation, after=int(data.get("after", 0)),
                                 for_visitor=False,
                                 after_seq=None if after_seq is None else int(after_seq))
        channel.send("replay", {"conversation_id": conversation.id,
                                "messages": [messages.agent_view(m, can_read) for m in found]})

    def typing(data: dict) -> None:
        conversation = mine(data)
        events.emit("typing", conversation.team_id, [messages.conversation_topic(conversation.id)],
                    {"conversation_id": conversation.id, "who": "agent",
                     "typing": bool(data.get("typing", True))}, track=False)

    _run_frame(channel, frame, {
        "message": message,
        "replay": replay,
        "typing": typing,
        "read": lambda data: messages.mark_read(mine(data), "agent", int(data.get("up_to", 0))),
    }, AGENT_FRAMES)
