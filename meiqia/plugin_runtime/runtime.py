"""One call of one plugin's hook: budget, isolation, figures and the breaker.

``PluginRuntime.run`` is the only way meiqia calls a plugin at run time (the
manager's ``call``/``call_first``/``call_flat`` go through it, and so do
answerers and ticket sinks). For each call it

1. skips a plugin an admin turned off (for the server or for the call's team:
   as if it did not implement the hook) or one the breaker suspended
   (``state``; reported as a failure of kind ``suspended``, so privacy hooks
   fail closed);
2. runs the implementation: a built-in on the caller's thread (it is meiqia's
   own code), anything else on the plugin's own pool (``pools``), waiting at
   most the hook's budget (``budgets``), a wait for a free thread included;
3. logs a failure as ``plugin <name>: hook <hook> raised|timed out|…``, keeps
   per-hook counts and latency (this process's), and opens the breaker when one
   of the plugin's hooks has failed ``PLUGIN_BREAKER_FAILURES`` times in a row:
   the plugin is suspended for ``PLUGIN_SUSPEND_SECONDS``, on every process
   (``state``). The failures in a row are counted per hook, and a success resets
   only its own hook's count: a redactor that hangs on every message is not
   kept going by the same plugin's ``track_event`` succeeding in between. When
   the suspension ends, calls are let through; the first failure of a hook that
   has not succeeded since suspends the plugin again, a success resets its hook.
"""

from __future__ import annotations

import contextvars
import datetime
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from collections.abc import Mapping
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from dataclasses import field
from typing import Any

from meiqia import embedded_server
from meiqia import metrics
from meiqia.models.base import utcnow
from meiqia.plugin_runtime.budgets import budget_for
from meiqia.plugin_runtime.pools import PluginPool

log = logging.getLogger("meiqia.plugins")

#: Failures kept per plugin for the Plugins page.
RECENT_ERRORS = 10
#: Latencies kept per plugin and hook for the percentiles of the Plugins page.
LATENCY_SAMPLES = 200


@dataclass(frozen=True)
class Failure:
    """A call that gave no usable answer: ``kind`` is ``raised``, ``timeout``,
    ``busy`` (all the plugin's threads still running), ``suspended`` or
    ``malformed`` (it answered something the hook cannot use: ``run``'s ``check``)."""

    plugin: str
    hook: str
    kind: str
    detail: str = ""

    def __str__(self) -> str:
        return f"plugin {self.plugin}: hook {self.hook} {self.describe()}"

    def describe(self) -> str:
        return {
            "raised": f"raised {self.detail}",
            "timeout": f"timed out after {self.detail}",
            "busy": f"timed out: all its threads are still running ({self.detail})",
            "suspended": f"skipped: the plugin is {self.detail}",
            "malformed": f"returned an unusable result: {self.detail}",
        }.get(self.kind, self.detail)


@dataclass
class HookCall:
    """Results of every implementation that answered, and who failed."""

    results: list[Any] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)


@dataclass
class HookFigures:
    calls: int = 0
    errors: int = 0
    timeouts: int = 0
    skipped: int = 0
    #: Notifications dropped because the plugin's threads and backlog were full.
    dropped: int = 0
    seconds: float = 0.0
    samples: deque = field(default_factory=lambda: deque(maxlen=LATENCY_SAMPLES))

    def as_dict(self) -> dict[str, Any]:
        ordered = sorted(self.samples)

        def pct(p: float) -> float | None:
            if not ordered:
                return None
            return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000, 2)

        return {"calls": self.calls, "errors": self.errors, "timeouts": self.timeouts,
                "skipped": self.skipped, "dropped": self.dropped,
                "mean_ms": round(self.seconds / self.calls * 1000, 2) if self.calls else None,
                "p50_ms": pct(0.5), "p95_ms": pct(0.95)}


@dataclass
class Settings:
    """The runtime's part of the configuration (see meiqia/config.py)."""

    ceiling: float = 5.0
    budgets: Mapping[str, float] = field(default_factory=dict)
    threads: int = 4
    backlog: int = 100
    breaker_failures: int = 5
    suspend_seconds: float = 300.0

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Settings:
        return cls(ceiling=config["HOOK_TIMEOUT"], budgets=config["HOOK_BUDGETS"],
                   threads=config["PLUGIN_THREADS"], backlog=config["PLUGIN_BACKLOG"],
                   breaker_failures=config["PLUGIN_BREAKER_FAILURES"],
                   suspend_seconds=config["PLUGIN_SUSPEND_SECONDS"])


