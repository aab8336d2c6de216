"""Schema objects that peewee models cannot express, per database.

Registered with ``meiqia.migrations.schema_extra``; each function is idempotent
and also called by the migration that introduced it.
"""

from __future__ import annotations

from collections.abc import Callable

import peewee

from meiqia.migrations import schema_extra

#: Positions of a body the SQLite gram index covers (rows of ``message_gram_seq``).
#: Bodies are capped at 5,000 characters by the API; this leaves room for plugins.
GRAM_POSITIONS = 100_000


def _grams_sql(body: str) -> str:
    """SQLite: the gram tokens of ``body`` (a column reference), one per position.

    ``hex`` makes every gram one token of ASCII letters and digits, whatever
    the characters (punctuation, spaces, emoji), so the plain ``ascii``
    tokenizer keeps it whole; ``history.gram_query`` writes terms the same way.
    """
    return (f"(SELECT group_concat(hex(lower(substr({body}, n, 2))), ' ') "
            f"FROM message_gram_seq WHERE n <= length({body}))")


@schema_extra
def message_search(db: peewee.Database) -> None:
    """Substring search over message bodies that does not scan every row, for any
    term length: Chinese terms are often two characters (退款), which trigram
    indexes cannot serve (STACK.md).

    The index is of grams: every pair of consecutive characters, lower-cased.
    SQLite: a contentless FTS5 table over pre-computed gram tokens (the last
    character of a body alone too, so one-character terms are prefix queries),
    kept in sync by triggers. PostgreSQL: a GIN index on ``meiqia_grams(body)``,
    the body's distinct single characters and pairs, maintained by PostgreSQL
    itself. Both only narrow the candidates; ``history`` tests each body.
    """
    if isinstance(db, peewee.PostgresqlDatabase):
        db.execute_sql(
            "CREATE OR REPLACE FUNCTION meiqia_grams(body text) RETURNS text[] "
            "LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$ "
            "SELECT coalesce(array_agg(DISTINCT g), '{}') FROM ("
            "SELECT substr(lower(body), i, 2) AS g FROM generate_series(1, length(body) - 1) i "
            "UNION ALL SELECT substr(lower(body), i, 1) FROM generate_series(1, length(body)) i"
            ") grams $$")
        # What a term must contain: its pairs (or itself, for one character).
        db.execute_sql(
            "CREATE OR REPLACE FUNCTION meiqia_query_grams(term text) RETURNS text[] "
            "LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$ "
            "SELECT CASE WHEN length(term) <= 1 THEN ARRAY[lower(term)] ELSE ("
            "SELECT array_agg(DISTINCT substr(lower(term), i, 2)) "
            "FROM generate_series(1, length(term) - 1) i) END $$")
        db.execute_sql("CREATE INDEX IF NOT EXISTS message_grams ON message "
                       "USING gin (meiqia_grams(body))")
        return
    db.execute_sql("CREATE TABLE IF NOT EXISTS message_gram_seq (n INTEGER PRIMARY KEY)")
    if db.execute_sql("SELECT count(*) FROM message_gram_seq").fetchone()[0] < GRAM_POSITIONS:
        db.execute_sql("DELETE FROM message_gram_seq")
        db.execute_sql(
            "INSERT INTO message_gram_seq(n) WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL "
            f"SELECT n + 1 FROM s WHERE n < {GRAM_POSITIONS}) SELECT n FROM s")
    db.execute_sql("CREATE VIRTUAL TABLE IF NOT EXISTS message_gram USING fts5("
                   "grams, content='', columnsize=0, tokenize='ascii')")
    # Contentless: a delete must repeat the tokens inserted, which the same
    # expression over the old body gives.
    db.execute_sql("CREATE TRIGGER IF NOT EXISTS message_gram_insert AFTER INSERT ON message "
                   "WHEN new.body <> '' BEGIN INSERT INTO message_gram(rowid, grams) "
                   f"VALUES (new.id, {_grams_sql('new.body')}); END")
    db.execute_sql("CREATE TRIGGER IF NOT EXISTS message_gram_delete AFTER DELETE ON message "
                   "WHEN old.body <> '' BEGIN INSERT INTO message_gram(message_gram, rowid, "
                   f"grams) VALUES ('delete', old.id, {_grams_sql('old.body')}); END")
    db.execute_sql("CREATE TRIGGER IF NOT EXISTS message_gram_update AFTER UPDATE OF body "
                   "ON message BEGIN "
                   "INSERT INTO message_gram(message_gram, rowid, grams) SELECT 'delete', "
                   f"old.id, {_grams_sql('old.body')} WHERE old.body <> ''; "
                   "INSERT INTO message_gram(rowid, grams) SELECT new.id, "
                   f"{_grams_sql('new.body')} WHERE new.body <> ''; END")


def index_message_grams(db: peewee.Database, echo: Callable[[str], None],
                        batch: int = 100_000) -> int:
    """SQLite: put the messages stored before the gram index into it, in batches
    of ids, saying how far it got after each (a million messages take 6-15 s).
    Returns how many."""
    last = db.execute_sql("SELECT coalesce(max(id), 0) FROM message").fetchone()[0]
    total = db.execute_sql("SELECT count(*) FROM message WHERE body <> ''").fetchone()[0]
    done = 0
    for low in range(0, last, batch):
        done += db.execute_sql(
            f"INSERT INTO message_gram(rowid, grams) SELECT id, {_grams_sql('body')} "
            "FROM message WHERE id > ? AND id <= ? AND body <> ''", (low, low + batch)).rowcount
        echo(f"message search index: {done:,} / {total:,} messages")
    return done
