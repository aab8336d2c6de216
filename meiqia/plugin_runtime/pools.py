"""Small, bounded pools of threads: one per plugin and hook.

All hooks used to share one pool of 8 threads: a plugin that hung in
``track_event`` filled it, and every other plugin's calls (the redactor's
among them) waited behind it and timed out. Here each plugin has, for each of
its hooks, its own ``PLUGIN_THREADS`` threads (started as needed) and a backlog of at most ``PLUGIN_BACKLOG`` calls
waiting for them. A burst of calls to a healthy plugin waits a moment in its
backlog; a plugin that hangs fills its own threads and backlog and nothing
else: then a call is refused (``submit`` returns None), which the runtime
counts as a timeout of that plugin, and the breaker soon suspends it. So does
a call while every thread has been running longer than the hook's budget
(``stuck_for``): nobody waits behind a plugin known to hang.

The threads are daemon threads, so a plugin stuck forever does not keep the
process from exiting (``concurrent.futures`` joins its workers at exit).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from meiqia import embedded_server


class PluginPool:
    """``threads`` daemon threads running one plugin's calls, ``backlog`` more waiting."""

    def __init__(self, plugin: str, threads: int, backlog: int = 100) -> None:
        self.plugin = plugin
        self.threads = max(1, threads)
        self.capacity = self.threads + max(0, backlog)
        # gevent's own under gevent: many greenlets submit at once (embedded_server).
        self._slots = embedded_server.bounded_semaphore(self.capacity)
        self._queue: queue.SimpleQueue[tuple[Future, Callable[[], Any]] | None] = \
            queue.SimpleQueue()
        self._workers: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._running = 0
        #: When each running call started (monotonic), by thread.
        self._started: dict[int, float] = {}
        self._closed = False

    @property
    def running(self) -> int:
        """Calls running now: ``threads`` means every thread is taken."""
        return self._running

    def stuck_for(self) -> float:
        """Seconds since the youngest running call started, when every thread is
        taken (0 otherwise): how long the plugin has held all its threads."""
        with self._lock:
            if self._running < self.threads or not self._started:
                return 0.0
            return time.monotonic() - max(self._started.values())

    def submit(self, fn: Callable[[], Any], wait: float = 0.0) -> Future | None:
        """Run ``fn`` on one of the plugin's threads; None when the threads and the
        backlog stay full for ``wait`` seconds. Cancel the future to drop a call
        that has not started."""
        if self._closed:
            return None
        if not (self._slots.acquire(timeout=wait) if wait > 0 else
                self._slots.acquire(blocking=False)):
            return None
        with self._lock:
            if len(self._workers) < self.threads:
                worker = threading.Thread(target=self._work, daemon=True,
                                          name=f"plugin-{self.plugin}-{len(self._workers)}")
                self._workers.append(worker)
                worker.start()
        future: Future = Future()
        self._queue.put((future, fn))
        return future

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            future, fn = item
            try:
                if future.set_running_or_notify_cancel():
                    me = threading.get_ident()
                    with self._lock:
                        self._running += 1
                        self._started[me] = time.monotonic()
                    try:
                        future.set_result(fn())
                    except BaseException as exc:  # noqa: BLE001 - handed to the caller
                        future.set_exception(exc)
                    finally:
                        with self._lock:
                            self._running -= 1
                            self._started.pop(me, None)
            finally:
                self._slots.release()
                # Not kept while waiting for the next call: a failed call's
                # exception (and what it holds) goes when its caller lets go.
                item = future = fn = None

    def close(self) -> None:
        """Stop idle threads; a thread stuck in a plugin stays until it returns."""
        self._closed = True
        for _ in self._workers:
            self._queue.put(None)