def team_of(kwargs: Mapping[str, Any]) -> int | None:
    """The team a call is about (for per-team switches), when its arguments say."""
    for key in ("conversation", "actor"):
        team_id = getattr(kwargs.get(key), "team_id", None)
        if isinstance(team_id, int):
            return team_id
    event = kwargs.get("event")
    if isinstance(event, dict) and isinstance(event.get("team_id"), int):
        return event["team_id"]
    return None


def _close_thread_connection() -> None:
    """A plugin thread gives its database connection back after each call."""
    try:
        from meiqia.db import database

        if database.obj is not None and not database.is_closed():
            database.close()
    except Exception:  # noqa: BLE001 - no database bound (unit tests), or gone
        pass


class PluginRuntime:
    """Runs plugin code under the rules above; one per application."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        #: plugin name -> origin (``built-in`` runs inline, the rest on pools).
        self.origins: dict[str, str] = {}
        self.store: Any = None  # plugin_runtime.state.StateStore, once the app has a database
        #: (plugin, hook) -> pool.
        self._pools: dict[tuple[str, str], PluginPool] = {}
        self._figures: dict[tuple[str, str], HookFigures] = {}
        #: (plugin, hook) -> failures of that hook in a row (the breaker's count).
        self._failures_in_row: dict[tuple[str, str], int] = {}
        #: Plugins the breaker has suspended since the last Reset: a hook that has not
        #: succeeded since counts as one failure short of the limit (half-open).
        self._tripped: set[str] = set()
        #: (plugin, hook) whose last call in this process failed (for /healthz).
        self._last_failed: set[tuple[str, str]] = set()
        self._recent: dict[str, deque] = {}
        #: plugin -> ``time.perf_counter()`` of the admin's last Reset here.
        self._reset_at: dict[str, float] = {}
        self._lock = threading.Lock()

    # --- state -------------------------------------------------------------------

    def budget(self, hook: str) -> float:
        return budget_for(hook, self.settings.budgets, self.settings.ceiling)

    def is_off(self, plugin: str, team_id: int | None) -> bool:
        """Turned off by an admin: not called, as if it did not implement the hook."""
        return self.store is not None and self.store.is_off(plugin, team_id)

    def skip_reason(self, plugin: str, team_id: int | None) -> str | None:
        """Why the breaker keeps ``plugin`` from being called now, or None."""
        if self.store is None:
            return None
        return self.store.skip_reason(plugin, team_id)

    def figures(self, plugin: str) -> dict[str, dict[str, Any]]:
        """This process's counts and latency of ``plugin``, by hook."""
        with self._lock:
            return {hook: fig.as_dict() for (name, hook), fig in sorted(self._figures.items())
                    if name == plugin}

    def recent_errors(self, plugin: str) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._recent.get(plugin, ()))

    def failing(self) -> list[str]:
        """Plugins with a hook whose last call in this process failed (for /healthz),
        whatever their other hooks did since."""
        with self._lock:
            return sorted({name for name, _hook in self._last_failed})

    def busy_threads(self, plugin: str) -> int:
        return sum(pool.running for (name, _lane), pool in list(self._pools.items())
                   if name == plugin)

    def _pool(self, plugin: str, hook: str) -> PluginPool:
        """The plugin's pool for one hook: a plugin stuck in ``track_event`` or
        ``assign_agent`` does not delay its own redaction (the chaos benchmark
        measured 1 s waits when one pool served all of a plugin's hooks)."""
        pool = self._pools.get((plugin, hook))
        if pool is None:
            with self._lock:
                pool = self._pools.setdefault((plugin, hook), PluginPool(
                    f"{plugin}-{hook}", self.settings.threads, self.settings.backlog))
        return pool

    def _fig(self, plugin: str, hook: str) -> HookFigures:
        key = (plugin, hook)
        fig = self._figures.get(key)
        if fig is None:
            with self._lock:
                fig = self._figures.setdefault(key, HookFigures())
        return fig

    # --- calling ----------------------------------------------------------------------

    def run(self, plugin: str, hook: str, fn: Callable[..., Any], kwargs: dict[str, Any],
            *, team_id: int | None = None, budget: float | None = None,
            inline: bool | None = None, breaker: bool = True,
            check: Callable[[Any], str | None] | None = None) -> tuple[Any, Failure | None]:
        """Call ``fn(**kwargs)`` as ``plugin``'s ``hook``: ``(result, None)`` or
        ``(None, failure)``. Never raises what the plugin raised. ``check(result)``
        says why an answer cannot be used (without its values: they may be private),
        or None: such an answer is a failure of kind ``malformed``, counted, logged
        and held against the breaker like raising. ``breaker=False``:
        failures are recorded but never suspend the plugin (a ticket sink fails
        when one team's receiver is down; its jobs retry with backoff). A plugin
        an admin turned off gives ``(None, None)``: no answer, and no failure."""
        if self.is_off(plugin, team_id):
            self._fig(plugin, hook).skipped += 1
            return None, None
        reason = self.skip_reason(plugin, team_id)
        if reason is not None:
            metrics.PLUGIN_CALLS.labels(plugin, hook, "suspended").inc()
            self._fig(plugin, hook).skipped += 1
            return None, Failure(plugin, hook, "suspended", reason)
        budget = self.budget(hook) if budget is None else budget
        if inline is None:
            inline = self.origins.get(plugin) == "built-in"
        started = time.perf_counter()
        if inline:
            try:
                result = fn(**kwargs)
            except Exception as exc:  # noqa: BLE001 - isolated, logged with the names
                return None, self._failed(plugin, hook, "raised", exc, started, breaker)
            return self._answered(plugin, hook, result, started, breaker, check)
        if embedded_server.is_patched():
            return self._run_in_greenlet(plugin, hook, fn, kwargs, budget, started, breaker,
                                         check)
        context = contextvars.copy_context()  # Flask's app and request context

        def call() -> Any:
            try:
                return context.run(fn, **kwargs)
            finally:
                _close_thread_connection()

        # Wait for a thread within the budget (a burst queues a moment); a plugin
        # whose threads all ran past the budget, or whose threads and backlog stay
        # full, is timing out: nobody queues behind it.
        pool = self._pool(plugin, hook)
        stuck = pool.stuck_for()
        if stuck > budget:
            return None, self._failed(plugin, hook, "busy", self._full(stuck), started, breaker)
        future = pool.submit(call, wait=budget)
        if future is None:
            return None, self._failed(plugin, hook, "busy", self._full(), started, breaker)
        try:
            result = future.result(timeout=max(0.0, budget - (time.perf_counter() - started)))
        except FutureTimeout:
            future.cancel()  # not started yet: dropped, its slot freed
            return None, self._failed(plugin, hook, "timeout", f"{budget:g}s", started, breaker)
        except Exception as exc:  # noqa: BLE001 - isolated, logged with the names
            # Break exc -> traceback -> this frame -> future -> exc: left to the
            # garbage collector, what the exception holds (an HTTP error's socket)
            # would be freed at some later moment instead of now.
            future = None
            return None, self._failed(plugin, hook, "raised", exc, started, breaker)
        return self._answered(plugin, hook, result, started, breaker, check)

    def _run_in_greenlet(self, plugin: str, hook: str, fn: Callable[..., Any],
                         kwargs: dict[str, Any], budget: float, started: float,
                         breaker: bool, check: Callable[[Any], str | None] | None = None
                         ) -> tuple[Any, Failure | None]:
        """Under gevent (``meiqia run``, gunicorn's gevent worker): the call runs in
        the caller's greenlet, its budget a ``gevent.Timeout``.

        A pool "thread" there is a greenlet on the same OS thread, so it isolates
        nothing a timeout does not, and each hand-off to it and back waits a whole
        turn of the event loop behind every busy socket: at 300 messages/s on
        ``meiqia run``, socket frames held their database turn through two such
        waits for each agent suggestion (``candidates_for``), the frames behind
        them timed out, and the process sat mostly idle (issue 19's profile). The
        timeout interrupts a plugin where it waits (network, database, sleep);
        one that computes past its budget without waiting is timed out when it
        returns, as a pool call's late answer is dropped.
        """
        from gevent import Timeout

        timer = Timeout(budget)
        timer.start()
        try:
            result = fn(**kwargs)
        except Timeout as exc:
            if exc is not timer:
                raise
            return None, self._failed(plugin, hook, "timeout", f"{budget:g}s", started, breaker)
        except Exception as exc:  # noqa: BLE001 - isolated, logged with the names
            return None, self._failed(plugin, hook, "raised", exc, started, breaker)
        finally:
            timer.close()
        if time.perf_counter() - started > budget:
            return None, self._failed(plugin, hook, "timeout", f"{budget:g}s", started, breaker)
        return self._answered(plugin, hook, result, started, breaker, check)

    def notify(self, plugin: str, hook: str, fn: Callable[..., Any], kwargs: dict[str, Any],
               *, team_id: int | None = None) -> Failure | None:
        """Run a notification on the plugin's pool and return at once. A pool whose
        threads all ran past the budget (a hang) is a failure (``busy``) now; a full
        pool whose threads are within it drops the event for this plugin, counted
        as ``dropped``, no failure. The budget is the call's own run (not its wait
        in the backlog); raising or overrunning it is recorded when the call ends."""
        if self.is_off(plugin, team_id):
            self._fig(plugin, hook).skipped += 1
            return None
        reason = self.skip_reason(plugin, team_id)
        if reason is not None:
            metrics.PLUGIN_CALLS.labels(plugin, hook, "suspended").inc()
            self._fig(plugin, hook).skipped += 1
            return Failure(plugin, hook, "suspended", reason)
        budget = self.budget(hook)
        context = contextvars.copy_context()

        def call() -> None:
            # The budget is the call's own run, from when one of the plugin's threads
            # starts it: a 3 s call that waited 4 s in the backlog behind the plugin's
            # earlier calls ran within its 5 s, and counting the wait made a merely
            # slow plugin "time out" and be suspended (a plugin author found it).
            started = time.perf_counter()
            try:
                context.run(fn, **kwargs)
            except Exception as exc:  # noqa: BLE001 - isolated, logged with the names
                self._failed(plugin, hook, "raised", exc, started)
                return
            finally:
                _close_thread_connection()
            if time.perf_counter() - started > budget:
                self._failed(plugin, hook, "timeout", f"{budget:g}s", started)
            else:
                self._succeeded(plugin, hook, started)

        pool = self._pool(plugin, hook)
        stuck = pool.stuck_for()
        if stuck > budget:  # dropped: it would only wait behind a hung call
            return self._failed(plugin, hook, "busy", self._full(stuck), time.perf_counter())
        if pool.submit(call) is None:
            # Threads busy within their budget and the backlog full: the plugin is
            # slower than the events come, not failing. The event is dropped for it
            # and counted; the breaker is not told (a hang is: ``stuck`` above).
            metrics.PLUGIN_CALLS.labels(plugin, hook, "dropped").inc()
            fig = self._fig(plugin, hook)
            with self._lock:
                fig.dropped += 1
            log.warning("plugin %s: hook %s dropped an event: its backlog is full (%s)",
                        plugin, hook, self._full())
        return None

    def _full(self, stuck: float = 0.0) -> str:
        if stuck:
            return f"all {self.settings.threads} busy for {stuck:.1f}s"
        return f"{self.settings.threads} threads and {self.settings.backlog} waiting calls"

    # --- outcomes ---------------------------------------------------------------------

    def _answered(self, plugin: str, hook: str, result: Any, started: float, breaker: bool,
                  check: Callable[[Any], str | None] | None) -> tuple[Any, Failure | None]:
        """A call that returned: a success, unless ``check`` finds its answer unusable."""
        problem = check(result) if check is not None else None
        if problem:
            return None, self._failed(plugin, hook, "malformed", problem, started, breaker)
        self._succeeded(plugin, hook, started)
        return result, None

    def _succeeded(self, plugin: str, hook: str, started: float) -> None:
        elapsed = time.perf_counter() - started
        metrics.PLUGIN_CALLS.labels(plugin, hook, "ok").inc()
        metrics.PLUGIN_SECONDS.labels(plugin, hook).observe(elapsed)
        fig = self._fig(plugin, hook)
        with self._lock:
            fig.calls += 1
            fig.seconds += elapsed
            fig.samples.append(elapsed)
            self._failures_in_row[(plugin, hook)] = 0
            self._last_failed.discard((plugin, hook))

    def _failed(self, plugin: str, hook: str, kind: str, detail: Any,
                started: float, breaker: bool = True) -> Failure:
        elapsed = time.perf_counter() - started
        if isinstance(detail, BaseException):
            text = f"{type(detail).__name__}: {detail}"[:300]
            failure = Failure(plugin, hook, kind, text)
            log.error("%s", failure, exc_info=detail)
        else:
            failure = Failure(plugin, hook, kind, str(detail))
            log.error("%s", failure)
        metrics.PLUGIN_CALLS.labels(plugin, hook, kind).inc()
        metrics.PLUGIN_SECONDS.labels(plugin, hook).observe(elapsed)
        fig = self._fig(plugin, hook)
        entry = {"at": utcnow().isoformat(timespec="seconds") + "Z", "hook": hook,
                 "kind": kind, "error": failure.describe()[:300]}
        with self._lock:
            fig.calls += 1
            fig.seconds += elapsed
            fig.samples.append(elapsed)
            if kind in ("raised", "malformed"):
                fig.errors += 1
            else:
                fig.timeouts += 1
            self._recent.setdefault(plugin, deque(maxlen=RECENT_ERRORS)).append(entry)
            # A call that began before the admin's Reset and fails after it (a hung
            # call timing out, a late answer) is counted in the figures, not by the
            # breaker: it would suspend again a plugin the admin has just fixed.
            current = started >= self._reset_at.get(plugin, float("-inf"))
            if current:
                self._last_failed.add((plugin, hook))
            breaker = breaker and current
            in_row = self._in_row(plugin, hook) + (1 if breaker else 0)
            self._failures_in_row[(plugin, hook)] = in_row
        if self.store is not None:
            self.store.record_error(plugin, entry)
        if breaker and in_row >= self.settings.breaker_failures:
            self.trip(plugin, f"{in_row} failures in a row of hook {hook}, the last: "
                              f"{failure.describe()}")
        return failure

    def _in_row(self, plugin: str, hook: str) -> int:
        """Failures in a row of ``plugin``'s ``hook`` (under the lock): after a trip,
        one short of the limit until the hook succeeds."""
        if (plugin, hook) in self._failures_in_row:
            return self._failures_in_row[(plugin, hook)]
        return max(0, self.settings.breaker_failures - 1) if plugin in self._tripped else 0

    def trip(self, plugin: str, why: str) -> None:
        """Open the breaker: suspend ``plugin`` for ``PLUGIN_SUSPEND_SECONDS``.

        After the suspension ends, one failure of any hook that has not succeeded
        since opens it again (half-open); a success resets its own hook."""
        with self._lock:
            for key in [key for key in self._failures_in_row if key[0] == plugin]:
                del self._failures_in_row[key]
            self._tripped.add(plugin)
        until = utcnow() + datetime.timedelta(seconds=self.settings.suspend_seconds)
        if self.store is not None and self.store.suspend(plugin, until):
            log.error("plugin %s: suspended until %sZ by the circuit breaker (%s)",
                      plugin, until.isoformat(timespec="seconds"), why)

    def reset(self, plugin: str) -> None:
        """Forget the failures and figures of ``plugin`` in this process (the page's
        Reset); calls already running then no longer count against the breaker
        (``_failed``)."""
        with self._lock:
            for key in [key for key in self._failures_in_row if key[0] == plugin]:
                del self._failures_in_row[key]
            self._last_failed -= {key for key in self._last_failed if key[0] == plugin}
            self._tripped.discard(plugin)
            self._recent.pop(plugin, None)
            # The figures start again too: after a Reset an admin reads what the
            # plugin did since (they kept adding up across resets).
            for key in [key for key in self._figures if key[0] == plugin]:
                del self._figures[key]
            self._reset_at[plugin] = time.perf_counter()

    def close(self) -> None:
        """Stop the pools' idle threads and the state thread (tests, shutdown)."""
        for pool in list(self._pools.values()):
            pool.close()
        if self.store is not None:
            self.store.close()
