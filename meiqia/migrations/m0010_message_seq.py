"""Per-conversation message positions (``message.seq``, ``conversation.last_seq``).

Resume used to ask by message id, but ids of one conversation could reach a
socket out of order when two senders raced, so ``after=<highest id seen>`` lost
the lower one. ``seq`` numbers a conversation's messages 1, 2, 3 … in commit
order (docs/protocol.md, "Positions"). Existing messages are numbered by id,
which is their commit order within a conversation too (both were written under
the conversation's row lock).
"""

from __future__ import annotations


def up(migrator, db) -> None:  # noqa: ANN001 - peewee migrator protocol
    import peewee

    # Plain ALTERs: peewee's SQLite add_column of a NOT NULL column rebuilds the
    # table, which SQLite refuses here ("database table is locked").
    db.execute_sql("ALTER TABLE message ADD COLUMN seq BIGINT")
    db.execute_sql("ALTER TABLE conversation ADD COLUMN last_seq BIGINT NOT NULL DEFAULT 0")
    if isinstance(db, peewee.PostgresqlDatabase):
        db.execute_sql(
            "UPDATE message AS m SET seq = r.n FROM (SELECT id, row_number() OVER "
            "(PARTITION BY conversation_id ORDER BY id) AS n FROM message) AS r "
            "WHERE m.id = r.id")
    else:
        db.execute_sql(
            "UPDATE message SET seq = (SELECT count(*) FROM message AS o WHERE "
            "o.conversation_id = message.conversation_id AND o.id <= message.id)")
    db.execute_sql(
        "UPDATE conversation SET last_seq = COALESCE((SELECT max(seq) FROM message "
        "WHERE message.conversation_id = conversation.id), 0)")
    migrator.migrate(migrator.add_index("message", ("conversation_id", "seq"), True))
