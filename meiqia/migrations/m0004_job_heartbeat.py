"""Job records get a heartbeat and the call they run, so an abandoned job is seen.

A worker killed mid-job (SIGKILL, OOM, a host gone) never writes "failed": its
record said "started" forever. With a heartbeat the status API sees the silence
and retries the job (from ``call``) or marks it failed.
"""

from __future__ import annotations


def up(migrator, db) -> None:  # noqa: ANN001 - peewee migrator protocol
    import peewee

    from meiqia.models.base import JSONField

    migrator.migrate(
        migrator.add_column("job_record", "heartbeat_at", peewee.DateTimeField(null=True)),
        migrator.add_column("job_record", "call", JSONField(null=True)),
    )
