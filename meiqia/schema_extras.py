"""Schema objects that peewee models cannot express, per database.

Registered with ``meiqia.migrations.schema_extra``; each function is idempotent
and also called by the migration that introduced it.
"""

from __future__ import annotations

import peewee

from meiqia.migrations import schema_extra


@schema_extra
def message_search(db: peewee.Database) -> None:
    """Substring search over message bodies that does not scan every row.

    SQLite: an FTS5 table with the trigram tokenizer (terms of 3+ characters;
    Chinese needs no segmentation), kept in sync by triggers. PostgreSQL: a
    pg_trgm GIN index that ILIKE '%term%' uses. Terms of 1-2 characters fall back
    to a scan (STACK.md: trigram cannot match them).
    """
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
