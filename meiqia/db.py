"""Database wiring: one peewee proxy, chosen from ``DATABASE_URL`` at start-up.

Models bind to ``database`` (a DatabaseProxy) so the same code runs on SQLite
(embedded default) and PostgreSQL (production). Views get a connection per
request; websocket handlers and jobs open one per unit of work with
``connection()``.
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable
from collections.abc import Iterator
from typing import Any
from typing import TypeVar
from urllib.parse import unquote
from urllib.parse import urlparse

import peewee
from playhouse.pool import PooledSqliteDatabase

from meiqia.db_wait import WaitBudget

database = peewee.DatabaseProxy()

#: SQLite settings for a web server with many threads: WAL lets readers run while
#: one writer writes; busy_timeout makes a writer wait for the lock instead of
#: failing at once; foreign keys are off by default in SQLite.
SQLITE_PRAGMAS = {
    "journal_mode": "wal",
    "foreign_keys": 1,
    "busy_timeout": 10000,
    "synchronous": "normal",
    "cache_size": -16000,
}


class ImmediateSqliteDatabase(WaitBudget, PooledSqliteDatabase):
    """SQLite whose transactions take the write lock when they begin, with
    connections kept in a pool.

    The pool: every websocket frame and job is a unit of work with its own
    connection; opening a SQLite connection (pragmas) and closing it (the last
    close of a WAL database checkpoints it) cost more than the frame's queries.

    A deferred transaction that reads and then writes can fail at once with
    "database is locked" when another writer got there first (SQLite does not
    wait in that case, busy_timeout or not). Beginning IMMEDIATE makes writers
    queue instead. SQLite has one writer at a time anyway.

    One budget of waiting per unit of work (``db_wait.WaitBudget``: a request, a
    socket frame's unit, a ``connection()`` block): DATABASE_BUSY_TIMEOUT
    in all, for the writer's turn in the process (``_WriterTurn``) and SQLite's
    lock together, over all of its writes. Each wait used to have the whole
    timeout: a widget message queued behind the bot's job waited for the turn (up
    to the timeout) and then for SQLite's lock (the timeout again), and each of its
    later writes as long: its 503 came after 20 s, or after the client gave up,
    where docs/protocol.md says 10. Only waiting is counted, never work: a job that
    writes for minutes without contention keeps its whole budget.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._busy = self._busy_seconds()
        # Made here, not at import: under ``meiqia run`` gevent has patched
        # ``threading`` by now, so this lock makes greenlets take turns, and the
        # budget is a greenlet's own.
        self._writer = _WriterTurn()
        self.init_budget(self._busy)

    def _busy_seconds(self) -> float:
        return float(self._pragmas_dict().get("busy_timeout", 10000)) / 1000

    def _pragmas_dict(self) -> dict[str, Any]:
        return dict(self._pragmas or ())

    def connect(self, reuse_if_open: bool = False) -> bool:
        opened = super().connect(reuse_if_open)
        if opened:  # a new unit of work: a whole budget
            self.new_unit()
        return opened

    def _take_turn(self) -> None:
        started = time.monotonic()
        try:
            self._writer.take(self.wait_left())
        finally:
            self.spend(time.monotonic() - started)

    def _locking(self, write: Callable[[], Any]) -> Any:
        """``write`` (a BEGIN IMMEDIATE or a write outside a transaction), waiting
        for SQLite's lock within what is left of the budget.

        SQLite's busy_timeout cannot say how long a statement waited and how long
        it worked, and it waits the whole timeout again at every statement. So the
        statement runs with busy_timeout 0 (refused at once while another
        connection holds the lock, before it changed anything) and is tried again
        after pauses like SQLite's own, each failed try and pause taken from the
        budget; the budget spent, the last "database is locked" is raised (503,
        ``unavailable``). The pauses are ``time.sleep``: under gevent other
        greenlets run meanwhile, where SQLite's C loop of sleeps stopped them."""
        conn = self.connection()
        conn.execute("PRAGMA busy_timeout = 0")
        try:
            pauses = iter(_LOCK_PAUSES)
            while True:
                started = time.monotonic()
                try:
                    return write()
                except (peewee.OperationalError, sqlite3.OperationalError) as exc:
                    if "database is locked" not in str(exc):
                        raise
                    self.spend(time.monotonic() - started)
                    left = self.wait_left()
                    if left <= 0:
                        raise
                    pause = min(next(pauses, _LOCK_PAUSES[-1]), left)
                    time.sleep(pause)
                    self.spend(pause)
        finally:
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy * 1000)}")

    def begin(self, lock_type: str | None = None) -> None:
        if lock_type == "DEFERRED":
            # A read snapshot (``snapshot_reads``): no write lock, so no turn either.
            super().begin(lock_type)
            return
        self._take_turn()
        try:
            self._locking(lambda: super(ImmediateSqliteDatabase, self).begin(
                lock_type or "IMMEDIATE"))
        except BaseException:
            self._writer.give_back()
            raise

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self._writer.give_back()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self._writer.give_back()

    def execute_sql(self, sql: str, params: Any = None) -> Any:
        """A write outside a transaction (autocommit) takes its turn too: in a
        gevent process its SQLite lock wait would stop every socket, the holder of
        the lock included; and it waits within the unit's budget (``_locking``)."""
        if self.in_transaction() or not _WRITES.match(sql):
            return super().execute_sql(sql, params)
        self._take_turn()
        try:
            return self._locking(lambda: super(ImmediateSqliteDatabase, self).execute_sql(
                sql, params))
        finally:
            self._writer.give_back()

    def close(self) -> bool:
        closed = super().close()
        # A connection closed with its transaction open (an error path that never
        # reached commit or rollback) must not keep the turn from every writer.
        self._writer.give_back(entirely=True)
        self.end_unit()
        return closed


