"""The migrations runner: new databases, older databases, no data lost."""

from __future__ import annotations

import gzip
import types
from collections.abc import Iterator
from pathlib import Path

import peewee
import pytest

from meiqia import migrations
from meiqia.db import database
from meiqia.models import ALL_MODELS
from meiqia.models import QuickReply
from meiqia.models import SchemaMigration
from meiqia.models import Team
from tests.conftest import close_app
from tests.conftest import make_app
from tests.conftest import own_pg_database
from tests.helpers import ApiClient


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


# --- The real chain: the first release's database, upgraded by today's runner ------------

FIRST_RELEASE = Path(__file__).resolve().parents[1] / "data"
#: What the first release stamped; every later migration must run on its database.
FIRST_RELEASE_MIGRATIONS = {"m0001_initial", "m0002_message_search",
                            "m0003_sink_delivery_changes"}


def _layout(db: peewee.Database) -> dict[str, tuple[set[str], set[str]]]:
    """Every table with its column names and the columns of its indexes."""
    layout = {}
    for table in db.get_tables():
        columns = {c.name for c in db.get_columns(table)}
        indexes = {",".join(i.columns) + (" unique" if i.unique else "")
                   for i in db.get_indexes(table)}
        layout[table] = (columns, indexes)
    return layout


def _first_release_sqlite(tmp_path: Path) -> str:
    target = tmp_path / "first_release.sqlite3"
    with gzip.open(FIRST_RELEASE / "first_release.sqlite3.gz") as packed:
        target.write_bytes(packed.read())
    return f"sqlite:///{target}"


def _first_release_postgres(url: str) -> str:
    import psycopg2

    script = (FIRST_RELEASE / "first_release.postgresql.sql").read_text(encoding="utf-8")
    conn = psycopg2.connect(url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(script)
    conn.close()
    return url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def first_release_url(request, tmp_path) -> Iterator[str]:
    if request.param == "sqlite":
        yield _first_release_sqlite(tmp_path)
        return
    with own_pg_database() as url:
        yield _first_release_postgres(url)


def test_first_release_database_is_upgraded_to_todays_schema(first_release_url, tmp_path):
    """Every migration since the first release, applied by `meiqia db upgrade`'s runner
    to a database that release really made: the result has exactly the tables,
    columns and indexes of a new database, and the old rows are all there."""
    from meiqia import create_app

    config = {"SECRET_KEY": "s", "DATABASE_URL": first_release_url, "JOBS_INLINE": True,
              "PRESENCE_SWEEP_SECONDS": 0}  # its database goes away after the test
    app = create_app(config, instance_path=str(tmp_path / "instance"))
    try:
        with app.app_context():
            db = database.obj
            assert set(migrations.pending(db)) == {
                m.__name__.rsplit(".", 1)[-1] for m in migrations.discover()
            } - FIRST_RELEASE_MIGRATIONS
            applied = migrations.upgrade(db)
            assert applied and not migrations.pending(db)
            upgraded = _layout(db)
            rows = {
                "team": db.execute_sql("SELECT name FROM team").fetchall(),
                "message": db.execute_sql(
                    "SELECT body FROM message ORDER BY id").fetchall(),
                # m0010: each conversation's messages numbered 1, 2, 3 … by id.
                "seq": db.execute_sql(
                    "SELECT conversation_id, seq FROM message ORDER BY id").fetchall(),
                "last_seq": db.execute_sql(
                    "SELECT id, last_seq FROM conversation ORDER BY id").fetchall(),
                "ticket": db.execute_sql("SELECT content FROM ticket").fetchall(),
                "quick_reply": db.execute_sql(
                    f"SELECT keyword FROM {QuickReply._meta.table_name}").fetchall(),
            }
        api = ApiClient(app)
        assert api.login("admin@example.com", "old-release-1").status_code == 200
        found = api.get("/api/v1/history?content=退款").get_json()
        assert [row["id"] for row in found["items"]] == [1]
    finally:
        close_app(app)

    assert rows["team"] == [("老版本团队",)]
    assert [r[0] for r in rows["message"]] == [
        "你好，我想退款", "好的，马上为您处理退款", "订单号 20261203001，电话 131-2113-2323"]
    counted: dict[int, int] = {}
    for conversation_id, seq in rows["seq"]:
        counted[conversation_id] = counted.get(conversation_id, 0) + 1
        assert seq == counted[conversation_id]
    assert {cid: last for cid, last in rows["last_seq"] if last} == counted
    assert rows["ticket"] == [("周末能发货吗？",)]
    assert rows["quick_reply"] == [("退款",)]

    fresh_app = make_app(tmp_path / "fresh") if first_release_url.startswith("sqlite") \
        else None
    if fresh_app is None:
        with own_pg_database() as url:
            fresh_app = make_app(tmp_path / "fresh", DATABASE_URL=url)
            with fresh_app.app_context():
                fresh = _layout(database.obj)
            close_app(fresh_app)
    else:
        with fresh_app.app_context():
            fresh = _layout(database.obj)
        close_app(fresh_app)
    assert upgraded.keys() == fresh.keys()
    for table in fresh:
        assert upgraded[table][0] == fresh[table][0], f"columns of {table}"
        assert upgraded[table][1] == fresh[table][1], f"indexes of {table}"
