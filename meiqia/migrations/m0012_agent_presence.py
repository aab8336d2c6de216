"""Agent presence and the conversation lifecycle (issue 14).

- ``agent_socket``: one row per open workspace socket, refreshed by its
  process, so routing counts only agents with a live socket, across processes.
- ``agent.connected``: presence's last verdict, so each away/back transition
  is told once.
- ``conversation.offered_at``: when a queued visitor was last told that nobody
  is left (the leave-a-message offer), so two processes do not both tell him.
- ``visitor.language``: the widget's language, for the system lines he reads.
- ``conversation_rule.bot_inactivity_minutes``: bot-only chats end after this
  idle time; existing teams get the default of 30 minutes as new ones do.
"""

from __future__ import annotations


def up(migrator, db) -> None:  # noqa: ANN001 - peewee migrator protocol
    import peewee

    from meiqia.models.base import utcnow

    class Team(peewee.Model):
        class Meta:
            database = db
            table_name = "team"

    class Agent(peewee.Model):
        class Meta:
            database = db
            table_name = "agent"

    class AgentSocket(peewee.Model):
        """The table as this migration creates it (the model may change later)."""

        id = peewee.BigAutoField()
        agent = peewee.ForeignKeyField(Agent, backref="+", on_delete="CASCADE")
        team = peewee.ForeignKeyField(Team, backref="+", on_delete="CASCADE")
        alive_until = peewee.DateTimeField()
        opened_at = peewee.DateTimeField(default=utcnow)

        class Meta:
            database = db
            table_name = "agent_socket"
            indexes = ((("agent", "alive_until"), False), (("team", "alive_until"), False))

    db.create_tables([AgentSocket])
    # Plain ALTER TABLE ... ADD COLUMN with its default: both databases add a NOT
    # NULL column with a default in place (peewee's SQLite migrator would rebuild
    # the table, which SQLite refuses while other tables point at it).
    postgres = isinstance(db, peewee.PostgresqlDatabase)
    boolean = "BOOLEAN NOT NULL DEFAULT false" if postgres else "INTEGER NOT NULL DEFAULT 0"
    timestamp = "TIMESTAMP" if postgres else "DATETIME"
    for table, column, kind in (
            ("agent", "connected", boolean),
            ("conversation", "offered_at", f"{timestamp} NULL"),
            ("visitor", "language", "VARCHAR(8) NOT NULL DEFAULT ''"),
            ("conversation_rule", "bot_inactivity_minutes", "INTEGER NOT NULL DEFAULT 30")):
        db.execute_sql(f'ALTER TABLE "{table}" ADD COLUMN "{column}" {kind}')
