"""Tickets (留言), their comments and change history, and ticket-sink deliveries."""

from __future__ import annotations

import peewee

from meiqia.models.accounts import Agent
from meiqia.models.accounts import Group
from meiqia.models.accounts import Team
from meiqia.models.base import BaseModel
from meiqia.models.base import JSONField
from meiqia.models.base import utcnow
from meiqia.models.conversations import Conversation
from meiqia.models.visitors import Visitor

STATUSES = ("open", "pending", "solved", "closed")
PRIORITIES = ("low", "normal", "high", "urgent")
#: How a ticket was born (the six scenarios of the ticket issue).
SOURCES = (
    "no_agent_online",
    "all_busy",
    "after_end",
    "bot_unrecognised",
    "queue_leave",
    "agent_created",
)


class Ticket(BaseModel):
    team = peewee.ForeignKeyField(Team, backref="tickets", on_delete="CASCADE")
    visitor = peewee.ForeignKeyField(
        Visitor, null=True, backref="tickets", on_delete="SET NULL"
    )
    conversation = peewee.ForeignKeyField(
        Conversation, null=True, backref="tickets", on_delete="SET NULL"
    )
    source = peewee.CharField(max_length=24)
    status = peewee.CharField(max_length=16, default="open")
    priority = peewee.CharField(max_length=16, default="normal")
    assignee = peewee.ForeignKeyField(
        Agent, null=True, backref="tickets", on_delete="SET NULL"
    )
    group = peewee.ForeignKeyField(Group, null=True, backref="+", on_delete="SET NULL")
    tags = JSONField(default=list)
    contact_name = peewee.CharField(max_length=120, default="")
    contact_phone = peewee.CharField(max_length=40, default="")
    contact_email = peewee.CharField(max_length=254, default="")
    subject = peewee.CharField(max_length=200, default="")
    content = peewee.TextField()
    attachments = JSONField(default=list)
    created_by = peewee.ForeignKeyField(
        Agent, null=True, backref="+", on_delete="SET NULL"
    )
    created_at = peewee.DateTimeField(default=utcnow)
    updated_at = peewee.DateTimeField(default=utcnow)
    #: The newest public reply the visitor has seen in the widget (0: none); later
    #: replies are flagged unread when he comes back.
    visitor_seen_reply_id = peewee.IntegerField(default=0)

    class Meta:
        indexes = (
            (("team", "status", "created_at"), False),
            (("assignee", "status"), False),
            (("visitor", "created_at"), False),
        )


class TicketComment(BaseModel):
    ticket = peewee.ForeignKeyField(Ticket, backref="comments", on_delete="CASCADE")
    author = peewee.ForeignKeyField(Agent, null=True, backref="+", on_delete="SET NULL")
    #: agent, visitor or system
    author_kind = peewee.CharField(max_length=8, default="agent")
    #: internal (team only) or public (a reply to the customer)
    visibility = peewee.CharField(max_length=8, default="internal")
    body = peewee.TextField()
    #: How a public reply reached the customer: widget, email, or "" (pending).
    delivered_via = peewee.CharField(max_length=16, default="")
    created_at = peewee.DateTimeField(default=utcnow)


class TicketEvent(BaseModel):
    """One change of a ticket: who changed what from what to what, and when."""

    ticket = peewee.ForeignKeyField(Ticket, backref="events", on_delete="CASCADE")
    actor = peewee.ForeignKeyField(Agent, null=True, backref="+", on_delete="SET NULL")
    actor_kind = peewee.CharField(max_length=8, default="agent")
    field = peewee.CharField(max_length=32)
    old_value = peewee.TextField(default="")
    new_value = peewee.TextField(default="")
    created_at = peewee.DateTimeField(default=utcnow)


class TicketSink(BaseModel):
    """An admin-configured instance of a ticket sink plugin (webhook, email, …)."""

    team = peewee.ForeignKeyField(Team, backref="ticket_sinks", on_delete="CASCADE")
    type = peewee.CharField(max_length=40)
    name = peewee.CharField(max_length=80)
    config = JSONField(default=dict)
    enabled = peewee.BooleanField(default=True)
    created_at = peewee.DateTimeField(default=utcnow)


class SinkDelivery(BaseModel):
    sink = peewee.ForeignKeyField(TicketSink, backref="deliveries", on_delete="CASCADE")
    ticket = peewee.ForeignKeyField(Ticket, backref="deliveries", on_delete="CASCADE")
    #: created or updated
    event = peewee.CharField(max_length=16)
    #: What changed (field → [old, new]); kept so a retry sends the same thing.
    changes = JSONField(default=dict)
    #: pending, delivered or failed
    status = peewee.CharField(max_length=16, default="pending")
    attempts = peewee.IntegerField(default=0)
    last_error = peewee.TextField(default="")
    job_id = peewee.CharField(max_length=64, default="")
    created_at = peewee.DateTimeField(default=utcnow)
    updated_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("status", "created_at"), False),)
