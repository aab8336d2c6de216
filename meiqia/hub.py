"""The event hub: notifications between the parts of the system (DESIGN §1).

``publish(topic, event)`` and ``subscribe(topics)``. Topics are
``conversation:<id>``, ``agent:<id>``, ``team:<id>`` and ``visitor:<id>``.
The hub only carries notifications: every state that matters is already in the
database when something is published, so a lost event costs latency (the client
replays from the database on reconnect), never data.

Two implementations, chosen once from the config: ``MemoryHub`` (one process,
the embedded default) and ``RedisHub`` (pub/sub; one listener thread per process
fans out to local queues, as CTFd's RedisEventManager does).

Gaps. Redis pub/sub forgets what it could not deliver: a publish while Redis is
down, events sent while a listener was disconnected, the events a process had
committed but not yet published when it was killed (-9), or a subscriber queue
that overflowed. The hub notices each of these and asks the subscriptions that
may have missed something to *resync* (``Subscription.request_resync``): the
socket pump then replays from the database everything after the position it
had reached before the gap (meiqia/web/ws.py ``resync``), so a connected client
loses nothing and needs to do nothing. See docs/protocol.md, "Outages".
"""

from __future__ import annotations

import atexit
import datetime
import json
import logging
import queue
import threading
import time
import uuid
import weakref
from collections import defaultdict
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator
from typing import Any

from meiqia.failure_log import FailureLog
from meiqia.failure_log import first_line

log = logging.getLogger(__name__)

#: Events a slow subscriber may have waiting before new ones are dropped for it
#: (a dropped event makes that subscription resync from the database).
MAX_PENDING = 10_000
#: The marker a resync request puts in a subscription's queue, to wake its pump.
RESYNC: tuple[str, dict] = ("", {"type": "_resync"})
#: The type of a control event (``BaseHub.resync``): the subscriptions of its
#: topic resync instead of receiving it.
RESYNC_EVENT = "_resync"
#: The Redis listener's first and longest wait before it reconnects (seconds).
LISTEN_BACKOFF = (0.1, 2.0)
#: A process's heartbeat in Redis (seconds); one silent for PEER_TIMEOUT is dead.
#: Not less: a gevent worker busy with a connect storm of thousands of sockets
#: missed a 3 s deadline, the other process took it for dead, and every socket
#: of both resynced from the database at once (the 10,000-socket benchmark).
PEER_INTERVAL = 1.0
PEER_TIMEOUT = 8.0


class SharedData(dict):
    """An event's ``data`` as every local subscriber receives it: one object per
    event and process, so a socket frame made of it is encoded once per fan-out
    instead of once per socket (meiqia/web/ws.py ``Channel.send`` keeps the
    encoded frames in ``frames``). At 300 messages/s and 50 agent sockets on the
    team topic, that was 15,000 ``json.dumps`` of the same event a second.
    Read-only for subscribers: a socket that shapes data (the visitor's privacy
    filter) makes a new dict, which is encoded for that socket alone."""

    __slots__ = ("frames",)

    def __init__(self, data: dict) -> None:
        super().__init__(data)
        self.frames: dict[tuple[str, Any], str] = {}


