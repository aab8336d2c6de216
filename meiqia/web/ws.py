"""Websockets (DESIGN §5): ``/ws/visitor`` and ``/ws/agent``.

Envelopes are ``{"type", "id", "ts", "data"}`` (docs/protocol.md). On connect a
client names the last server message id it has (``?after=``); it first gets
every newer message from the database, then live events from the hub, with
duplicates of the replayed ids skipped, so nothing is lost or repeated across
reconnects, restarts or a switch of process.

Each socket has two threads: this handler reads client frames, and a pump
thread blocks on the hub subscription and writes events; writes share a lock.
The visitor socket subscribes only to its conversation topic, where internal
notes are never published.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
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

from meiqia import metrics
from meiqia.db import connection
from meiqia.db import get_by_id
from meiqia.models import Conversation
from meiqia.models import Mention
from meiqia.models.base import utcnow
from meiqia.services import conversations
from meiqia.services import messages
from meiqia.services import permissions
from meiqia.services import presence
from meiqia.services.errors import ServiceError
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
#: Seconds between pings (NAT and proxy idle timeouts).
PING_SECONDS = 25


def init_app(app: Flask) -> None:
    size = app.config.get("WS_DB_CONCURRENCY") or max(2, app.config["DATABASE_POOL_SIZE"] * 3 // 4)
    app.extensions["meiqia.ws_gate"] = threading.BoundedSemaphore(size)
    # No server-initiated pings: simple_websocket closes a socket (1008) when a pong
    # is late, which under load drops healthy clients. Clients send "ping" frames
    # every PING_SECONDS instead (the widget does), which also keeps NATs open.
    app.config.setdefault("SOCK_SERVER_OPTIONS", {"ping_interval": None,
                                                  "max_message_size": MAX_READ})
    sock.init_app(app)


def envelope(kind: str, data: dict | None = None, msg_id: int | None = None) -> str:
    return json.dumps({"type": kind, "id": msg_id,
                       "ts": utcnow().isoformat(timespec="milliseconds") + "Z",
                       "data": data or {}}, ensure_ascii=False)


_unit_depth = threading.local()


@contextlib.contextmanager
def socket_unit() -> Iterator[None]:
    """A database connection for one unit of socket work, at most
    ``WS_DB_CONCURRENCY`` at a time per process.

    A process holds thousands of sockets and a pool of DATABASE_POOL_SIZE
    connections. Without a bound, a burst of frames makes every socket thread
    wait inside the pool, the pool times out, and frames fail (what the
    2,000-socket benchmark saw). Behind this gate the burst waits in line,
    first come first served (``threading.Semaphore`` wakes waiters in order),
    and the pool keeps room for HTTP requests. Nested units share the outer
    turn. Waiting longer than DATABASE_BUSY_TIMEOUT raises as an exhausted pool
    does, which the socket answers with an ``unavailable`` error frame.
    """
    depth = getattr(_unit_depth, "value", 0)
    gate = current_app.extensions.get("meiqia.ws_gate") if depth == 0 else None
    if gate is not None and not gate.acquire(
            timeout=current_app.config["DATABASE_BUSY_TIMEOUT"]):
        raise MaxConnectionsExceeded("too many socket frames are waiting for the database")
    _unit_depth.value = depth + 1
    try:
        with connection():
            yield
    finally:
        _unit_depth.value = depth
        if gate is not None:
            gate.release()


class _SerialSocket:
    """A websocket's TCP socket whose writes are whole and never interleave.

    Three threads write to one socket: the hub pump, the frame loop (acks,
    errors) and simple-websocket's reader thread, which answers pings and close
    frames with a bare ``socket.send``. A blocked ``sendall`` of a large frame
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


