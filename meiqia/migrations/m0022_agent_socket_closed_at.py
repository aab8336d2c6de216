"""Agent sockets get ``closed_at``: when the workspace closed cleanly.

A closed socket's row stays alive for ``AGENT_AWAY_GRACE_SECONDS`` (60) so that
a reload is not an absence (his chats are not requeued); new chats, though,
go to it only for ``AGENT_ROUTING_GRACE_SECONDS`` (10) after the close: enough
for a reload, not a minute of visitors told "李客服 为您服务" by nobody.
Rows open during the migration are open (NULL).
"""

from __future__ import annotations


def up(migrator, db) -> None:  # noqa: ANN001 - peewee migrator protocol
    import peewee

    migrator.migrate(
        migrator.add_column("agent_socket", "closed_at", peewee.DateTimeField(null=True)),
    )
