"""Visitors' presence: offline is ``online_until`` NULL, and it is indexed.

The presence sweep now tells agents when a visitor's socket went silent (no
ping for ``presence.ONLINE_SECONDS``), which it finds by ``online_until`` in
the past: an index keeps that a small read on a large visitor table, and the
visitors offline already are set to NULL here, so the first sweep after the
upgrade does not announce each of them as gone.
"""

from __future__ import annotations


def up(migrator, db) -> None:  # noqa: ANN001 - peewee migrator protocol
    import datetime

    now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
    db.execute_sql(f"UPDATE visitor SET online_until = NULL WHERE online_until < {db.param}",
                   (now,))
    migrator.migrate(migrator.add_index("visitor", ("online_until",), False))
