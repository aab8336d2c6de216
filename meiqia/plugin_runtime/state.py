"""The plugins' switches and the breaker, shared by every process through the database.

Calls never wait for the database: ``skip_reason`` reads a snapshot in memory.
A daemon thread per process writes what the runtime recorded (suspensions,
recent errors) and reloads the snapshot every ``PLUGIN_STATE_REFRESH`` seconds,
so a plugin suspended or turned off in one process is skipped by the others
within that time, and after a restart. Admins' changes (``set_disabled``,
``reset``) are written at once, by the request that makes them.

A suspension this process decided is kept locally until it ends, unless the
database says it was lifted later (a Reset on another process).
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import threading
from collections.abc import Iterator
from typing import Any

import peewee

from meiqia.models.base import utcnow
from meiqia.models.plugins import SERVER
from meiqia.models.plugins import PluginState

log = logging.getLogger("meiqia.plugins")

RECENT_ERRORS = 10


@contextlib.contextmanager
def _connection(db: peewee.Database) -> Iterator[None]:
    """A connection for this unit of work, leaving one the caller holds open."""
    opened = db.connect(reuse_if_open=True)
    try:
        yield
    finally:
        if opened and not db.is_closed():
            db.close()


class StateStore:
    """The ``plugin_state`` rows of one database, cached."""

    def __init__(self, db: peewee.Database, refresh: float = 2.0) -> None:
        self.db = db
        self.refresh = refresh
        self.rows: dict[tuple[str, int], dict[str, Any]] = {}
        #: plugin -> (suspended until, when this process decided it)
        self._local: dict[str, tuple[datetime.datetime, datetime.datetime]] = {}
        self._pending_errors: dict[str, list[dict[str, Any]]] = {}
        self._pending_suspensions: dict[str, datetime.datetime] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loaded = False

    # --- reading (no database) -------------------------------------------------------------

    def is_off(self, plugin: str, team_id: int | None) -> bool:
        """Turned off by an admin (for the server, or for ``team_id``)."""
        self._start()
        server = self.rows.get((plugin, SERVER))
        if server and server["disabled"]:
            return True
        team = self.rows.get((plugin, team_id)) if team_id is not None else None
        return bool(team and team["disabled"])

    def skip_reason(self, plugin: str, team_id: int | None) -> str | None:
        """Why the breaker keeps ``plugin`` from being called now, or None."""
        self._start()
        until = self.suspended_until(plugin)
        if until is not None:
            return f"suspended by the circuit breaker until {until.isoformat(timespec='seconds')}Z"
        return None

    def suspended_until(self, plugin: str) -> datetime.datetime | None:
        now = utcnow()
        local = self._local.get(plugin)
        server = self.rows.get((plugin, SERVER))
        candidates = [local[0]] if local else []
        if server and server["suspended_until"] is not None:
            candidates.append(server["suspended_until"])
        until = max(candidates, default=None)
        return until if until is not None and until > now else None

    def row(self, plugin: str, team_id: int = SERVER) -> dict[str, Any] | None:
        return self.rows.get((plugin, team_id))

    def ensure_loaded(self) -> None:
        """Read the rows now if this process never has (its state thread starts
        with the first hook call): ``/healthz`` right after a restart named no
        suspended plugin until something called one (a docs-only plugin author
        found it), although the suspension survives the restart."""
        self._start()
        if not self._loaded:
            try:
                self.reload()
            except Exception as exc:  # noqa: BLE001 - the state thread tries again
                log.debug("plugin state not read: %s", exc)

    # --- recording (written by the state thread) ----------------------------------------------

    def suspend(self, plugin: str, until: datetime.datetime) -> bool:
        """Suspend ``plugin`` here now and everywhere soon; False if it already was."""
        with self._lock:
            already = self.suspended_until(plugin) is not None
            self._local[plugin] = (until, utcnow())
            self._pending_suspensions[plugin] = until
        self._wake.set()
        return not already

    def record_error(self, plugin: str, entry: dict[str, Any]) -> None:
        with self._lock:
            errors = self._pending_errors.setdefault(plugin, [])
            errors.append(entry)
            del errors[:-RECENT_ERRORS]

    # --- admins' decisions (written now) ---------------------------------------------------------

    def set_disabled(self, plugin: str, team_id: int, disabled: bool) -> None:
        self._upsert(plugin, team_id, {"disabled": disabled})
        self.reload()

    def reset(self, plugin: str) -> None:
        """Lift a suspension and forget the recorded errors, on every process."""
        with self._lock:
            self._local.pop(plugin, None)
            self._pending_suspensions.pop(plugin, None)
            self._pending_errors.pop(plugin, None)
        self._upsert(plugin, SERVER, {"suspended_until": None, "trips": 0, "recent_errors": []})
        self.reload()

    # --- the database ------------------------------------------------------------------------------

    def _upsert(self, plugin: str, team_id: int, values: dict[str, Any]) -> None:
        values = {**values, "updated_at": utcnow()}
        with _connection(self.db), self.db.atomic():
            changed = PluginState.update(values).where(
                PluginState.plugin == plugin, PluginState.team_id == team_id).execute(self.db)
            if not changed:
                try:
                    with self.db.atomic():
                        PluginState.insert(plugin=plugin, team_id=team_id, **values).execute(self.db)
                except peewee.IntegrityError:  # another process inserted it first
                    PluginState.update(values).where(
                        PluginState.plugin == plugin,
                        PluginState.team_id == team_id).execute(self.db)

    def flush(self) -> None:
        """Write the suspensions and errors recorded since the last flush."""
        with self._lock:
            suspensions, self._pending_suspensions = self._pending_suspensions, {}
            errors, self._pending_errors = self._pending_errors, {}
        for plugin in set(suspensions) | set(errors):
            current = self.rows.get((plugin, SERVER)) or {}
            values: dict[str, Any] = {}
            if plugin in errors:
                values["recent_errors"] = (list(current.get("recent_errors") or [])
                                           + errors[plugin])[-RECENT_ERRORS:]
            if plugin in suspensions:
                values["suspended_until"] = suspensions[plugin]
                values["trips"] = int(current.get("trips") or 0) + 1
            self._upsert(plugin, SERVER, values)

    def reload(self) -> None:
        with _connection(self.db):
            rows = {(r.plugin, r.team_id): {
                "disabled": r.disabled, "suspended_until": r.suspended_until,
                "trips": r.trips, "recent_errors": r.recent_errors or [],
                "updated_at": r.updated_at,
            } for r in PluginState.select().execute(self.db)}
        with self._lock:
            self.rows = rows
            self._loaded = True
            for plugin, (until, decided) in list(self._local.items()):
                server = rows.get((plugin, SERVER))
                lifted = server is not None and server["updated_at"] >= decided and (
                    server["suspended_until"] is None or server["suspended_until"] < until)
                if lifted or until <= utcnow():
                    del self._local[plugin]

    # --- the thread -----------------------------------------------------------------------------------

    def _start(self) -> None:
        """Start the thread once, on first use. Published only once started and
        under the lock ``close`` takes: a close racing a first use (an app torn
        down while a request still runs) joined a thread not started yet
        ("cannot join thread before it is started"), and none starts after it."""
        if self._thread is None and not self._stop.is_set():
            with self._lock:
                if self._thread is None and not self._stop.is_set():
                    thread = threading.Thread(target=self._loop, daemon=True,
                                              name="meiqia-plugin-state")
                    thread.start()
                    self._thread = thread

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.flush()
                self.reload()
            except Exception as exc:  # noqa: BLE001 - tried again at the next tick
                log.debug("plugin state not synchronised: %s", exc)
            self._wake.wait(self.refresh)
            self._wake.clear()

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        with self._lock:  # a first use starting the thread now finishes first
            thread = self._thread
        if thread is not None:
            thread.join(timeout=5)