class Subscription:
    """A local queue of (topic, event) pairs for one client.

    ``accept(topic, event)``, when given, runs in the publishing thread (the
    memory hub) or the Redis listener before an event is queued: an agent
    socket hears its whole team topic but shows only what is in its scope, and
    dropping the rest here spares one thread wake-up per event per socket (at
    300 messages/s and 50 agent sockets, 15,000 wake-ups a second). It must be
    cheap and must not query the database; when unsure it returns True and the
    subscriber decides.
    """

    def __init__(self, hub: BaseHub, topics: Iterable[str],
                 accept: Callable[[str, dict], bool] | None = None) -> None:
        self.hub = hub
        self.topics: set[str] = set()
        self.queue: queue.Queue[tuple[str, dict]] = queue.Queue(MAX_PENDING)
        self.closed = False
        self.accept = accept
        #: Called (no arguments) after something was queued: the socket's pump
        #: starts only then (meiqia/web/ws.py ``_Pump``). Cheap, never blocking.
        self.notify: Callable[[], None] | None = None
        #: Wall-clock time (``time.time()``) from which events may be missing
        #: from this queue, or None: set by ``request_resync``, taken by the pump.
        self.resync_since: float | None = None
        self._resync_lock = threading.Lock()
        for topic in topics:
            self.add(topic)

    def add(self, topic: str) -> None:
        if topic not in self.topics:
            self.topics.add(topic)
            self.hub._attach(topic, self)

    def remove(self, topic: str) -> None:
        if topic in self.topics:
            self.topics.discard(topic)
            self.hub._detach(topic, self)

    def get(self, timeout: float | None = None) -> tuple[str, dict] | None:
        """Next (topic, event), or None after ``timeout`` seconds."""
        try:
            return self.queue.get(timeout=timeout)
        except queue.Empty:
            return None

    def drain(self) -> list[tuple[str, dict]]:
        """Everything waiting now, without blocking."""
        items = []
        while True:
            try:
                items.append(self.queue.get_nowait())
            except queue.Empty:
                return items

    def __iter__(self) -> Iterator[tuple[str, dict]]:
        while not self.closed:
            item = self.get(timeout=0.5)
            if item is not None:
                yield item

    def close(self) -> None:
        for topic in list(self.topics):
            self.remove(topic)
        self.closed = True

    def request_resync(self, since: float) -> None:
        """Events published from ``since`` (wall clock) on may not have reached
        this queue. The earliest such time is kept until the pump takes it; the
        marker wakes a pump that waits for events."""
        with self._resync_lock:
            if self.resync_since is None or since < self.resync_since:
                self.resync_since = since
        try:
            self.queue.put_nowait(RESYNC)
        except queue.Full:
            pass  # a full queue has a busy pump, which checks the flag before each event
        self._notify()

    def take_resync(self) -> float | None:
        """The pending resync's time, cleared; None when there is none."""
        with self._resync_lock:
            since, self.resync_since = self.resync_since, None
        return since

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _deliver(self, topic: str, event: dict) -> None:
        if self.accept is not None:
            try:
                if not self.accept(topic, event):
                    return
            except Exception:  # noqa: BLE001 - a broken filter must not lose events
                log.exception("hub: accept filter failed; event queued anyway")
        try:
            self.queue.put_nowait((topic, event))
        except queue.Full:
            if self.resync_since is None:
                # Once per episode: the drops that follow until the pump has
                # resynced are covered by the same resync (logging each one cost
                # more CPU than the drops in the collapse at 300 msg/s).
                log.warning("hub: subscriber queue full, event on %s dropped; resyncing "
                            "(further drops before the resync are not logged)", topic)
            self.request_resync(time.time())
            return
        self._notify()

    def _notify(self) -> None:
        notify = self.notify
        if notify is not None:
            try:
                notify()
            except Exception:  # noqa: BLE001 - one socket must not stop the fan-out
                log.exception("hub: a subscriber's wake-up failed")