class Channel:
    """One socket: thread-safe sends, and the ids already sent (no duplicates)."""

    def __init__(self, ws: Any, lang: str = "en") -> None:
        self.ws = ws
        #: The language of this socket's error frames (``?lang=`` of its URL, see
        #: ``i18n.error_language``); other frames carry data, not prose.
        self.lang = lang
        if not isinstance(ws.sock, _SerialSocket):
            ws.sock = _SerialSocket(ws.sock)
        #: Encoding a frame and writing it happen under the socket's own lock, so
        #: the deflate context and the wire see frames in the same order.
        self.lock = ws.sock.lock
        self.sent_ids: set[int] = set()
        self.closed = threading.Event()
        #: ``visitor`` or ``agent`` (the metrics' label).
        self.kind = "visitor"

    def send(self, kind: str, data: dict | None = None, msg_id: int | None = None) -> None:
        if msg_id is not None:
            if msg_id in self.sent_ids:
                return
            self.sent_ids.add(msg_id)
        text = envelope(kind, data, msg_id)
        with self.lock:
            _send_all(self.ws, text)

    def ack(self, sent: Any, view: dict, created: bool) -> None:
        """Acknowledge a stored message. The ack carries the message, so this
        socket does not get it again as a ``message`` frame (the sender's other
        sockets, a second tab, still do): one frame less per message."""
        self.send("ack", {"client_msg_id": sent.client_msg_id, "message": view,
                          "duplicate": not created})
        self.sent_ids.add(sent.id)

    def error(self, code: str, message: str, ref: Any = None) -> None:
        """An ``error`` frame, its message in the socket's language (English
        original as ``message_en`` when translated), code and ref unchanged."""
        self.send("error", error_text.localise(
            {"code": code, "message": message, "ref": ref}, self.lang))


def _send_all(ws: Any, text: str) -> None:
    """Send one text frame completely (see ``_SerialSocket``)."""
    from wsproto.events import TextMessage

    if not ws.connected:
        raise ConnectionClosed(ws.close_reason, ws.close_message)
    ws.sock.sendall(ws.ws.send(TextMessage(data=text)))


def _pump(app: Flask, channel: Channel, sub: Any, allow: Any,
          delivered: Any = None) -> None:
    """Forward hub events to the socket until it closes.

    ``delivered(message_data)`` is called after a message reached the socket
    (the visitor socket marks agent and bot messages delivered).
    """
    with app.app_context():
        while not channel.closed.is_set():
            # Blocks until an event arrives; ``_stop_pump`` wakes it on close, so
            # idle sockets cost no wake-ups.
            item = sub.get(timeout=PING_SECONDS * 4)
            if item is None or item is _STOP:
                continue
            topic, event = item
            data = event.get("data") or {}
            try:
                if not allow(topic, event):
                    continue
                msg_id = data.get("id") if event.get("type") == "message" else None
                channel.send(event["type"], data, msg_id)
                if msg_id is not None and delivered is not None:
                    delivered(data)
            except ConnectionClosed:
                channel.closed.set()
            except Exception:  # noqa: BLE001 - one bad event must not kill the socket
                log.exception("ws: could not forward %s", event.get("type"))


_STOP: Any = ("", {"type": "_stop"})


def _stop_pump(channel: Channel, sub: Any) -> None:
    channel.closed.set()
    sub.close()
    try:
        sub.queue.put_nowait(_STOP)
    except Exception:  # noqa: BLE001 - a full queue means the pump is awake anyway
        pass


def _too_big(text: str) -> bool:
    """More than MAX_FRAME bytes of UTF-8. A character is at most 4 bytes, so only
    text of over a quarter of the limit is encoded to be sure (never a chat frame)."""
    if len(text) > MAX_FRAME:
        return True
    return len(text) * 4 > MAX_FRAME and len(text.encode("utf-8")) > MAX_FRAME


def _frames(ws: Any, channel: Channel) -> Any:
    """Client frames as dicts; malformed ones answered with an error frame."""
    while not channel.closed.is_set():
        try:
            raw = ws.receive(timeout=PING_SECONDS * 2)
        except ConnectionClosed:
            return
        if raw is None:
            if not getattr(ws, "connected", True):
                return
            continue
        if isinstance(raw, bytes) or _too_big(raw):
            channel.error("bad_frame", f"frames must be JSON text of at most {MAX_FRAME} bytes")
            continue
        try:
            frame = json.loads(raw)
        except ValueError:
            channel.error("bad_frame", "not valid JSON")
            continue
        if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
            channel.error("bad_frame", 'expected {"type": ..., "data": {...}}')
            continue
        if not isinstance(frame.get("data", {}), dict):
            channel.error("bad_frame", "data must be an object", frame.get("type"))
            continue
        yield frame


