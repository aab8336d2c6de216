"""Conversations, from the first visitor contact to the end, and @mentions."""

from __future__ import annotations

import peewee

from meiqia.models.accounts import Agent
from meiqia.models.accounts import Group
from meiqia.models.accounts import Team
from meiqia.models.base import BaseModel
from meiqia.models.base import JSONField
from meiqia.models.base import utcnow
from meiqia.models.visitors import Visit
from meiqia.models.visitors import Visitor

STATUSES = ("bot", "queued", "open", "ended")
ACTIVE_STATUSES = ("bot", "queued", "open")
RATINGS = ("good", "neutral", "bad")


class Conversation(BaseModel):
    team = peewee.ForeignKeyField(Team, backref="conversations", on_delete="CASCADE")
    visitor = peewee.ForeignKeyField(
        Visitor, backref="conversations", on_delete="CASCADE"
    )
    visit = peewee.ForeignKeyField(Visit, null=True, backref="+", on_delete="SET NULL")
    channel = peewee.CharField(max_length=32, default="web")
    status = peewee.CharField(max_length=16, default="bot")
    handler = peewee.ForeignKeyField(
        Agent, null=True, backref="handled", on_delete="SET NULL"
    )
    group = peewee.ForeignKeyField(Group, null=True, backref="+", on_delete="SET NULL")
    created_at = peewee.DateTimeField(default=utcnow)
    queued_at = peewee.DateTimeField(null=True)
    assigned_at = peewee.DateTimeField(null=True)
    ended_at = peewee.DateTimeField(null=True)
    ended_by = peewee.ForeignKeyField(
        Agent, null=True, backref="+", on_delete="SET NULL"
    )
    #: agent, inactivity or system
    end_reason = peewee.CharField(max_length=16, default="")
    rating = peewee.CharField(max_length=8, null=True)
    rating_comment = peewee.TextField(default="")
    #: 小结: written by agents, usually after the end.
    summary = peewee.TextField(default="")
    tags = JSONField(default=list)
    #: When a queued visitor was last offered to leave a message because nobody
    #: was left to take his chat (at most one offer per conversation at a time).
    offered_at = peewee.DateTimeField(null=True)
    #: Unrecognised bot answers in a row (reset by a recognised one).
    bot_failures = peewee.IntegerField(default=0)
    last_message_id = peewee.BigIntegerField(default=0)
    #: The ``seq`` of the conversation's newest message (0: none yet). Bumped by the
    #: UPDATE that locks the row for the next message (meiqia/services/delivery.py).
    last_seq = peewee.BigIntegerField(default=0)
    last_message_at = peewee.DateTimeField(null=True)
    #: Highest message id the handler has read (for unread counts).
    agent_read_id = peewee.BigIntegerField(default=0)
    #: Highest message id the visitor has read.
    visitor_read_id = peewee.BigIntegerField(default=0)

    # Figures of DESIGN §8, computed once when the conversation ends.
    visitor_message_count = peewee.IntegerField(default=0)
    agent_message_count = peewee.IntegerField(default=0)
    bot_message_count = peewee.IntegerField(default=0)
    is_lead = peewee.BooleanField(default=False)
    lead_details = peewee.TextField(default="")
    is_invalid = peewee.BooleanField(default=False)
    is_missed = peewee.BooleanField(default=False)
    bot_resolved = peewee.BooleanField(default=False)
    first_manual_at = peewee.DateTimeField(null=True)
    last_manual_at = peewee.DateTimeField(null=True)
    duration_s = peewee.IntegerField(null=True)
    first_response_s = peewee.IntegerField(null=True)
    grade = peewee.CharField(max_length=16, default="")

    class Meta:
        indexes = (
            (("team", "status", "queued_at"), False),
            (("handler", "status"), False),
            (("team", "ended_at"), False),
            (("handler", "ended_at"), False),
            (("visitor", "created_at"), False),
            (("team", "created_at"), False),
            # History and dashboard (migration m0007; docs/history.md says why): the
            # (team, status, ended_at, id) order of the history pages, then the scope,
            # the customer and visit links and every figure, so the dashboard
            # aggregates and the history counts read this index alone, never the rows.
            (("team", "status", "ended_at", "id", "handler", "group", "visitor", "visit",
              "rating", "is_missed", "is_invalid", "is_lead", "bot_resolved",
              "first_response_s", "duration_s", "grade"), False),
        )


class Mention(BaseModel):
    """An agent @-mentioned in an internal note; listed under @me until seen."""

    conversation = peewee.ForeignKeyField(
        Conversation, backref="mentions", on_delete="CASCADE"
    )
    message_id = peewee.BigIntegerField()
    agent = peewee.ForeignKeyField(Agent, backref="mentions", on_delete="CASCADE")
    by_agent = peewee.ForeignKeyField(Agent, backref="+", on_delete="CASCADE")
    created_at = peewee.DateTimeField(default=utcnow)
    seen_at = peewee.DateTimeField(null=True)

    class Meta:
        indexes = ((("agent", "seen_at"), False),)
