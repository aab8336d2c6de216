"""The event hub: notifications between the parts of the system (DESIGN §1).

``publish(topic, event)`` and ``subscribe(topics)``. Topics are
``conversation:<id>``, ``agent:<id>``, ``team:<id>`` and ``visitor:<id>``.
The hub only carries notifications: every state that matters is already in the
database when something is published, so a lost event costs latency (the client
replays from the database on reconnect), never data.

Two implementations, chosen once from the config: ``MemoryHub`` (one process,
the embedded default) and ``RedisHub`` (pub/sub; one listener thread per process
fans out to local queues, as CTFd's RedisEventManager does).
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator
from typing import Any

log = logging.getLogger(__name__)

#: Events a slow subscriber may have waiting before new ones are dropped for it.
MAX_PENDING = 10_000


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
            log.warning("hub: subscriber queue full, event on %s dropped", topic)


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
        for sub in subs:
            sub._deliver(topic, event)

    def publish(self, topic: str, event: dict) -> None:
        raise NotImplementedError

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
    and clients catch up from the database when they reconnect.
    """

    kind = "redis"

    def __init__(self, client: Any, prefix: str) -> None:
        super().__init__()
        self.client = client
        self.prefix = prefix + ":hub:"
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(
            target=self._listen, name="meiqia-hub-listener", daemon=True
        )
        self._thread.start()

    def publish(self, topic: str, event: dict) -> None:
        data = json.dumps(event, ensure_ascii=False)
        try:
            self.client.publish(self.prefix + topic, data)
        except Exception as exc:  # noqa: BLE001 - Redis down must not break a write
            log.warning("hub: publish to %s failed: %s", topic, exc)

    def wait_ready(self, timeout: float = 5.0) -> bool:
        """Block until the listener is connected (tests and start-up)."""
        return self._ready.wait(timeout)

    def _listen(self) -> None:
        backoff = 0.2
        cut = len(self.prefix)
        while not self._stop.is_set():
            pubsub = None
            try:
                pubsub = self.client.pubsub(ignore_subscribe_messages=True)
                pubsub.psubscribe(self.prefix + "*")
                self._ready.set()
                backoff = 0.2
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=0.5)
                    if message is None or message.get("type") != "pmessage":
                        continue
                    channel = message["channel"]
                    if isinstance(channel, bytes):
                        channel = channel.decode()
                    try:
                        event = json.loads(message["data"])
                    except (TypeError, ValueError):
                        continue
                    self._fan_out(channel[cut:], event)
            except Exception as exc:  # noqa: BLE001 - keep listening through outages
                self._ready.clear()
                log.warning("hub: Redis listener lost connection (%s); retrying", exc)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                if pubsub is not None:
                    try:
                        pubsub.close()
                    except Exception:  # noqa: BLE001 - already broken
                        pass

    def health(self) -> dict[str, Any]:
        try:
            self.client.ping()
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            return {"ok": False, "kind": self.kind, "error": str(exc)}
        return {"ok": True, "kind": self.kind, "listening": self._ready.is_set()}

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=3)


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
