"""Two `meiqia db upgrade` at the same moment (docs/deploy.md §3: ExecStartPre of one
web service per host; §7: "safe to run twice"): the one that comes second waits for
the first and finds nothing left to do; neither fails.

Two real processes, each with its own connection, are released together for many
trials, each trial with a real migration pending (m0022: its column dropped and its
record removed, the schema of the release before it), on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import own_pg_database

ROOT = Path(__file__).resolve().parents[2]
TRIALS = 15
NAME = "m0022_agent_socket_closed_at"

#: One upgrader: waits for "go" on stdin, upgrades, answers one line, again.
UPGRADER = textwrap.dedent("""
    import sys
    from meiqia import migrations
    from meiqia.db import make_database
    from meiqia.models import ALL_MODELS, SchemaMigration

    db = make_database(sys.argv[1])
    with db.bind_ctx([SchemaMigration, *ALL_MODELS]):
        migrations.discover()
        print("ready", flush=True)
        for line in sys.stdin:
            db.connect(reuse_if_open=True)
            try:
                applied = migrations.upgrade(db)
                print("applied " + ",".join(applied), flush=True)
            except Exception as exc:
                print("failed " + type(exc).__name__ + ": " + str(exc).splitlines()[0],
                      flush=True)
            db.close()
""")


def _as_before_m0022(url: str) -> None:
    from meiqia import migrations
    from meiqia.db import make_database
    from meiqia.models import ALL_MODELS
    from meiqia.models import SchemaMigration

    db = make_database(url)
    with db.bind_ctx([SchemaMigration, *ALL_MODELS]), db.connection_context():
        if "closed_at" in {c.name for c in db.get_columns("agent_socket")}:
            migrator = migrations._migrator(db)
            migrator.migrate(migrator.drop_column("agent_socket", "closed_at"))
        SchemaMigration.delete().where(SchemaMigration.name == NAME).execute()
        assert migrations.pending(db) == [NAME]
    db.close_all()


def _new_database(url: str) -> None:
    from meiqia import migrations
    from meiqia.db import make_database
    from meiqia.models import ALL_MODELS
    from meiqia.models import SchemaMigration

    db = make_database(url)
    with db.bind_ctx([SchemaMigration, *ALL_MODELS]), db.connection_context():
        migrations.upgrade(db)
    db.close_all()


def _release_together(script: str, args: list[str], lines: list[str],
                      before_each: Callable[[], None] | None = None
                      ) -> list[tuple[str, str]]:
    """Two long-lived upgraders (``script`` with ``args``), released together once
    per line of ``lines`` (each gets the line and answers one): their answers,
    release by release. ``before_each`` runs before each release."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", script, *args], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
             for _ in range(2)]
    results = []
    try:
        for proc in procs:
            assert proc.stdout.readline().strip() == "ready"
        for line in lines:
            if before_each is not None:
                before_each()
            for proc in procs:
                proc.stdin.write(line + "\n")
            for proc in procs:
                proc.stdin.flush()
            results.append(tuple(proc.stdout.readline().strip() for proc in procs))
    finally:
        for proc in procs:
            proc.stdin.close()
            proc.wait(timeout=60)
            proc.stdout.close()
    return results


def _race(url: str, trials: int, fresh: bool = False) -> list[tuple[str, str]]:
    return _release_together(UPGRADER, [url], ["go"] * trials,
                             None if fresh else lambda: _as_before_m0022(url))


def _check(results: list[tuple[str, str]]) -> None:
    for a, b in results:
        assert not a.startswith("failed") and not b.startswith("failed"), (a, b)
        # Exactly one of them applied it; the other found it done.
        assert sorted((a, b)) == ["applied", f"applied {NAME}"], (a, b)


def test_two_upgrades_at_once_on_sqlite(tmp_path):
    url = f"sqlite:///{tmp_path / 'race.sqlite3'}"
    _new_database(url)
    _check(_race(url, TRIALS))


@pytest.mark.postgres
def test_two_upgrades_at_once_on_postgres():
    with own_pg_database() as url:
        _new_database(url)
        _check(_race(url, TRIALS))


@pytest.mark.postgres
def test_two_upgrades_of_a_new_database_at_once_on_postgres():
    """An empty database: one creates the tables, the other finds them made."""
    for _ in range(3):
        with own_pg_database() as url:
            (a, b), = _race(url, 1, fresh=True)
            assert not a.startswith("failed") and not b.startswith("failed"), (a, b)
            assert "applied" in (a, b)


def test_two_upgrades_of_a_new_database_at_once_on_sqlite(tmp_path):
    from meiqia.db import make_database

    for n in range(3):
        url = f"sqlite:///{tmp_path / f'new{n}.sqlite3'}"
        # The file exists, in WAL mode, with no table (as `meiqia init` leaves it before
        # its first write): two first-ever connections to a new file can meet in
        # SQLite's switch to WAL, which is not what this test is about.
        db = make_database(url)
        db.connect()
        db.close_all()
        (a, b), = _race(url, 1, fresh=True)
        assert not a.startswith("failed") and not b.startswith("failed"), (a, b)
        assert "applied" in (a, b)


# --- The command as an operator runs it ----------------------------------------------


