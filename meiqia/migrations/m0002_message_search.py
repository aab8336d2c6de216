"""Message search: FTS5 trigram table on SQLite, pg_trgm index on PostgreSQL."""

from __future__ import annotations

import peewee


def up(migrator, db) -> None:  # noqa: ANN001 - peewee migrator protocol
    from meiqia.schema_extras import message_search

    message_search(db)
    if not isinstance(db, peewee.PostgresqlDatabase):
        # Index the messages stored before this migration.
        db.execute_sql("INSERT INTO message_fts(message_fts) VALUES ('rebuild')")
