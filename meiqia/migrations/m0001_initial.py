"""The first schema: every table of meiqia 0.1 (created from the models)."""

from __future__ import annotations


def up(migrator, db) -> None:  # noqa: ANN001 - peewee migrator protocol
    # A database older than this migration does not exist: meiqia 0.1 starts here.
    # New databases are created from the models by the runner, so nothing to do.
    return None