class BaseHub:
    """Local fan-out shared by both hubs."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: dict[str, set[Subscription]] = defaultdict(set)

    def subscribe(self, topics: Iterable[str],
                  accept: Callable[[str, dict], bool] | None = None) -> Subscription:
        return Subscription(self, topics, accept)

    def _attach(self, topic: str, sub: Subscription) -> None:
        with self._lock:
            self._subscribers[topic].add(sub)

    def _detach(self, topic: str, sub: Subscription) -> None:
        with self._lock:
            subs = self._subscribers.get(topic)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._subscribers[topic]

    def _fan_out(self, topic: str, event: dict) -> None:
        with self._lock:
            subs = list(self._subscribers.get(topic, ()))
        if event.get("type") == RESYNC_EVENT:
            since = event.get("since")
            if isinstance(since, int | float):
                for sub in subs:
                    sub.request_resync(float(since))
            return
        if not subs:
            return
        data = event.get("data")
        if isinstance(data, dict) and not isinstance(data, SharedData):
            # A new event dict: the publisher's own stays as it was.
            event = {**event, "data": SharedData(data)}
        for sub in subs:
            sub._deliver(topic, event)

    def resync(self, topics: Iterable[str], since: float) -> None:
        """Make the subscriptions of ``topics``, in every process, resync from
        ``since``: something stored then may never have been published (a
        resent message whose first try failed after its COMMIT)."""
        for topic in topics:
            self.publish(topic, {"type": RESYNC_EVENT, "since": since})

    def _resync_all(self, since: float) -> int:
        """Ask every local subscription to resync from ``since``; how many."""
        with self._lock:
            subs = {sub for group in self._subscribers.values() for sub in group}
        for sub in subs:
            sub.request_resync(since)
        return len(subs)

    def publish(self, topic: str, event: dict) -> None:
        raise NotImplementedError

    def publish_many(self, items: list[tuple[str, dict]]) -> None:
        """Publish several (topic, event) pairs, in order (one round trip on Redis)."""
        for topic, event in items:
            self.publish(topic, event)

    def health(self) -> dict[str, Any]:
        raise NotImplementedError

    def close(self) -> None:
        """Stop background threads (Redis listener); the memory hub has none."""


class MemoryHub(BaseHub):
    """In-process hub: publish hands the event straight to local subscribers."""

    kind = "memory"

    def publish(self, topic: str, event: dict) -> None:
        self._fan_out(topic, event)

    def health(self) -> dict[str, Any]:
        return {"ok": True, "kind": self.kind}


class RedisHub(BaseHub):
    """Redis pub/sub hub: every process hears every topic and keeps what it needs.

    One pattern subscription per process (``<prefix>:hub:*``) instead of one
    channel per topic: subscriptions never change at run time, so there is no
    window in which a new subscriber misses an event, and the listener thread is
    the only user of its connection. Each process receives all events; at our
    scale (a handful of web processes) that costs less than it saves.

    Publishing never raises: if Redis is down the event is dropped and logged,
    and the hub closes the gap three ways (module docstring):

    * a failed publish is remembered; once Redis answers, the listener
      broadcasts a resync (channel ``<prefix>:hub:_resync``) that every
      process's listener, this one's included, turns into a resync of its local
      subscriptions;
    * a listener that lost its connection resyncs its own subscriptions from
      the moment it noticed, as soon as its new subscription is confirmed and
      before it hands on any event heard on it (so nothing newer overtakes
      the replay); also when redis-py's own retry reconnected and subscribed
      again inside a read, which it does silently when Redis is still up;
    * every process keeps a heartbeat in the hash ``<prefix>:hub-peers``; the
      first process that finds a peer silent for PEER_TIMEOUT (killed, it may
      have committed messages it never published) removes it and broadcasts a
      resync from its last heartbeat. A hub that closes cleanly, or whose
      process exits normally (``atexit``), leaves the hash itself, unless a
      failed publish of it is still unannounced.

    ``health()`` is not ok while the listener is disconnected or a failed
    publish has not been announced yet: that is when delivery is behind.
    """

    kind = "redis"
    #: The hub's own control topic (no real topic has this form).
    RESYNC_TOPIC = "_resync"

    def __init__(self, client: Any, prefix: str) -> None:
        super().__init__()
        self.client = client
        self.prefix = prefix + ":hub:"
        self.peers_key = prefix + ":hub-peers"
        self.id = uuid.uuid4().hex
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._state = threading.Lock()
        #: When the listener lost Redis (its creation, at first): its
        #: subscriptions resync from then once it listens again.
        self._down_since: float | None = time.time()
        self._listen_error: str | None = None
        #: Publishes that failed and are not yet announced: a counter and the
        #: earliest failure's time.
        self._failures = 0
        self._failed_since: float | None = None
        self._publish_error: str | None = None
        #: A Redis outage fails every publish and every reconnection of the listener:
        #: one warning each when it starts, a count meanwhile, one line when it ends.
        self._publish_log = FailureLog(log, "hub: publishing to Redis",
                                       "a resync follows when Redis is back")
        self._listen_log = FailureLog(
            log, "hub: the Redis listener",
            f"retrying in {LISTEN_BACKOFF[0]:g} s, backing off to {LISTEN_BACKOFF[1]:g} s")
        #: Resyncs this process's subscriptions were asked for (tests, health).
        self.resyncs = 0
        #: Each peer's last beat as read, and when by this process's monotonic clock
        #: it was first read so (``_heartbeat``).
        self._peer_beats: dict[str, tuple[Any, float]] = {}
        self._thread = threading.Thread(
            target=self._listen, name="meiqia-hub-listener", daemon=True
        )
        self._thread.start()
        # A process that exits normally leaves the peers itself: only a killed one
        # may have lost publishes, and only its silence should make every socket
        # resync. Without this, every short-lived process with the app (``meiqia db
        # upgrade`` before each deploy, any CLI command) was found "silent" 8 s
        # after it ended, and every socket of every process resynced.
        atexit.register(_leave_at_exit, weakref.ref(self))

    def publish(self, topic: str, event: dict) -> None:
        self.publish_many([(topic, event)])

    def publish_many(self, items: list[tuple[str, dict]]) -> None:
        """Every pair in one pipeline: a chat message is published to the team's
        and the conversation's topic, and a round trip each was a wait each."""
        topic = ", ".join(t for t, _ in items)
        try:
            if len(items) == 1:
                self.client.publish(self.prefix + items[0][0],
                                    json.dumps(items[0][1], ensure_ascii=False))
            else:
                pipe = self.client.pipeline(transaction=False)
                for name, event in items:
                    pipe.publish(self.prefix + name, json.dumps(event, ensure_ascii=False))
                pipe.execute()
        except Exception as exc:  # noqa: BLE001 - Redis down must not break a write
            with self._state:
                self._failures += 1
                if self._failed_since is None:
                    self._failed_since = time.time()
                self._publish_error = str(exc)
            self._publish_log.failed(f"hub: publish to {topic} failed ({first_line(exc)})")
        else:
            self._publish_log.succeeded()

    def wait_ready(self, timeout: float = 5.0) -> bool:
        """Block until the listener is connected (tests and start-up)."""
        return self._ready.wait(timeout)

    def _listen(self) -> None:
        backoff = LISTEN_BACKOFF[0]
        while not self._stop.is_set():
            pubsub = None
            try:
                pubsub = self.client.pubsub()
                pubsub.psubscribe(self.prefix + "*")
                next_beat = 0.0
                confirmed = False
                last_read = time.time()  # the connection was sound up to here
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=0.2)
                    sound_until, last_read = last_read, time.time()
                    if message is not None:
                        if message.get("type") == "psubscribe" and not confirmed:
                            confirmed = True
                            self._listening()
                            backoff = LISTEN_BACKOFF[0]
                        elif message.get("type") == "psubscribe":
                            # redis-py's retry reconnected and subscribed again inside
                            # get_message (a dropped connection, Redis up): events of
                            # that moment were lost all the same.
                            log.warning("hub: listener reconnected by the client; resyncing")
                            if self._resync_all(sound_until):
                                self.resyncs += 1
                        elif message.get("type") == "pmessage":
                            self._heard(message)
                    if not self._ready.is_set():
                        continue
                    if self._failed_since is not None:
                        self._announce()
                    if time.monotonic() >= next_beat:
                        next_beat = time.monotonic() + PEER_INTERVAL
                        self._heartbeat()
            except Exception as exc:  # noqa: BLE001 - keep listening through outages
                with self._state:
                    if self._ready.is_set() or self._down_since is None:
                        self._down_since = time.time()
                    self._ready.clear()
                    self._listen_error = str(exc)
                self._listen_log.failed(
                    f"hub: Redis listener lost connection ({first_line(exc)})")
                self._stop.wait(backoff)
                backoff = min(backoff * 2, LISTEN_BACKOFF[1])
            finally:
                if pubsub is not None:
                    try:
                        pubsub.close()
                    except Exception:  # noqa: BLE001 - already broken
                        pass

    def _listening(self) -> None:
        """The pattern subscription is confirmed: from here on every event
        reaches this process. What came before, while it was not listening,
        the local subscriptions replay from the database."""
        with self._state:
            since, self._down_since = self._down_since, None
            self._listen_error = None
        self._ready.set()
        self._listen_log.succeeded()
        if since is not None and self._resync_all(since):
            self.resyncs += 1
            log.warning("hub: listening again; local sockets resync from the database")

    def _heard(self, message: dict) -> None:
        channel = message["channel"]
        if isinstance(channel, bytes):
            channel = channel.decode()
        try:
            event = json.loads(message["data"])
        except (TypeError, ValueError):
            return
        topic = channel[len(self.prefix):]
        if topic == self.RESYNC_TOPIC:
            since = event.get("since") if isinstance(event, dict) else None
            if isinstance(since, int | float):
                self._resync_all(float(since))
                self.resyncs += 1
            return
        self._fan_out(topic, event)

    def _broadcast_resync(self, since: float, **why: Any) -> None:
        self.client.publish(self.prefix + self.RESYNC_TOPIC,
                            json.dumps({"since": since, "by": self.id, **why}))

    def _announce(self) -> None:
        """Tell every process (this one too) to resync from the first failed publish."""
        with self._state:
            count, since = self._failures, self._failed_since
        if since is None:
            return
        try:
            self._broadcast_resync(since, reason="publish failed")
        except Exception as exc:  # noqa: BLE001 - tried again on the next turn
            log.warning("hub: resync broadcast failed (%s); trying again", exc)
            return
        with self._state:
            if self._failures == count:  # no new failure while announcing
                self._failed_since = None
                self._publish_error = None
        log.warning("hub: publishes had failed; every process resyncs its sockets")

    def _heartbeat(self) -> None:
        """Say this process is alive; find peers that went silent (killed).

        Silent means a peer's beat has not changed for PEER_TIMEOUT by this
        process's own clock, not that its value is old: each process writes its
        own ``time.time()``, and a host whose clock was 8 s behind was taken for
        dead at every beat, so every socket of every process resynced once a second
        for as long as it ran (an outside check under ``faketime -30s``)."""
        now = time.time()
        seen_at = time.monotonic()
        try:
            pipe = self.client.pipeline(transaction=False)
            pipe.hset(self.peers_key, self.id, repr(now))
            pipe.hgetall(self.peers_key)
            peers = {(k.decode() if isinstance(k, bytes) else k): v
                     for k, v in pipe.execute()[1].items()}
            beats = self._peer_beats
            for gone in set(beats) - set(peers):
                del beats[gone]  # left, or found silent by another process
            for peer, seen in peers.items():
                if peer == self.id:
                    continue
                beat = beats.get(peer)
                if beat is None or beat[0] != seen:
                    beats[peer] = (seen, seen_at)  # it beat since the last look
                    continue
                if seen_at - beat[1] < PEER_TIMEOUT:
                    continue
                del beats[peer]
                if self.client.hdel(self.peers_key, peer):  # one process announces it
                    log.warning("hub: process %s went silent; every process resyncs", peer)
                    try:
                        last = float(seen)
                    except (TypeError, ValueError):
                        last = 0.0
                    # From its last beat by its clock, or from before PEER_TIMEOUT by
                    # ours where that is earlier (its clock ahead): too early costs
                    # reads, too late would miss what it stored.
                    self._broadcast_resync(min(last, now - PEER_TIMEOUT - PEER_INTERVAL),
                                           reason="process lost", peer=peer)
        except Exception as exc:  # noqa: BLE001 - the next beat tries again
            log.warning("hub: heartbeat failed (%s)", exc)

    def health(self) -> dict[str, Any]:
        try:
            self.client.ping()
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            return {"ok": False, "kind": self.kind, "listening": False, "error": str(exc)}
        if not self._ready.is_set() and not self._stop.is_set():
            self._ready.wait(1.0)  # just started, or reconnecting right now
        with self._state:
            listening = self._ready.is_set()
            pending = self._failed_since is not None
            down_since, failed_since = self._down_since, self._failed_since
            error = None
            if not listening:
                error = ("not listening to Redis since "
                         f"{_iso(down_since)}: {self._listen_error or 'connecting'}")
            elif pending:
                error = (f"events could not be published since {_iso(failed_since)} "
                         f"({self._publish_error}); sockets resync when it is announced")
        health: dict[str, Any] = {"ok": error is None, "kind": self.kind,
                                  "listening": listening, "resync_pending": pending,
                                  "resyncs": self.resyncs}
        if error:
            health["error"] = error
        return health

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=3)
        self._leave()

    def _leave(self) -> None:
        """Leave the peers' hash, unless a failed publish is still unannounced
        (then this process's silence makes the others resync: nothing it
        failed to publish is lost) or Redis is unreachable (the same)."""
        if not self._ready.is_set():
            return  # Redis unreachable: the peers forget this process by its silence
        self._announce()
        with self._state:
            if self._failed_since is not None:
                return
        try:
            self.client.hdel(self.peers_key, self.id)
        except Exception:  # noqa: BLE001 - the same, a moment later
            pass


