"""History exports get ``scope``: what the requester could see when the rows were
read (``services/exports.scope_print``).

A file made under a wider scope was still downloaded after an admin narrowed the
agent's scope (found from outside): the download checked the owner only. The
download now compares the recorded scope with his current one (docs/security.md
§12). Exports made before this migration have none (NULL): only those who see the
whole team may still download them.
"""

from __future__ import annotations


def up(migrator, db) -> None:  # noqa: ANN001 - peewee migrator protocol
    from meiqia.models.base import JSONField

    migrator.migrate(
        migrator.add_column("export_job", "scope", JSONField(null=True)),
    )