def _meiqia_upgrade(tmp_path: Path, url: str) -> subprocess.Popen:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MEIQIA_")}
    environ.update({"MEIQIA_INSTANCE_PATH": str(tmp_path / "inst"), "MEIQIA_DATABASE_URL": url,
                    "MEIQIA_NO_PLUGIN_COMMANDS": "1", "PYTHONPATH": str(ROOT)})
    return subprocess.Popen([sys.executable, "-m", "meiqia.cli", "db", "upgrade"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=environ)


def test_two_upgrade_commands_at_once_both_succeed(tmp_path):
    url = f"sqlite:///{tmp_path / 'cmd.sqlite3'}"
    _new_database(url)
    _as_before_m0022(url)
    procs = [_meiqia_upgrade(tmp_path, url) for _ in range(2)]
    outs = [proc.communicate(timeout=120) + (proc.returncode,) for proc in procs]
    assert [rc for _, _, rc in outs] == [0, 0], outs
    said = sorted(out.strip().splitlines()[-1] for out, _, _ in outs)
    assert said == ["1 migration(s) done", "up to date"], outs


def test_a_failed_upgrade_is_one_line_not_a_traceback(tmp_path):
    # The column is there but its migration is not recorded: m0022 fails for real.
    url = f"sqlite:///{tmp_path / 'half.sqlite3'}"
    _new_database(url)
    import sqlite3

    conn = sqlite3.connect(tmp_path / "half.sqlite3")
    conn.execute("DELETE FROM schema_migration WHERE name = ?", (NAME,))
    conn.commit()
    conn.close()
    proc = _meiqia_upgrade(tmp_path, url)
    _out, err, rc = *proc.communicate(timeout=120), proc.returncode
    assert rc == 1 and "Traceback" not in err, err
    assert err.strip().splitlines() == [
        "Error: database upgrade failed: OperationalError: duplicate column name: closed_at"]

    # A database that does not answer: one line too.
    proc = _meiqia_upgrade(tmp_path, "postgresql://postgres@127.0.0.1:7909/opsfix_db")
    _out, err, rc = *proc.communicate(timeout=120), proc.returncode
    assert rc == 1 and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("Error: cannot connect to the database postgresql://postgres@"
                          "127.0.0.1:7909/opsfix_db: OperationalError: "), err


# --- Many migrations pending: one upgrade does them all ------------------------------

#: One upgrader that takes the database's URL with each "go" line (a fresh database
#: each trial), upgrades it, answers one line.
URL_UPGRADER = textwrap.dedent("""
    import sys
    from meiqia import migrations
    from meiqia.db import make_database
    from meiqia.models import ALL_MODELS, SchemaMigration

    migrations.discover()
    print("ready", flush=True)
    for line in sys.stdin:
        db = make_database(line.strip())
        with db.bind_ctx([SchemaMigration, *ALL_MODELS]):
            db.connect()
            try:
                applied = migrations.upgrade(db)
                print("applied " + ",".join(applied), flush=True)
            except Exception as exc:
                print("failed " + type(exc).__name__ + ": " + str(exc).splitlines()[0],
                      flush=True)
            db.close_all()
""")

RELEASE_TRIALS = 10


def _race_fresh_databases(urls: list[str]) -> list[tuple[str, str]]:
    """Two upgraders released together on each database of ``urls`` in turn."""
    return _release_together(URL_UPGRADER, [], urls)


def _check_one_did_all(results: list[tuple[str, str]]) -> None:
    """Each trial: one upgrader applied every pending migration, the other none."""
    from meiqia import migrations
    from tests.unit.test_migrations import FIRST_RELEASE_MIGRATIONS

    everything = ",".join(name for name in (m.__name__.rsplit(".", 1)[-1]
                                            for m in migrations.discover())
                          if name not in FIRST_RELEASE_MIGRATIONS)
    assert everything.count(",") >= 10  # a dozen migrations to split, if they could
    for a, b in results:
        assert not a.startswith("failed") and not b.startswith("failed"), (a, b)
        assert sorted((a, b)) == ["applied", f"applied {everything}"], (a, b)


@pytest.mark.postgres
def test_two_upgrades_of_a_first_release_database_at_once_on_postgres():
    """docs/deploy.md §7: "one applies the migrations, the others wait for it and then
    report `up to date`". A lock per migration let two upgrades share the work (one
    applied eleven migrations, the other one) in 3 of 4 trials from outside."""
    from tests.unit.test_migrations import _first_release_postgres

    with contextlib.ExitStack() as stack:
        urls = [_first_release_postgres(stack.enter_context(own_pg_database()))
                for _ in range(RELEASE_TRIALS)]
        _check_one_did_all(_race_fresh_databases(urls))


def test_two_upgrades_of_a_first_release_database_at_once_on_sqlite(tmp_path):
    from meiqia.db import make_database
    from tests.unit.test_migrations import _first_release_sqlite

    urls = []
    for n in range(RELEASE_TRIALS):
        (tmp_path / str(n)).mkdir()
        urls.append(_first_release_sqlite(tmp_path / str(n)))
        # In WAL mode, as every database a server has opened is: two first-ever
        # connections can meet in SQLite's switch to WAL, which is not this test's.
        db = make_database(urls[-1])
        db.connect()
        db.close_all()
    _check_one_did_all(_race_fresh_databases(urls))