#: The database busy (SQLite lock past the busy timeout) or unreachable.
#: A pool with no free connection within its timeout is as unavailable as a
#: database that refuses connections.
DATABASE_ERRORS = (peewee.OperationalError, peewee.InterfaceError, MaxConnectionsExceeded)


def _contained(handler: Any) -> Any:
    """Never let an exception out of a socket handler.

    flask-sock lets it reach Flask, which writes an HTTP 500 response into the
    upgraded socket: the client reads those bytes as a websocket frame and drops
    the connection with "reserved bits must be 0" (what the load benchmark saw
    when the PostgreSQL pool ran dry). Closing with 1011 instead tells the client
    to reconnect, and the replay (``after=``) gives it whatever it missed.
    """

    @functools.wraps(handler)
    def run(ws: Any) -> None:
        sockets = metrics.OPEN_SOCKETS.labels(request.path.rsplit("/", 1)[-1])
        sockets.inc()
        try:
            handler(ws)
        except ConnectionClosed:
            pass
        except Exception:  # noqa: BLE001 - contained on purpose, logged
            log.exception("ws: %s handler failed; closing the socket", request.path)
            try:
                ws.close(reason=1011, message="server error, reconnect")
            except Exception:  # noqa: BLE001 - the socket may be gone already
                pass
        finally:
            sockets.dec()

    return run


def _unavailable(channel: Channel, frame: dict, exc: Exception) -> None:
    """Answer the frame with ``unavailable`` and keep the socket: nothing of the
    frame was stored, and the client may send it again (same client_msg_id)."""
    log.warning("ws: database unavailable for a %s frame: %s", frame.get("type"), exc)
    data = frame.get("data") or {}
    channel.error("unavailable", "the database is busy or unreachable; send it again",
                  data.get("client_msg_id") or frame.get("type"))


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


def _after() -> int:
    try:
        return max(0, int(request.args.get("after", "0")))
    except ValueError:
        return 0


@sock.route("/ws/visitor")
@_contained
def visitor_socket(ws: Any) -> None:
    app = current_app._get_current_object()
    channel = Channel(ws)
    with socket_unit():
        channel.lang = i18n.error_language()
        try:
            visitor = security.visitor_from_token(request.args.get("token"))
        except ServiceError as exc:
            channel.error(exc.code, exc.message)
            return
        conversation = conversations.active_for(visitor)
        if conversation is None:
            conversation = Conversation.select().where(
                Conversation.visitor == visitor.id).order_by(Conversation.id.desc()).first()
        if conversation is None:
            channel.error("no_conversation", "start a session first (POST /api/v1/widget/session)")
            return
        hub = app.extensions["meiqia.hub"]
        # Subscribe before the replay: an event published in between is then
        # both replayed and heard, and the channel skips the second copy.
        sub = hub.subscribe([messages.conversation_topic(conversation.id)])
        present = _bookkeeping("presence", presence.visitor_connected, visitor.id)
        channel.send("hello", conversations.state(conversation))
        can_read = messages.reports_reads(conversation)
        replayed = messages.history(conversation, after=_after())
        for message in replayed:
            channel.send("message", messages.visitor_view(message, can_read), message.id)
        # What the replay brought reached him as surely as a live frame: one UPDATE
        # for the lot, and the agents see their ticks.
        _bookkeeping("delivery of the replay", messages.mark_delivered, conversation, [
            m.id for m in replayed if m.sender_kind in {"agent", "bot"} and not m.delivered_at])

    def delivered(data: dict) -> None:
        if data.get("sender_kind") in {"agent", "bot"}:
            with socket_unit():
                messages.mark_delivered(get_by_id(Conversation, conversation.id), [data["id"]])

    pump = threading.Thread(target=_pump, args=(app, channel, sub, lambda t, e: True,
                                                 delivered), daemon=True)
    pump.start()
    # Not recorded at connect: the first frame tries again.
    last_touch = time.monotonic() if present else float("-inf")
    try:
        for frame in _frames(ws, channel):
            if time.monotonic() - last_touch > PING_SECONDS / 2 and _bookkeeping(
                    "presence", presence.visitor_alive, visitor.id):
                last_touch = time.monotonic()
            try:
                with socket_unit():
                    _visitor_frame(channel, visitor, conversation.id, frame)
            except DATABASE_ERRORS as exc:
                _unavailable(channel, frame, exc)
    finally:
        _stop_pump(channel, sub)
        _bookkeeping("presence", presence.visitor_disconnected, visitor.id)
        pump.join(timeout=2)


