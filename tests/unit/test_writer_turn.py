"""SQLite writers take turns in the process (``db._WriterTurn``, issue 19).

Under gevent a writer waiting in SQLite's busy loop would stop the event loop and
the holder of the lock with it; so writers wait on an in-process lock first. Here
with real threads on a real SQLite file: while one writer holds its transaction,
another's transaction and another's autocommit write are refused with "database is
locked: no turn to write" after the busy timeout, before SQLite is asked (what
sockets answer ``unavailable``), and both get
through once the first commits. Reads go on meanwhile (WAL).
"""

from __future__ import annotations

import threading

import peewee
import pytest

from meiqia.db import make_database


@pytest.fixture
def db(tmp_path):
    database = make_database(f"sqlite:///{tmp_path}/turn.sqlite3", busy_timeout=0.3,
                             pool_size=4)
    database.connect()
    database.execute_sql("CREATE TABLE t (n INTEGER)")
    database.close()
    yield database
    database.close_all()


def test_a_second_writer_waits_its_turn_and_is_refused_past_the_timeout(db):
    holding, done = threading.Event(), threading.Event()

    def holder():
        db.connect()
        with db.atomic():
            db.execute_sql("INSERT INTO t VALUES (1)")
            holding.set()
            done.wait(30)
        db.close()

    thread = threading.Thread(target=holder)
    thread.start()
    try:
        assert holding.wait(30)
        db.connect()
        with pytest.raises(peewee.OperationalError, match="no turn to write"):
            with db.atomic():
                db.execute_sql("INSERT INTO t VALUES (2)")
        with pytest.raises(peewee.OperationalError, match="no turn to write"):
            db.execute_sql("INSERT INTO t VALUES (3)")  # autocommit: a turn too
        assert db.execute_sql("SELECT COUNT(*) FROM t").fetchone() == (0,)  # reads go on
    finally:
        done.set()
        thread.join(30)
    with db.atomic():
        db.execute_sql("INSERT INTO t VALUES (2)")
    db.execute_sql("INSERT INTO t VALUES (3)")
    assert sorted(r[0] for r in db.execute_sql("SELECT n FROM t")) == [1, 2, 3]
    db.close()


def test_many_writers_at_once_all_get_their_turn(db):
    def writer(k):
        db.connect()
        for i in range(20):
            with db.atomic():
                db.execute_sql("INSERT INTO t VALUES (?)", (k * 100 + i,))
        db.close()

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    db.connect()
    assert db.execute_sql("SELECT COUNT(*), COUNT(DISTINCT n) FROM t").fetchone() == (160, 160)
    db.close()
