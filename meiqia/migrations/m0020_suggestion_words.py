"""Suggestion logs keep the words the agent was shown: ``question`` and ``answer``.

A workspace opened after the ``suggestions`` frame (a reload, a second tab)
asks for the suggestions of the visitor's last message
(``GET /api/v1/conversations/<id>/suggestions``); an answerer plugin's
suggestion is in no table, so the log keeps what was shown. Rows logged before
this migration have empty words and are not shown again.
"""

from __future__ import annotations


def up(migrator, db) -> None:  # noqa: ANN001 - peewee migrator protocol
    import peewee

    migrator.migrate(
        migrator.add_column("suggestion_log", "question", peewee.TextField(default="")),
        migrator.add_column("suggestion_log", "answer", peewee.TextField(default="")),
    )
