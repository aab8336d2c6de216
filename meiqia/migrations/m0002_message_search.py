"""Message search: FTS5 trigram table on SQLite, pg_trgm index on PostgreSQL.

The objects are written out here, as this release made them, rather than taken
from ``schema_extras``: message search has since moved to a gram index
(m0008, which drops these), and a migration must keep doing what it did.
"""

from __future__ import annotations

import peewee


def up(migrator, db) -> None:  # noqa: ANN001 - peewee migrator protocol
    if isinstance(db, peewee.PostgresqlDatabase):
        db.execute_sql("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        db.execute_sql("CREATE INDEX IF NOT EXISTS message_body_trgm ON message "
                       "USING gin (body gin_trgm_ops)")
        return
    db.execute_sql("CREATE VIRTUAL TABLE IF NOT EXISTS message_fts USING fts5("
                   "body, content='message', content_rowid='id', tokenize='trigram')")
    db.execute_sql("CREATE TRIGGER IF NOT EXISTS message_fts_insert AFTER INSERT ON message "
                   "BEGIN INSERT INTO message_fts(rowid, body) VALUES (new.id, new.body); END")
    db.execute_sql("CREATE TRIGGER IF NOT EXISTS message_fts_delete AFTER DELETE ON message "
                   "BEGIN INSERT INTO message_fts(message_fts, rowid, body) "
                   "VALUES ('delete', old.id, old.body); END")
    db.execute_sql("CREATE TRIGGER IF NOT EXISTS message_fts_update AFTER UPDATE OF body "
                   "ON message BEGIN INSERT INTO message_fts(message_fts, rowid, body) "
                   "VALUES ('delete', old.id, old.body); INSERT INTO message_fts(rowid, body) "
                   "VALUES (new.id, new.body); END")
    # Index the messages stored before this migration.
    db.execute_sql("INSERT INTO message_fts(message_fts) VALUES ('rebuild')")