def _run_frame(channel: Channel, frame: dict, handlers: dict[str, Any]) -> None:
    """Call the handler of the frame's type; errors become error frames."""
    kind, data = frame["type"], frame.get("data") or {}
    handler = handlers.get(kind)
    try:
        if kind == "ping":
            channel.send("pong", {})
        elif handler is None:
            channel.error("unknown_type", f"unknown message type {kind!r}", kind)
        elif kind == "message":
            started = time.perf_counter()
            handler(data)  # stored and acknowledged
            metrics.ACK_SECONDS.labels(channel.kind).observe(time.perf_counter() - started)
        else:
            handler(data)
    except ServiceError as exc:
        channel.error(exc.code, exc.message, data.get("client_msg_id") or kind)
    except (TypeError, ValueError) as exc:
        channel.error("bad_frame", str(exc), kind)


def _visitor_frame(channel: Channel, visitor: Any, conversation_id: int, frame: dict) -> None:
    from meiqia.services import events

    conversation = get_by_id(Conversation, conversation_id)
    named = frame.get("data", {}).get("conversation_id")
    if named is not None and named != conversation_id:
        # A visitor socket speaks for its own conversation only.
        channel.error("not_found", "no such conversation", frame["type"])
        return

    def message(data: dict) -> None:
        sent, created = conversations.visitor_message(
            visitor, conversation, data.get("body", ""), data.get("client_msg_id"))
        channel.ack(sent, messages.visitor_view(sent, messages.reports_reads(conversation)),
                    created)

    def typing(data: dict) -> None:
        events.emit("typing", conversation.team_id, [messages.team_topic(conversation.team_id)],
                    {"conversation_id": conversation.id, "who": "visitor",
                     "handler_id": conversation.handler_id, "group_id": conversation.group_id,
                     "typing": bool(data.get("typing", True)),
                     "preview": str(data.get("preview", ""))[:200]}, track=False)

    _run_frame(channel, frame, {
        "message": message,
        "typing": typing,
        "read": lambda data: messages.mark_read(conversation, "visitor",
                                                int(data.get("up_to", 0))),
        "human": lambda data: channel.send(
            "conversation", conversations.ask_for_human(visitor, conversation)),
    })


@sock.route("/ws/agent")
@_contained
def agent_socket(ws: Any) -> None:
    app = current_app._get_current_object()
    channel = Channel(ws)
    channel.kind = "agent"
    with socket_unit():
        actor = security.session_agent()
        channel.lang = i18n.error_language()
        if actor is None:
            from meiqia.services.accounts import agent_for_token

            token = request.args.get("api_token")
            actor = agent_for_token(token) if token else None
        if actor is None:
            channel.error("unauthorized", "log in first")
            return
        hub = app.extensions["meiqia.hub"]
        scope = _Scope(actor)
        sub = hub.subscribe([messages.team_topic(actor.team_id),
                             messages.agent_topic(actor.id)], accept=scope.prefilter)
        channel.send("hello", {"agent_id": actor.id, **conversations.lists(actor)})
        after = _after()
        if after:
            replayed = messages.agent_replay(actor, after)
            for old, view in zip(replayed, messages.agent_views(replayed), strict=True):
                channel.send("message", view, old.id)
    _bookkeeping("presence", presence.agent_connected, actor)
    pump = threading.Thread(target=_pump, args=(app, channel, sub, scope.allow), daemon=True)
    pump.start()
    try:
        for frame in _frames(ws, channel):
            try:
                with socket_unit():
                    _agent_frame(channel, actor, frame)
            except DATABASE_ERRORS as exc:
                _unavailable(channel, frame, exc)
    finally:
        _stop_pump(channel, sub)
        _bookkeeping("presence", presence.agent_disconnected, actor)
        pump.join(timeout=2)


