"""The knowledge-base change log (``knowledge_change``): the KB version every index follows.

Before, a process noticed an edit by the entry count and the last ``updated_at``
and then rebuilt its whole index inside a request. With the log it applies just
the entries changed since its version. Existing knowledge bases start at
version 0 (no rows): every index is built from the entries as they are.
"""

from __future__ import annotations


def up(migrator, db) -> None:  # noqa: ANN001 - peewee migrator protocol
    import peewee

    from meiqia.models.base import utcnow

    class Team(peewee.Model):
        class Meta:
            database = db
            table_name = "team"

    class KnowledgeChange(peewee.Model):
        """The table as this migration creates it (the model may change later)."""

        id = peewee.BigAutoField()
        team = peewee.ForeignKeyField(Team, backref="+", on_delete="CASCADE")
        entry_key = peewee.CharField(max_length=80, default="")
        kind = peewee.CharField(max_length=16, default="edit")
        base = peewee.BigIntegerField(null=True)
        created_at = peewee.DateTimeField(default=utcnow)

        class Meta:
            database = db
            table_name = "knowledge_change"
            indexes = ((("team", "id"), False),)

    db.create_tables([KnowledgeChange])
