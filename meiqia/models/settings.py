"""Team-level configuration that is edited in the admin pages."""

from __future__ import annotations

import peewee

from meiqia.models.accounts import Agent
from meiqia.models.accounts import Team
from meiqia.models.base import BaseModel
from meiqia.models.base import JSONField
from meiqia.models.base import utcnow


class ConversationRule(BaseModel):
    """Grading thresholds and the inactivity rule of a team."""

    team = peewee.ForeignKeyField(Team, backref="+", on_delete="CASCADE", unique=True)
    #: [{"grade": "A", "min_messages": 20}, …], highest first.
    grades = JSONField(default=list)
    #: End open conversations after this many idle minutes; 0 = never.
    inactivity_minutes = peewee.IntegerField(default=0)
    #: End conversations that only the bot has served (status ``bot``) after this
    #: many idle minutes (or ``inactivity_minutes`` when shorter); 0 = follow
    #: ``inactivity_minutes``.
    bot_inactivity_minutes = peewee.IntegerField(default=30)
    updated_at = peewee.DateTimeField(default=utcnow)


class QuickReply(BaseModel):
    team = peewee.ForeignKeyField(Team, backref="quick_replies", on_delete="CASCADE")
    #: None: team-wide (admin-managed); else the agent's personal reply.
    owner = peewee.ForeignKeyField(Agent, null=True, backref="+", on_delete="CASCADE")
    keyword = peewee.CharField(max_length=40)
    title = peewee.CharField(max_length=120, default="")
    body = peewee.TextField()
    #: Groups replies in the admin list and the sidebar (e.g. 售后, 物流); may be empty.
    category = peewee.CharField(max_length=40, default="")
    created_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("team", "owner"), False),)


class IframePlugin(BaseModel):
    """An admin-configured iframe panel of the customer sidebar."""

    team = peewee.ForeignKeyField(Team, backref="+", on_delete="CASCADE")
    name = peewee.CharField(max_length=80)
    url = peewee.CharField(max_length=500)
    #: Secret that signs the token appended to the URL.
    secret = peewee.CharField(max_length=80)
    height = peewee.IntegerField(default=300)
    position = peewee.IntegerField(default=0)
    enabled = peewee.BooleanField(default=True)
    created_at = peewee.DateTimeField(default=utcnow)
