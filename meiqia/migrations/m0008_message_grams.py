"""Message search moves from trigrams to grams (pairs of characters), so two-character
Chinese terms (退款) are served by the index instead of a scan of every message.

SQLite: the FTS5 trigram table and its triggers are dropped, the gram table,
its triggers and the position table are created, and the existing messages are
indexed in batches with progress. PostgreSQL: the pg_trgm index is dropped
(the extension stays: dropping it needs its owner, and it costs nothing) and
the GIN index on ``meiqia_grams(body)`` is built, with progress read from
``pg_stat_progress_create_index``. Messages themselves are not touched.
Writes to ``message`` wait while this runs (about 15-25 s per million messages).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import peewee

#: Below this many messages the build is quick enough to go without progress lines.
QUIET_BELOW = 50_000


def _watch_postgres(db: peewee.PostgresqlDatabase, say: Callable[[str], None],
                    stop: threading.Event) -> None:
    """Report the index build's progress from a connection of its own (the
    migration's transaction is busy building)."""
    import psycopg2

    conn = psycopg2.connect(dbname=db.database, **db.connect_params)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            while not stop.wait(2.0):
                cur.execute("SELECT phase, blocks_done, blocks_total, tuples_done, tuples_total "
                            "FROM pg_stat_progress_create_index WHERE datname = "
                            "current_database() AND relid = 'message'::regclass")
                for phase, blocks, blocks_total, tuples, tuples_total in cur.fetchall():
                    if blocks_total:
                        say(f"message search index: {phase}, {100 * blocks // blocks_total}%")
                    elif tuples_total:
                        say(f"message search index: {phase}, {tuples:,} / {tuples_total:,}")
                    else:
                        say(f"message search index: {phase}")
    finally:
        conn.close()


def up(migrator, db, echo: Callable[[str], None] | None = None) -> None:  # noqa: ANN001
    from meiqia.schema_extras import index_message_grams
    from meiqia.schema_extras import message_search

    total = db.execute_sql("SELECT count(*) FROM message").fetchone()[0]
    say = (echo if total >= QUIET_BELOW else None) or (lambda _msg: None)
    say(f"message search index: building over {total:,} messages")
    if isinstance(db, peewee.PostgresqlDatabase):
        db.execute_sql("DROP INDEX IF EXISTS message_body_trgm")
        stop = threading.Event()
        watcher = None
        if echo is not None and total >= QUIET_BELOW:
            watcher = threading.Thread(target=_watch_postgres, args=(db, say, stop),
                                       daemon=True)
            watcher.start()
        try:
            message_search(db)
        finally:
            stop.set()
            if watcher is not None:
                watcher.join(5)
        return
    for trigger in ("message_fts_insert", "message_fts_delete", "message_fts_update"):
        db.execute_sql(f"DROP TRIGGER IF EXISTS {trigger}")
    db.execute_sql("DROP TABLE IF EXISTS message_fts")
    message_search(db)
    index_message_grams(db, say)
