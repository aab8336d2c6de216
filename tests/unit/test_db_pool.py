"""The SQLite database keeps its connections in a pool, like PostgreSQL.

Opening a SQLite connection (pragmas) and closing it (the last close of a WAL
database checkpoints it) cost more than a websocket frame's queries, so every
unit of work reuses a pooled connection.
"""

from __future__ import annotations

import threading

from meiqia.db import connection
from meiqia.db import database


def test_units_of_work_reuse_one_connection(app):
    with app.app_context():
        with connection():
            first = database.connection()
            assert database.execute_sql("PRAGMA journal_mode").fetchone()[0] == "wal"
        with connection():
            assert database.connection() is first


def test_a_pooled_connection_moves_between_threads_with_its_pragmas(app):
    seen = []

    def unit():
        with app.app_context(), connection():
            seen.append((database.connection(),
                         database.execute_sql("PRAGMA foreign_keys").fetchone()[0],
                         database.execute_sql("PRAGMA busy_timeout").fetchone()[0]))

    with app.app_context(), connection():
        mine = database.connection()
    thread = threading.Thread(target=unit)
    thread.start()
    thread.join(10)
    assert seen == [(mine, 1, int(app.config["DATABASE_BUSY_TIMEOUT"] * 1000))]
