"""Audit trail of administrative actions (who changed what, from where)."""

from __future__ import annotations

import peewee

from meiqia.models.accounts import Agent
from meiqia.models.accounts import Team
from meiqia.models.base import BaseModel
from meiqia.models.base import JSONField
from meiqia.models.base import utcnow


class AuditLog(BaseModel):
    team = peewee.ForeignKeyField(Team, null=True, backref="+", on_delete="CASCADE")
    actor = peewee.ForeignKeyField(Agent, null=True, backref="+", on_delete="SET NULL")
    action = peewee.CharField(max_length=64)
    target_type = peewee.CharField(max_length=32, default="")
    target_id = peewee.CharField(max_length=64, default="")
    details = JSONField(default=dict)
    ip = peewee.CharField(max_length=45, default="")
    created_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("team", "created_at"), False),)
