"""Quick replies get a category (售后, 物流…) so the admin list can be grouped.

Existing replies keep an empty category.
"""

from __future__ import annotations


def up(migrator, db) -> None:  # noqa: ANN001 - peewee migrator protocol
    import peewee

    migrator.migrate(
        migrator.add_column("quick_reply", "category", peewee.CharField(max_length=40, default=""))
    )
