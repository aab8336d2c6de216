"""History exports and the background jobs that build them."""

from __future__ import annotations

import peewee

from meiqia.models.accounts import Agent
from meiqia.models.accounts import Team
from meiqia.models.base import BaseModel
from meiqia.models.base import JSONField
from meiqia.models.base import utcnow


class JobRecord(BaseModel):
    """State of one background job, the same in embedded and rq mode.

    The UI reads progress from here, never from the queue backend.
    """

    id = peewee.CharField(primary_key=True, max_length=64)
    name = peewee.CharField(max_length=200)
    #: Who may read the job's state (None: system jobs, admins only).
    team_id = peewee.IntegerField(null=True)
    requested_by = peewee.IntegerField(null=True)
    #: queued, started, finished or failed
    status = peewee.CharField(max_length=16, default="queued")
    progress = peewee.FloatField(default=0.0)
    message = peewee.TextField(default="")
    result = JSONField(null=True)
    error = peewee.TextField(default="")
    attempts = peewee.IntegerField(default=0)
    max_attempts = peewee.IntegerField(default=1)
    created_at = peewee.DateTimeField(default=utcnow)
    started_at = peewee.DateTimeField(null=True)
    finished_at = peewee.DateTimeField(null=True)
    #: Last sign of life of the attempt running now; a started job whose
    #: heartbeat stopped lost its worker (killed, crashed) and is reaped.
    heartbeat_at = peewee.DateTimeField(null=True)
    #: ``{"path", "args", "kwargs", "retry"}``: what to run again after a reap.
    call = JSONField(null=True)
    #: When a queued job's next attempt is due (None: at once). Recorded so a
    #: retry survives a restart or a Redis outage (``jobs.resume``, ``jobs.recover``).
    run_at = peewee.DateTimeField(null=True)

    class Meta:
        indexes = ((("status", "created_at"), False),)


class ExportJob(BaseModel):
    team = peewee.ForeignKeyField(Team, backref="+", on_delete="CASCADE")
    requested_by = peewee.ForeignKeyField(Agent, backref="+", on_delete="CASCADE")
    filters = JSONField(default=dict)
    with_content = peewee.BooleanField(default=False)
    #: csv or xlsx
    format = peewee.CharField(max_length=8, default="csv")
    #: queued, running, done or failed
    status = peewee.CharField(max_length=16, default="queued")
    total = peewee.IntegerField(default=0)
    done = peewee.IntegerField(default=0)
    file_name = peewee.CharField(max_length=200, default="")
    size = peewee.BigIntegerField(default=0)
    error = peewee.TextField(default="")
    job_id = peewee.CharField(max_length=64, default="")
    created_at = peewee.DateTimeField(default=utcnow)
    finished_at = peewee.DateTimeField(null=True)
    #: What the requester could see when the rows were read (``exports.scope_print``:
    #: ``{"agents", "groups"}``, id lists or None for all); the file is refused to him
    #: once his scope no longer covers it (docs/security.md §12). None: made before
    #: m0023, refused to anyone who does not see the whole team.
    scope = JSONField(null=True)
