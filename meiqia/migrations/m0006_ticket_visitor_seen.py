"""Tickets remember the newest public reply the visitor has seen in the widget.

So the widget can flag replies that arrived since his last visit. Existing
tickets start at 0: their replies count as unread once.
"""

from __future__ import annotations


def up(migrator, db) -> None:  # noqa: ANN001 - peewee migrator protocol
    import peewee

    migrator.migrate(
        migrator.add_column("ticket", "visitor_seen_reply_id", peewee.IntegerField(default=0))
    )
