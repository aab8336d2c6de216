"""The plugin runtime's state (``plugin_state``): admins' switches and the breaker.

New table only; every plugin starts enabled and closed (no rows).
"""

from __future__ import annotations


def up(migrator, db) -> None:  # noqa: ANN001 - peewee migrator protocol
    import peewee

    from meiqia.models.base import JSONField
    from meiqia.models.base import utcnow

    class PluginState(peewee.Model):
        """The table as this migration creates it (the model may change later)."""

        plugin = peewee.CharField(max_length=200)
        team_id = peewee.IntegerField(default=0)
        disabled = peewee.BooleanField(default=False)
        suspended_until = peewee.DateTimeField(null=True)
        trips = peewee.IntegerField(default=0)
        recent_errors = JSONField(default=list)
        updated_at = peewee.DateTimeField(default=utcnow)

        class Meta:
            database = db
            table_name = "plugin_state"
            indexes = ((("plugin", "team_id"), True),)

    db.create_tables([PluginState])
