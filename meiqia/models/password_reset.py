"""One-time links an admin makes for an agent who forgot his password (issue 17)."""

from __future__ import annotations

import peewee

from meiqia.models.accounts import Agent
from meiqia.models.base import BaseModel
from meiqia.models.base import utcnow


class PasswordReset(BaseModel):
    """A reset link: only the SHA-256 of its secret is stored.

    Usable once (``used_at``), until ``expires_at``; making a new link for the
    same agent revokes his older ones (``revoked_at``), so at most one works.
    """

    agent = peewee.ForeignKeyField(Agent, backref="+", on_delete="CASCADE")
    #: The admin who made it (null: made another way, or his account was deleted).
    created_by = peewee.ForeignKeyField(Agent, null=True, backref="+", on_delete="SET NULL")
    token_hash = peewee.CharField(max_length=64, unique=True)
    created_at = peewee.DateTimeField(default=utcnow)
    expires_at = peewee.DateTimeField()
    used_at = peewee.DateTimeField(null=True)
    revoked_at = peewee.DateTimeField(null=True)

    class Meta:
        table_name = "password_reset"
        indexes = ((("agent", "used_at"), False),)
