"""Channel deliveries get ``claimed_until``: the attempt in flight and how long
its claim holds.

Deliveries of one conversation now go out one at a time, in the order their
messages were written (``channels/outbound.py``); a delivery may then have
more than one job (its own, and the one its predecessor queues when it is
done), and the claim keeps two of them from sending it at once. Nothing to
carry over: no attempt is in flight during a migration.
"""

from __future__ import annotations


def up(migrator, db) -> None:  # noqa: ANN001 - peewee migrator protocol
    import peewee

    migrator.migrate(
        migrator.add_column("channel_delivery", "claimed_until",
                            peewee.DateTimeField(null=True)),
    )