def _leave_at_exit(ref: weakref.ref[RedisHub]) -> None:
    """At a normal exit: a hub still open leaves the peers (``RedisHub._leave``)."""
    hub = ref()
    if hub is not None and not hub._stop.is_set():
        hub._stop.set()
        hub._leave()


def _iso(stamp: float | None) -> str:
    if stamp is None:
        return "?"
    return datetime.datetime.fromtimestamp(stamp, datetime.UTC).isoformat(
        timespec="seconds").replace("+00:00", "Z")


def make_redis(url: str, timeout: float) -> Any:
    """A Redis client that fails fast (STACK.md: defaults block for seconds)."""
    import redis
    from redis.backoff import ExponentialBackoff
    from redis.retry import Retry

    return redis.Redis.from_url(
        url,
        socket_timeout=max(timeout, 1.0) * 4,
        socket_connect_timeout=timeout,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 1),
        health_check_interval=15,
    )


def init_app(app: Any) -> BaseHub:
    """Choose the hub from ``REDIS_URL`` and keep it in ``app.extensions``."""
    if app.config["REDIS_URL"]:
        client = make_redis(app.config["REDIS_URL"], app.config["REDIS_TIMEOUT"])
        hub: BaseHub = RedisHub(client, app.config["REDIS_PREFIX"])
    else:
        hub = MemoryHub()
    app.extensions["meiqia.hub"] = hub
    return hub


def wait_for(predicate: Any, timeout: float = 5.0, interval: float = 0.01) -> bool:
    """Poll ``predicate`` until true or ``timeout``; for tests and start-up."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())
