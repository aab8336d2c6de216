"""The PostgreSQL connection pool: check-out and check-in never wait on the
network while holding a lock every other unit of work needs.

peewee's pool (``playhouse.pool``, 4.x) checks a connection out under two
locks, the database's and the pool's, and since 4.0 it proves the connection
alive there with a ``SELECT 1`` round trip; opening a new connection (TCP,
authentication) also happens under both. Every websocket frame is a unit of
work with its own check-out, so in one gevent worker thousands of greenlets
queue on those locks while one of them waits for PostgreSQL, and the queue
grows with the loop's latency: at 300 msg/s on two workers a greenlet dump
found 8 of the 15 holders of the socket gate waiting on peewee's database lock
in ``connect``/``close`` (docs/benchmarks.md, "Production at 300 msg/s").

Here the locks cover only the pool's bookkeeping (which connection is free,
how many are out): the liveness round trip and a new connection's handshake
run outside them, so units of work wait for PostgreSQL side by side, not in
line. The guarantees stay peewee's: a connection killed by a restart or a
failover is found dead at check-out and replaced
(tests/reliability/test_database_faults.py terminates the backends), at most
``max_connections`` are out at once, a caller waits up to ``timeout`` seconds
for one to come back and then gets ``MaxConnectionsExceeded``.

The ``SELECT 1`` ping is skipped for a connection returned to the pool less
than ``ping_idle_seconds`` ago whose socket has nothing to read. A backend that
ends (a restart, ``pg_terminate_backend``, ``idle_session_timeout``) sends its
FATAL message and closes the connection, so its socket becomes readable; an
idle connection's socket otherwise never is (we LISTEN on none). Such a
connection, or one idle longer, is pinged as before. Under load every
connection is back within milliseconds, and the ping was a round trip and a
wake-up of the gevent loop per unit of work (3.4 % of a worker's CPU at 300
msg/s, docs/benchmarks.md). The race it leaves, a backend killed between the
check and the first statement, is the one the ping left too (killed between
the ping and the statement): that unit of work fails, the pool does not.
"""

from __future__ import annotations

import heapq
import logging
import select
import time
from typing import Any

import peewee
from playhouse.pool import MaxConnectionsExceeded
from playhouse.pool import PoolConnection
from playhouse.pool import PooledPostgresqlDatabase

log = logging.getLogger(__name__)

#: peewee's context manager that turns driver errors into peewee's own classes.
_WRAP_ERRORS = peewee.__exception_wrapper__

try:  # the blocking poll, even where gevent patched ``select`` (a 0 timeout never waits)
    from gevent.monkey import get_original as _get_original
    _poll = _get_original("select", "poll")
except ImportError:  # pragma: no cover - gevent is a dependency of the production server
    _poll = select.poll

#: psycopg2's transaction status "idle" (``psycopg2.extensions.TRANSACTION_STATUS_IDLE``).
_IDLE = 0


def _nothing_to_read(conn: Any) -> bool:
    """True when the connection's socket has no byte, error or hang-up waiting:
    its backend has said nothing since the last statement (poll(2) with a zero
    timeout; ``poll`` rather than ``select`` because a process holding ten
    thousand sockets has descriptors past ``FD_SETSIZE``)."""
    poller = _poll()
    poller.register(conn.fileno(), select.POLLIN | select.POLLPRI)
    return not poller.poll(0)


