"""History and dashboard indexes: one covering index over the ended conversations.

The dashboard aggregates, the history counts and the figure filters read the
conversations that ended in a range; with (team, status, ended_at) followed by
every figure and scope column they read this index alone instead of one wide
row per conversation (docs/history.md, "Indexes"). Adding an index keeps every row.
"""

from __future__ import annotations

#: The index of ``Conversation.Meta.indexes`` this migration adds (same columns, so
#: the same name as on a new database).
COLUMNS = ("team_id", "status", "ended_at", "id", "handler_id", "group_id", "visitor_id",
           "visit_id", "rating", "is_missed", "is_invalid", "is_lead", "bot_resolved",
           "first_response_s", "duration_s", "grade")


def up(migrator, db) -> None:  # noqa: ANN001 - peewee migrator protocol
    migrator.migrate(migrator.add_index("conversation", COLUMNS, False))
