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
import sys
import time
from collections.abc import Callable
from collections.abc import Iterator
from types import ModuleType

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

#: How long an upgrade waits for another one (a long migration) to finish.
LOCK_WAIT_SECONDS = 3600.0


@contextlib.contextmanager
def _locked(db: peewee.Database, say: Callable[[str], None]) -> Iterator[None]:
    """A transaction holding the upgrade lock: another upgrade (another host's
    ``meiqia db upgrade`` at the same moment) waits here until this one commits.

    PostgreSQL: a transaction-level advisory lock (let go at commit or rollback).
    SQLite: the transaction begins IMMEDIATE, which takes the write lock; a long
    migration can hold it past the busy timeout, so the wait starts again.
    """
    if isinstance(db, peewee.PostgresqlDatabase):
        with db.atomic():
            db.execute_sql("SET LOCAL lock_timeout = 0")
            db.execute_sql("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
            yield
        return
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    told = False
    while True:
        transaction = db.atomic("IMMEDIATE")
        try:
            transaction.__enter__()
        except peewee.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            if not told:
                say("waiting for another upgrade to finish")
                told = True
            continue
        break
    try:
        yield
    except BaseException:
        if not transaction.__exit__(*sys.exc_info()):
            raise
    else:
        transaction.__exit__(None, None, None)


def upgrade(
    db: peewee.Database,
    migrations: list[ModuleType] | None = None,
    echo: Callable[[str], None] | None = None,
) -> list[str]:
    """Apply what is pending and return the names applied (or stamped).

    Safe to run twice at once: each step holds the upgrade lock and reads what is
    pending after taking it, so the second upgrade waits for the first and then
    finds the work done.
    """
    # Load the modules that register schema extras before a fresh create.
    from meiqia import schema_extras  # noqa: F401

    migrations = discover() if migrations is None else migrations
    say = echo or (lambda _msg: None)
    with db.bind_ctx([SchemaMigration, *ALL_MODELS]):
        with _locked(db, say):
            fresh = not db.table_exists(Team._meta.table_name)
            if fresh:
                db.create_tables([SchemaMigration, *ALL_MODELS])
                for extra in SCHEMA_EXTRAS:
                    extra(db)
                for module in migrations:
                    SchemaMigration.create(name=_short(module))
            else:
                db.create_tables([SchemaMigration])
        if fresh:
            say(f"created {len(ALL_MODELS)} tables")
            return [_short(m) for m in migrations]
        applied = []
        for module in migrations:
            name = _short(module)
            if name not in pending(db, migrations):
                continue  # done, or being done: _locked tells
            with _locked(db, say):
                if name not in pending(db, [module]):
                    continue  # another upgrade applied it while this one waited
                if "echo" in inspect.signature(module.up).parameters:
                    module.up(_migrator(db), db, echo=say)  # a long one reports progress
                else:
                    module.up(_migrator(db), db)
                SchemaMigration.create(name=name)
            say(f"applied {name}")
            applied.append(name)
        return applied
