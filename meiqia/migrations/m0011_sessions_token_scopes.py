"""Server-side agent sessions, API token scopes and expiry (issue 15, items 3 and 8).

Sessions: the cookie used to carry the agent id and a fragment of the password
hash, and could not be ended on the server. Now it names a row of
``agent_session``; cookies issued before this migration name none, so every
agent signs in once more after the upgrade.

Tokens: existing tokens could do everything their agent could; they keep that
power as scope ``admin`` (an admin narrows or revokes them), new ones default to
``read``.
"""

from __future__ import annotations


def up(migrator, db) -> None:  # noqa: ANN001 - peewee migrator protocol
    import peewee

    from meiqia.models import AgentSession

    migrator.migrate(
        migrator.add_column("api_token", "scope", peewee.CharField(max_length=16, default="admin")),
        migrator.add_column("api_token", "expires_at", peewee.DateTimeField(null=True)),
    )
    AgentSession.create_table(safe=True)
