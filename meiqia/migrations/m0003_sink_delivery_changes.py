"""Ticket-sink deliveries keep the changes they carry, so a retry sends the same thing.

Before, the changes travelled only as a job argument and a retry by hand sent none.
"""

from __future__ import annotations


def up(migrator, db) -> None:  # noqa: ANN001 - peewee migrator protocol
    from meiqia.models.base import JSONField

    migrator.migrate(
        migrator.add_column("sink_delivery", "changes", JSONField(default=dict))
    )
