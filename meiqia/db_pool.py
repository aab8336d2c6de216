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
failover is found dead at check-out and replaced (the ping still runs on every
check-out; tests/reliability/test_database_faults.py terminates the backends),
at most ``max_connections`` are out at once, a caller waits up to ``timeout``
seconds for one to come back and then gets ``MaxConnectionsExceeded``.
"""

from __future__ import annotations

import heapq
import logging
import time
from typing import Any

import peewee
from playhouse.pool import MaxConnectionsExceeded
from playhouse.pool import PoolConnection
from playhouse.pool import PooledPostgresqlDatabase

from meiqia.db_wait import WaitBudget

log = logging.getLogger(__name__)

#: peewee's context manager that turns driver errors into peewee's own classes.
_WRAP_ERRORS = peewee.__exception_wrapper__


class PostgresPool(WaitBudget, PooledPostgresqlDatabase):
    """``PooledPostgresqlDatabase`` whose check-out waits for the network
    outside its locks (see the module's docstring). A message's store waits for
    a row lock what is left of its unit's budget (``db_wait``, ``db.lock_bound``)."""

    def __init__(self, *args: Any, lock_seconds: float = 10.0, **kwargs: Any) -> None:
        #: Slots taken by connections being opened outside the lock: they count
        #: against ``max_connections`` before they exist.
        self._opening = 0
        super().__init__(*args, **kwargs)
        #: How long a message's store waits for a row lock (``db.lock_bound``):
        #: DATABASE_BUSY_TIMEOUT in all, as SQLite's writers wait for the write lock.
        self.init_budget(lock_seconds)

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
        self.new_unit()
        return True

    def _check_out(self) -> Any:
        wait = self._wait_timeout or 0
        deadline = time.monotonic() + wait
        while True:
            conn, opening = self._take_or_reserve(deadline)
            if opening:
                return self._open_reserved()
            key = self.conn_key(conn)
            pooled = self._in_use[key]
            if self._stale_timeout and self._is_stale(pooled.timestamp):
                log.debug("connection %s was stale, closing", key)
            elif not self._is_closed(conn):  # the round trip, outside the lock
                return conn
            else:
                log.debug("connection %s was closed, discarding", key)
            with self._pool_lock:
                self._in_use.pop(key, None)
                self._pool_available.notify()
            self._close_raw(conn)

    def _take_or_reserve(self, deadline: float) -> tuple[Any, bool]:
        """Under the pool's lock: the oldest free connection (marked in use), or
        a reserved slot to open a new one, waiting until ``deadline`` for
        either."""
        with self._pool_lock:
            while True:
                if self._connections:
                    ts, _counter, conn = heapq.heappop(self._connections)
                    self._in_use[self.conn_key(conn)] = PoolConnection(ts, conn, time.time())
                    return conn, False
                out = len(self._in_use) + self._opening
                if not self._max_connections or out < self._max_connections:
                    self._opening += 1
                    return None, True
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
                conn = None
            self._pool_available.notify()
        if conn is not None and (pooled is not None or close_conn):
            self._close_raw(conn)

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
