"""Schema migrations: ``meiqia db upgrade`` brings any older database up to date.

A migration is a module ``mNNNN_name.py`` in this package with
``up(migrator, db)`` (or ``up(migrator, db, echo)``, to report the progress of
a long one); it runs in a transaction and is recorded in ``schema_migration``.
A new database gets the current tables straight from the models plus the
schema objects models cannot express (full-text tables, triggers, expression
indexes: the functions in ``SCHEMA_EXTRAS``), and every
migration is stamped as applied, because the models already are the result of
all of them. So a migration is exactly the step from one release's models to
the next, and must leave data in place.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import pkgutil
from collections.abc import Callable
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import peewee
from playhouse.migrate import PostgresqlMigrator
from playhouse.migrate import SchemaMigrator
from playhouse.migrate import SqliteMigrator

from meiqia.models import ALL_MODELS
from meiqia.models import SchemaMigration
from meiqia.models import Team

#: Idempotent functions ``fn(db)`` creating schema objects the models can't express.
SCHEMA_EXTRAS: list[Callable[[peewee.Database], None]] = []


def schema_extra(fn: Callable[[peewee.Database], None]) -> Callable:
    """Register ``fn`` to run on new databases (migrations call it themselves)."""
    SCHEMA_EXTRAS.append(fn)
    return fn


def discover() -> list[ModuleType]:
    """Return the migration modules of this package in order."""
    names = sorted(
        info.name
        for info in pkgutil.iter_modules(__path__)
        if info.name.startswith("m") and info.name[1:5].isdigit()
    )
    return [importlib.import_module(f"{__name__}.{name}") for name in names]


def _migrator(db: peewee.Database) -> SchemaMigrator:
    if isinstance(db, peewee.PostgresqlDatabase):
        return PostgresqlMigrator(db)
    return SqliteMigrator(db)


def _short(module: ModuleType) -> str:
    return module.__name__.rsplit(".", 1)[-1]


def pending(db: peewee.Database, migrations: list[ModuleType] | None = None) -> list[str]:
    """Names of migrations not yet applied (all of them on an empty database)."""
    migrations = discover() if migrations is None else migrations
    if not db.table_exists(SchemaMigration._meta.table_name):
        return [_short(m) for m in migrations]
    done = {row.name for row in SchemaMigration.select()}
    return [_short(m) for m in migrations if _short(m) not in done]


#: The key of PostgreSQL's advisory lock that upgrades take (any fixed number:
#: "meiq" in ASCII), so that two at once run one after the other.
LOCK_KEY = 0x6D656971


@contextlib.contextmanager
def _upgrade_lock(db: peewee.Database, say: Callable[[str], None]) -> Iterator[None]:
    """Hold the upgrade lock for a whole upgrade: another upgrade (another host's
    ``meiqia db upgrade`` at the same moment) waits here until this one is done,
    and then reads what is pending, so it finds nothing left and reports
    ``up to date`` (docs/deploy.md §7).

    A lock taken per migration let two upgrades split the work between them
    (one applied eleven migrations, the other the twelfth), so both said they had
    applied some.

    PostgreSQL: a session-level advisory lock on this connection, let go at the
    end (or when the connection ends: a killed upgrade leaves no lock behind).
    SQLite: an exclusive ``flock`` on a file beside the database file (let go by
    the system when the process ends); an in-memory database has one process.
    """
    if isinstance(db, peewee.PostgresqlDatabase):
        with _postgres_lock(db, say):
            yield
        return
    path = db.database
    if not path or path == ":memory:" or path.startswith("file::memory:"):
        yield
        return
    with _file_lock(f"{path}.upgrade-lock", say):
        yield


@contextlib.contextmanager
def _postgres_lock(db: peewee.Database, say: Callable[[str], None]) -> Iterator[None]:
    with db.atomic():  # lock_timeout 0 (wait as long as it takes) for this wait only
        db.execute_sql("SET LOCAL lock_timeout = 0")
        if not db.execute_sql("SELECT pg_try_advisory_lock(%s)", (LOCK_KEY,)).fetchone()[0]:
            say("waiting for another upgrade to finish")
            db.execute_sql("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
    try:
        yield
    except BaseException:
        # A connection that died has let go of the lock with it; the upgrade's own
        # error is the one to report.
        with contextlib.suppress(peewee.DatabaseError, peewee.InterfaceError):
            db.execute_sql("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
        raise
    db.execute_sql("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))


@contextlib.contextmanager
def _file_lock(path: str, say: Callable[[str], None]) -> Iterator[None]:
    import fcntl

    from meiqia.private_files import private_opener

    with open(path, "a", opener=private_opener) as held:
        try:
            fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say("waiting for another upgrade to finish")
            fcntl.flock(held, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(held, fcntl.LOCK_UN)


def _transaction(db: peewee.Database) -> Any:
    """One step's transaction; SQLite's takes the write lock as it begins."""
    if isinstance(db, peewee.PostgresqlDatabase):
        return db.atomic()
    return db.atomic("IMMEDIATE")


def upgrade(
    db: peewee.Database,
    migrations: list[ModuleType] | None = None,
    echo: Callable[[str], None] | None = None,
) -> list[str]:
    """Apply what is pending and return the names applied (or stamped).

    Safe to run twice at once: the whole upgrade holds the upgrade lock and reads
    what is pending after taking it, so the second upgrade waits for the first
    and then finds the work done (returns nothing). Each migration runs in a
    transaction of its own: one that fails leaves nothing of itself, and those
    before it stay applied.
    """
    # Load the modules that register schema extras before a fresh create.
    from meiqia import schema_extras  # noqa: F401

    migrations = discover() if migrations is None else migrations
    say = echo or (lambda _msg: None)
    with db.bind_ctx([SchemaMigration, *ALL_MODELS]), _upgrade_lock(db, say):
        if not db.table_exists(Team._meta.table_name):
            with _transaction(db):
                db.create_tables([SchemaMigration, *ALL_MODELS])
                for extra in SCHEMA_EXTRAS:
                    extra(db)
                for module in migrations:
                    SchemaMigration.create(name=_short(module))
            say(f"created {len(ALL_MODELS)} tables")
            return [_short(m) for m in migrations]
        with _transaction(db):
            db.create_tables([SchemaMigration])
        todo = set(pending(db, migrations))
        applied = []
        for module in migrations:
            name = _short(module)
            if name not in todo:
                continue
            with _transaction(db):
                if "echo" in inspect.signature(module.up).parameters:
                    module.up(_migrator(db), db, echo=say)  # a long one reports progress
                else:
                    module.up(_migrator(db), db)
                SchemaMigration.create(name=name)
            say(f"applied {name}")
            applied.append(name)
        return applied