#: Seconds an agent socket trusts its cached view of his scope.
SCOPE_CACHE_SECONDS = 30
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
        self.agents: set[int] = set()
        self.groups: set[int] = set()
        self.mentioned: set[int] = set()
        self.per_conversation: dict[int, tuple[bool, float]] = {}

    def refresh(self) -> None:
        now = time.monotonic()
        if now < self.until:
            return
        with socket_unit():
            agents = permissions.visible_agent_ids(self.actor) or set()
            groups = permissions.visible_group_ids(self.actor) or set()
            mentioned = {m.conversation_id for m in Mention.select(
                Mention.conversation).where(Mention.agent == self.actor.id)}
        self.agents, self.groups, self.mentioned = agents, groups, mentioned
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
        elif time.monotonic() >= self.until:
            return None
        if handler is not _MISSING:
            if handler is not None and handler in self.agents:
                return True
            if handler is None and (data.get("group_id") in (None, *self.groups)):
                return True
            return conversation_id in self.mentioned
        cached = self.per_conversation.get(conversation_id)
        if cached and cached[1] > time.monotonic():
            return cached[0]
        if not may_query:
            return None
        with socket_unit():
            conversation = Conversation.get_or_none(Conversation.id == conversation_id)
            ok = bool(conversation) and permissions.can_see_conversation(self.actor, conversation)
        self.per_conversation[conversation_id] = (ok, time.monotonic() + SCOPE_CACHE_SECONDS)
        return ok

    def _ticket(self, data: dict, may_query: bool) -> bool | None:
        """A ticket event, by the ticket rule (``permissions.ticket_filter``): its
        assignee is in his scope, or it has none and no group he cannot see. No
        @mention widening, and no assignee given means not for him: ticket events
        carry old and new values and reply bodies. The one exception is the
        reassignment itself, for whoever could see the ticket's previous assignee."""
        if "assignee_id" not in data:
            return False
        if may_query:
            self.refresh()
        elif time.monotonic() >= self.until:
            return None
        if data.get("previous_assignee_id") in self.agents:
            return True  # the reassignment that took it from someone he sees
        assignee = data["assignee_id"]
        if assignee is not None:
            return assignee in self.agents
        return data.get("group_id") in (None, *self.groups)

    def allow(self, topic: str, event: dict) -> bool:
        return bool(self._decide(topic, event, may_query=True))

    def prefilter(self, topic: str, event: dict) -> bool:
        return self._decide(topic, event, may_query=False) is not False


def _agent_frame(channel: Channel, actor: Any, frame: dict) -> None:
    from meiqia.services import events

    def mine(data: dict) -> Conversation:
        return permissions.get_conversation(actor, int(data.get("conversation_id", 0)))

    def message(data: dict) -> None:
        body = {k: v for k, v in data.items() if k != "conversation_id"}
        sent, created = conversations.agent_send(actor, int(data.get("conversation_id", 0)),
                                                 body)
        # A new message is "sent" on any channel; only a resend's may be further on.
        view = messages.agent_view(sent) if created else messages.agent_views([sent])[0]
        channel.ack(sent, view, created)

    def replay(data: dict) -> None:
        conversation = mine(data)
        can_read = messages.reports_reads(conversation)
        for old in messages.history(conversation, after=int(data.get("after", 0)),
                                    for_visitor=False):
            channel.send("message", messages.agent_view(old, can_read), old.id)

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
    })
