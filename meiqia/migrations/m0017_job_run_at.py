"""Job records get the time their next attempt is due (``run_at``).

A retry used to wait on an in-memory timer (embedded) or only in Redis (rq): a
restart or a Redis outage lost it. With the time recorded, the embedded queue
resumes its waiting retries on start and the rq recovery sweep re-queues those
Redis lost (meiqia/jobs.py).
"""

from __future__ import annotations


def up(migrator, db) -> None:  # noqa: ANN001 - peewee migrator protocol
    import peewee

    migrator.migrate(
        migrator.add_column("job_record", "run_at", peewee.DateTimeField(null=True)),
    )
