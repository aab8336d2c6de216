"""The migrations runner: new databases, older databases, no data lost."""

from __future__ import annotations

import types

import peewee

from meiqia import migrations
from meiqia.db import database
from meiqia.models import ALL_MODELS
from meiqia.models import SchemaMigration
from meiqia.models import Team


def test_new_database_has_every_table_and_stamps_migrations(db_app):
    db = database.obj
    for model in ALL_MODELS:
        assert db.table_exists(model._meta.table_name), model.__name__
    names = {row.name for row in SchemaMigration.select()}
    assert names == {m.__name__.rsplit(".", 1)[-1] for m in migrations.discover()}
    assert migrations.pending(db) == []
    assert migrations.upgrade(db) == []  # a second run changes nothing


def _add_column_migration() -> types.ModuleType:
    module = types.ModuleType("meiqia.migrations.m9001_team_motto")

    def up(migrator, db):
        migrator.migrate(
            migrator.add_column("team", "motto", peewee.CharField(default="客户第一"))
        )

    module.up = up
    return module


def test_older_database_is_upgraded_without_data_loss(db_app):
    db = database.obj
    team = Team.create(name="老数据团队")
    later = [*migrations.discover(), _add_column_migration()]
    assert migrations.pending(db, later) == ["m9001_team_motto"]

    try:
        applied = migrations.upgrade(db, later)

        assert applied == ["m9001_team_motto"]
        columns = {c.name for c in db.get_columns("team")}
        assert "motto" in columns
        row = db.execute_sql(f"SELECT name, motto FROM team WHERE id = {int(team.id)}").fetchone()
        assert row == ("老数据团队", "客户第一")
        assert migrations.upgrade(db, later) == []
    finally:
        # The PostgreSQL database is shared by the session: put the schema back.
        if "motto" in {c.name for c in db.get_columns("team")}:
            migrator = migrations._migrator(db)
            migrator.migrate(migrator.drop_column("team", "motto"))
        SchemaMigration.delete().where(SchemaMigration.name == "m9001_team_motto").execute()


def test_failed_migration_rolls_back_and_is_not_recorded(app):
    db = database.obj
    module = types.ModuleType("meiqia.migrations.m9002_broken")

    def up(migrator, db):
        db.execute_sql("CREATE TABLE half_done (id INTEGER)")
        raise RuntimeError("boom")

    module.up = up
    try:
        migrations.upgrade(db, [*migrations.discover(), module])
    except RuntimeError:
        pass
    assert "m9002_broken" in migrations.pending(db, [*migrations.discover(), module])
    assert not db.table_exists("half_done")