#: Statements that write (SELECT, and PRAGMA reads, do not take a turn).
_WRITES = re.compile(r"\s*(INSERT|UPDATE|DELETE|REPLACE|CREATE|DROP|ALTER|VACUUM)\b", re.I)

#: Pauses between tries for SQLite's write lock (``_locking``), in seconds: SQLite's
#: own busy handler's schedule, the last one repeated.
_LOCK_PAUSES = (0.001, 0.002, 0.005, 0.01, 0.015, 0.02, 0.025, 0.025, 0.025, 0.05, 0.05, 0.1)


class _WriterTurn:
    """One SQLite writer at a time in this process, the others waiting their turn
    in line, each for at most what is left of its unit's budget.

    SQLite lets one connection write at a time; the others wait in
    ``busy_timeout``, a C loop of sleeps that gevent cannot switch out of. Under
    ``meiqia run`` (one thread, thousands of greenlets) a greenlet waiting there
    stops every socket, including the greenlet that holds the lock, so it waits
    out the whole timeout. Taking the turn on this lock first (a gevent lock once
    ``threading`` is patched, a thread lock otherwise) queues the writers
    cooperatively, in order, while readers go on in WAL; SQLite's own lock is
    then waited for by ``ImmediateSqliteDatabase._locking`` (another process, a
    ``meiqia`` command, writing the same file).

    The turn belongs to the thread (greenlet) that took it; a second ``take`` by
    the holder nests. A writer that cannot get its turn within ``timeout`` fails
    as SQLite would ("database is locked"), which the socket answers with
    ``unavailable`` and an HTTP request with 503 (web/unavailable.py).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._owner: int | None = None
        self._depth = 0

    def take(self, timeout: float) -> None:
        me = threading.get_ident()
        if self._owner == me:
            self._depth += 1
            return
        if not self._lock.acquire(timeout=max(0.0, timeout)):
            raise peewee.OperationalError(
                "database is locked: no turn to write within the busy timeout")
        self._owner = me
        self._depth = 1

    def give_back(self, entirely: bool = False) -> None:
        if self._owner != threading.get_ident():
            return
        self._depth = 0 if entirely else self._depth - 1
        if self._depth == 0:
            self._owner = None
            self._lock.release()


def make_database(url: str, busy_timeout: float = 10.0, pool_size: int = 20) -> peewee.Database:
    """Build a peewee database for ``url`` (sqlite:///path or postgresql://…).

    ``busy_timeout``: seconds a SQLite writer waits for another's lock before the
    request gives up (503, see ``web/unavailable.py``).
    """
    parsed = urlparse(url)
    if parsed.scheme.startswith("sqlite"):
        # sqlite:///relative/file and sqlite:////absolute/file, as SQLAlchemy has it.
        path = unquote(parsed.path)[1:]
        directory = os.path.dirname(path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        pragmas = {**SQLITE_PRAGMAS, "busy_timeout": int(busy_timeout * 1000)}
        # ``timeout`` is the pool's wait for a free connection; SQLite's own lock
        # wait is the busy_timeout pragma. Pooled connections move between threads.
        return ImmediateSqliteDatabase(path, pragmas=pragmas, max_connections=pool_size,
                                       stale_timeout=300, timeout=busy_timeout,
                                       check_same_thread=False)
    from meiqia.db_pool import PostgresPool

    return PostgresPool(
        parsed.path.lstrip("/"),
        user=unquote(parsed.username) if parsed.username else None,
        password=unquote(parsed.password) if parsed.password else None,
        host=parsed.hostname or None,
        port=parsed.port or None,
        max_connections=pool_size,
        stale_timeout=300,
        timeout=10,
        autorollback=True,
        lock_seconds=busy_timeout,
    )


_STATEMENTS: weakref.WeakKeyDictionary[peewee.Database, dict[Any, str]] = \
    weakref.WeakKeyDictionary()


def statement(key: Any, build: Callable[[], str]) -> str:
    """A statement's SQL built once per database (``build()`` the first time).

    For the statements of every chat message (its position, its INSERT): the
    in-process profile (benchmarks/message_path.py) found peewee's query
    building at over a third of a message's CPU, for text that never changes.
    """
    db = database.obj
    per_db = _STATEMENTS.get(db)
    if per_db is None:
        per_db = _STATEMENTS.setdefault(db, {})
    sql = per_db.get(key)
    if sql is None:
        sql = per_db[key] = build()
    return sql


ModelT = TypeVar("ModelT", bound=peewee.Model)


def get_by_id(model: type[ModelT], pk: int) -> ModelT:
    """``model.get_by_id(pk)`` with its SQL built once per database, and the row
    made into an instance without peewee's per-query machinery.

    peewee builds a query's SQL anew on every execution, which for a model of
    forty columns costs more than the query: profiled under websocket load,
    the two conversation look-ups of a visitor message were over half of its
    CPU. The text never changes, so the hot paths (socket frames) fetch rows by
    id through this cache. Reading the row back through ``model.raw`` then cost
    158 µs of CPU for a conversation on PostgreSQL, 32 µs of it the fetch: a raw
    query object, a cursor wrapper that matches the cursor's columns to fields
    on every execution, an instance built by ``setattr`` per column. The column
    order is the SELECT's own, so ``_instance`` converts each value with its
    field's ``python_value`` (what peewee calls) from a plan made once.
    Raises ``model.DoesNotExist`` like ``get_by_id``.
    """
    sql = statement(("by_id", model),
                    lambda: model.select().where(model._meta.primary_key == 0).sql()[0])
    row = database.execute_sql(sql, [pk]).fetchone()
    if row is None:
        raise model.DoesNotExist(f"{model.__name__} {pk} does not exist")
    return _instance(model, row)


#: Per model: (field name, its ``python_value``) in ``model.select()``'s column order.
_PLANS: dict[type, list[tuple[str, Callable[[Any], Any]]]] = {}


def _instance(model: type[ModelT], row: tuple) -> ModelT:
    """The instance peewee's cursor wrapper makes of a full row of ``model.select()``:
    every field's value through its ``python_value``, nothing dirty, no related
    row cached (a foreign key holds its id until used)."""
    plan = _PLANS.get(model)
    if plan is None:
        plan = _PLANS[model] = [(f.name, f.python_value) for f in model._meta.sorted_fields]
    instance = model.__new__(model)
    instance.__data__ = {name: convert(value)
                         for (name, convert), value in zip(plan, row, strict=True)}
    instance._dirty = set()
    instance.__rel__ = {}
    return instance


def find_by_id(model: type[ModelT], pk: int | None) -> ModelT | None:
    """``model.get_or_none(model.id == pk)`` through ``get_by_id``'s built-once SQL:
    the row, or None (also for a None ``pk``)."""
    if pk is None:
        return None
    try:
        return get_by_id(model, pk)
    except model.DoesNotExist:
        return None


def insert_row(model: type[ModelT], values: dict[str, Any]) -> ModelT:
    """``model.create(**values)`` with its INSERT built once per column set: the
    row is written (``RETURNING`` its id, on SQLite and PostgreSQL alike) and
    returned as a model instance, as ``create`` returns it. ``values`` names
    every column the row gets (defaults are not filled in here)."""
    meta = model._meta
    fields = [meta.fields[name] for name in values]

    def build() -> str:
        mark = database.param
        columns = ", ".join(f'"{f.column_name}"' for f in fields)
        return (f'INSERT INTO "{meta.table_name}" ({columns}) VALUES '
                f'({", ".join(mark for _ in fields)}) RETURNING "{meta.primary_key.column_name}"')

    sql = statement(("insert", model, tuple(values)), build)
    cursor = database.execute_sql(sql, [f.db_value(v) for f, v in zip(fields, values.values(),
                                                                          strict=True)])
    row = model(**values)
    setattr(row, meta.primary_key.name, cursor.fetchone()[0])
    row._dirty.clear()
    return row


def is_postgres() -> bool:
    """Tell whether the bound database is PostgreSQL (for dialect-specific SQL)."""
    return isinstance(database.obj, peewee.PostgresqlDatabase)


def lock_bound() -> str:
    """PostgreSQL: ``SET LOCAL lock_timeout`` to DATABASE_BUSY_TIMEOUT, to put in
    front of a statement (sent with it, no round trip of its own); "" elsewhere.

    A SQLite writer waits for the write lock at most DATABASE_BUSY_TIMEOUT, then
    fails ("database is locked"), which a socket answers ``unavailable`` and a
    request 503. A PostgreSQL statement waited for a row lock as long as another
    transaction held it: a message whose conversation's row was locked for 20 s
    got no answer for 20 s, and its socket answered nothing else meanwhile. With
    this in front, the wait ends with ``LockNotAvailable`` (an OperationalError:
    the same answers). ``LOCAL``: for the statement's own transaction only (the
    implicit one of a single statement, or the caller's), never the pooled
    connection's later work: put it only where that transaction is the caller's
    own (``messages.post_message`` stores a message in one).
    """
    if not is_postgres() or not isinstance(database.obj, WaitBudget):
        return ""
    # What is left of the unit's budget: a socket frame may have waited at the gate.
    return f"SET LOCAL lock_timeout = {max(1, round(database.obj.wait_left() * 1000))}; "


def spend_wait(seconds: float) -> None:
    """Take ``seconds`` the current unit of work waited before its connection
    opened (a socket frame at the gate) from its budget (``db_wait``)."""
    if isinstance(database.obj, WaitBudget):
        database.obj.spend(seconds)


def init_app(app: Any) -> None:
    """Bind the proxy to the configured database and open/close per request."""
    db = make_database(app.config["DATABASE_URL"], app.config["DATABASE_BUSY_TIMEOUT"],
                       app.config["DATABASE_POOL_SIZE"])
    database.initialize(db)
    app.extensions["meiqia.db"] = db

    @app.before_request
    def _open() -> None:
        from flask import request

        # A websocket "request" lasts as long as the socket: holding a pooled
        # connection for it would cap the sockets at the pool size. The socket
        # handlers take one per unit of work with ``connection()`` instead.
        if request.environ.get("HTTP_UPGRADE", "").lower() == "websocket":
            return
        database.connect(reuse_if_open=True)

    @app.teardown_request
    def _close(_exc: BaseException | None) -> None:
        if not database.is_closed():
            database.close()


def is_database_error(exc: BaseException) -> bool:
    """The database failed (unreachable, cut, locked), not the code asking it."""
    try:
        import psycopg2
        driver: tuple[type[BaseException], ...] = (psycopg2.OperationalError,
                                                   psycopg2.InterfaceError)
    except ImportError:  # SQLite only
        driver = ()
    return isinstance(exc, (peewee.OperationalError, peewee.InterfaceError, *driver))


class Outage:
    """What a background loop (a sweep, a recovery pass) logs while the database
    fails: one short warning when the failures start, then nothing while they go
    on, and one line when the database answers again; its waits back off from
    ``first`` to ``most`` seconds meanwhile. An error that is not the database's
    is a bug: the caller logs it with its traceback (``failed`` returns None).

    A PostgreSQL cut of 20 s made a sweep of every process log a full traceback
    each second (thousands of lines); Redis outages were already logged this way.
    """

    def __init__(self, logger: Any, what: str, first: float = 1.0,
                 most: float = 30.0) -> None:
        self.log = logger
        self.what = what
        self.first = first
        self.most = most
        self.wait: float | None = None  # the next back-off while failing
        self.since: float | None = None

    @property
    def failing(self) -> bool:
        return self.wait is not None

    def failed(self, exc: BaseException) -> float | None:
        """A failure: the seconds to wait before trying again if the database
        failed (warned once per outage), else None."""
        if not is_database_error(exc):
            return None
        if self.wait is None:
            self.since = time.monotonic()
            self.wait = self.first
            reason = next((line.strip() for line in str(exc).splitlines() if line.strip()),
                          type(exc).__name__)
            self.log.warning("%s: the database is unreachable (%s); trying again in %.0f s, "
                             "backing off to %.0f s", self.what, reason, self.first, self.most)
            return self.wait
        self.wait = min(self.wait * 2, self.most)
        return self.wait

    def recovered(self) -> None:
        """A pass went through: one line if it ends an outage."""
        if self.wait is None:
            return
        self.log.info("%s: the database answers again (after %.0f s)", self.what,
                         time.monotonic() - (self.since or time.monotonic()))
        self.wait = self.since = None


@contextlib.contextmanager
def snapshot_reads() -> Iterator[None]:
    """Reads that all see the database as it was at the first of them, for
    answers that must agree with each other (reads only: nothing is written).

    PostgreSQL: a REPEATABLE READ transaction (under READ COMMITTED each
    statement sees what committed before it, so a message committed between two
    reads is in the second and not in the first). SQLite: a deferred transaction,
    whose reads see one snapshot of the WAL database while writers go on
    (``ImmediateSqliteDatabase`` takes no writer's turn for it). Inside a
    transaction already, the caller's decides."""
    if database.in_transaction():
        yield
        return
    if is_postgres():
        with database.atomic(isolation_level="REPEATABLE READ"):
            yield
    else:
        with database.atomic(lock_type="DEFERRED"):
            yield


@contextlib.contextmanager
def connection() -> Iterator[None]:
    """Hold a connection for a unit of work outside a request (socket, job)."""
    opened = database.connect(reuse_if_open=True)
    try:
        yield
    finally:
        if opened and not database.is_closed():
            database.close()