class PostgresPool(PooledPostgresqlDatabase):
    """``PooledPostgresqlDatabase`` whose check-out waits for the network
    outside its locks (see the module's docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        #: Slots taken by connections being opened outside the lock: they count
        #: against ``max_connections`` before they exist.
        self._opening = 0
        #: When each free connection came back (``time.monotonic``), by key.
        self._returned_at: dict[int, float] = {}
        #: A connection back for less than this and quiet is not pinged (module docstring).
        self.ping_idle_seconds = 10.0
        super().__init__(*args, **kwargs)

    def connect(self, reuse_if_open: bool = False) -> bool:
        # ``Database.connect`` without its database-wide lock: the connection
        # state it guards is per thread (per greenlet under gevent) already.
        if self.deferred:
            raise peewee.InterfaceError(
                "Error, database must be initialized before opening a connection.")
        if not self._state.closed:
            if reuse_if_open:
                return False
            raise peewee.OperationalError("Connection already opened.")
        self._state.reset()
        with _WRAP_ERRORS:
            conn = self._check_out()
            try:
                if self.server_version is None:
                    self._set_server_version(conn)
                self._initialize_connection(conn)
            except BaseException:
                self._close(conn, close_conn=True)
                raise
            self._state.set_connection(conn)
        return True

    def _check_out(self) -> Any:
        wait = self._wait_timeout or 0
        deadline = time.monotonic() + wait
        while True:
            conn, opening, returned_at = self._take_or_reserve(deadline)
            if opening:
                return self._open_reserved()
            key = self.conn_key(conn)
            pooled = self._in_use[key]
            if self._stale_timeout and self._is_stale(pooled.timestamp):
                log.debug("connection %s was stale, closing", key)
            elif self._fresh_and_quiet(conn, returned_at):
                return conn
            elif not self._is_closed(conn):  # the round trip, outside the lock
                return conn
            else:
                log.debug("connection %s was closed, discarding", key)
            with self._pool_lock:
                self._in_use.pop(key, None)
                self._pool_available.notify()
            self._close_raw(conn)

    def _fresh_and_quiet(self, conn: Any, returned_at: float | None) -> bool:
        """Whether a connection may skip its ping: back in the pool for less than
        ``ping_idle_seconds``, open and idle by psycopg2's own flags, and with
        nothing from its backend waiting on the socket."""
        return (returned_at is not None
                and time.monotonic() - returned_at < self.ping_idle_seconds
                and not conn.closed
                and conn.get_transaction_status() == _IDLE
                and _nothing_to_read(conn))

    def _take_or_reserve(self, deadline: float) -> tuple[Any, bool, float | None]:
        """Under the pool's lock: the oldest free connection (marked in use) and
        when it came back, or a reserved slot to open a new one, waiting until
        ``deadline`` for either."""
        with self._pool_lock:
            while True:
                if self._connections:
                    ts, _counter, conn = heapq.heappop(self._connections)
                    key = self.conn_key(conn)
                    self._in_use[key] = PoolConnection(ts, conn, time.time())
                    return conn, False, self._returned_at.pop(key, None)
                out = len(self._in_use) + self._opening
                if not self._max_connections or out < self._max_connections:
                    self._opening += 1
                    return None, True, None
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise MaxConnectionsExceeded(
                        "Max connections exceeded, timed out attempting to connect.")
                self._pool_available.wait(timeout=min(remaining, 1.0))

    def _open_reserved(self) -> Any:
        """Open a connection for a slot reserved by ``_take_or_reserve``."""
        try:
            conn = peewee.PostgresqlDatabase._connect(self)
        except BaseException:
            with self._pool_lock:
                self._opening -= 1
                self._pool_available.notify()
            raise
        now = time.time()
        with self._pool_lock:
            self._opening -= 1
            self._in_use[self.conn_key(conn)] = PoolConnection(now, conn, now)
        log.debug("created connection %s", self.conn_key(conn))
        return conn

    def _close(self, conn: Any, close_conn: bool = False) -> None:
        # Check-in: a connection returned inside a transaction needs a ROLLBACK
        # round trip before it can be reused; that happens before the lock.
        if not close_conn and self.conn_key(conn) in self._in_use \
                and not self._can_reuse(conn):
            close_conn = True
        with self._pool_lock:
            key = self.conn_key(conn)
            pooled = self._in_use.pop(key, None)
            if pooled is not None and not close_conn and not (
                    self._stale_timeout and self._is_stale(pooled.timestamp)):
                self._heap_counter += 1
                heapq.heappush(self._connections, (pooled.timestamp, self._heap_counter, conn))
                self._returned_at[key] = time.monotonic()
                conn = None
            self._pool_available.notify()
        if conn is not None and (pooled is not None or close_conn):
            self._close_raw(conn)

    def close_idle(self) -> None:
        super().close_idle()
        # The closed ones' entries; one cleared for a connection checked in
        # meanwhile only costs that connection a ping.
        self._returned_at.clear()

    def close(self) -> bool:
        # ``Database.close`` without its database-wide lock, for the same reason
        # as ``connect``.
        if self.deferred:
            raise peewee.InterfaceError(
                "Error, database must be initialized before opening a connection.")
        if self.in_transaction():
            raise peewee.OperationalError("Attempting to close database while transaction is open.")
        is_open = not self._state.closed
        try:
            if is_open:
                with _WRAP_ERRORS:
                    self._close(self._state.conn)
        finally:
            self._state.reset()
        return is_open
