"""Database wiring: one peewee proxy, chosen from ``DATABASE_URL`` at start-up.

Models bind to ``database`` (a DatabaseProxy) so the same code runs on SQLite
(embedded default) and PostgreSQL (production). Views get a connection per
request; websocket handlers and jobs open one per unit of work with
``connection()``.
"""

from __future__ import annotations

import contextlib
import os
import weakref
from collections.abc import Callable
from collections.abc import Iterator
from typing import Any
from typing import TypeVar
from urllib.parse import unquote
from urllib.parse import urlparse

import peewee
from playhouse.pool import PooledPostgresqlDatabase
from playhouse.pool import PooledSqliteDatabase

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


class ImmediateSqliteDatabase(PooledSqliteDatabase):
    """SQLite whose transactions take the write lock when they begin, with
    connections kept in a pool.

    The pool: every websocket frame and job is a unit of work with its own
    connection; opening a SQLite connection (pragmas) and closing it (the last
    close of a WAL database checkpoints it) cost more than the frame's queries.

    A deferred transaction that reads and then writes can fail at once with
    "database is locked" when another writer got there first (SQLite does not
    wait in that case, busy_timeout or not). Beginning IMMEDIATE makes writers
    queue on busy_timeout instead. SQLite has one writer at a time anyway.
    """

    def begin(self, lock_type: str | None = None) -> None:
        super().begin(lock_type or "IMMEDIATE")


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
    return PooledPostgresqlDatabase(
        parsed.path.lstrip("/"),
        user=unquote(parsed.username) if parsed.username else None,
        password=unquote(parsed.password) if parsed.password else None,
        host=parsed.hostname or None,
        port=parsed.port or None,
        max_connections=pool_size,
        stale_timeout=300,
        timeout=10,
        autorollback=True,
    )


_BY_ID_SQL: weakref.WeakKeyDictionary[peewee.Database, dict[type, str]] = \
    weakref.WeakKeyDictionary()
ModelT = TypeVar("ModelT", bound=peewee.Model)


def get_by_id(model: type[ModelT], pk: int) -> ModelT:
    """``model.get_by_id(pk)`` with its SQL built once per database.

    peewee builds a query's SQL anew on every execution, which for a model of
    forty columns costs more than the query: profiled under websocket load,
    the two conversation look-ups of a visitor message were over half of its
    CPU. The text never changes, so the hot paths (socket frames) fetch rows by
    id through this cache. Raises ``model.DoesNotExist`` like ``get_by_id``.
    """
    db = database.obj
    per_db = _BY_ID_SQL.get(db)
    if per_db is None:
        per_db = _BY_ID_SQL.setdefault(db, {})
    sql = per_db.get(model)
    if sql is None:
        sql = model.select().where(model._meta.primary_key == 0).sql()[0]
        per_db[model] = sql
    rows = list(model.raw(sql, pk))
    if not rows:
        raise model.DoesNotExist(f"{model.__name__} {pk} does not exist")
    return rows[0]


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


@contextlib.contextmanager
def connection() -> Iterator[None]:
    """Hold a connection for a unit of work outside a request (socket, job)."""
    opened = database.connect(reuse_if_open=True)
    try:
        yield
    finally:
        if opened and not database.is_closed():
            database.close()
