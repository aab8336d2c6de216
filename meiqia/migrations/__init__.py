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

import importlib
import inspect
import pkgutil
from collections.abc import Callable
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


def upgrade(
    db: peewee.Database,
    migrations: list[ModuleType] | None = None,
    echo: Callable[[str], None] | None = None,
) -> list[str]:
    """Apply what is pending and return the names applied (or stamped)."""
    # Load the modules that register schema extras before a fresh create.
    from meiqia import schema_extras  # noqa: F401

    migrations = discover() if migrations is None else migrations
    say = echo or (lambda _msg: None)
    with db.bind_ctx([SchemaMigration, *ALL_MODELS]):
        fresh = not db.table_exists(Team._meta.table_name)
        if fresh:
            with db.atomic():
                db.create_tables([SchemaMigration, *ALL_MODELS])
                for extra in SCHEMA_EXTRAS:
                    extra(db)
                for module in migrations:
                    SchemaMigration.create(name=_short(module))
            say(f"created {len(ALL_MODELS)} tables")
            return [_short(m) for m in migrations]
        db.create_tables([SchemaMigration])
        applied = []
        todo = set(pending(db, migrations))
        for module in migrations:
            name = _short(module)
            if name not in todo:
                continue
            with db.atomic():
                if "echo" in inspect.signature(module.up).parameters:
                    module.up(_migrator(db), db, echo=say)  # a long one reports progress
                else:
                    module.up(_migrator(db), db)
                SchemaMigration.create(name=name)
            say(f"applied {name}")
            applied.append(name)
        return applied

