"""Channels other than the widget (issue 16): per-team configuration, the
channels' own key/value state, who a visitor is on a channel, the conversation's
channel thread, external message ids and each outgoing message's delivery."""

from __future__ import annotations

import peewee

from meiqia.models.accounts import Team
from meiqia.models.base import BaseModel
from meiqia.models.base import JSONField
from meiqia.models.base import utcnow
from meiqia.models.conversations import Conversation
from meiqia.models.messages import Message
from meiqia.models.visitors import Visitor

DELIVERY_STATUSES = ("pending", "sent", "retrying", "failed")


class ChannelConfig(BaseModel):
    """A team's configuration of one channel (secrets included: never sent back)."""

    team = peewee.ForeignKeyField(Team, backref="+", on_delete="CASCADE")
    channel = peewee.CharField(max_length=32)
    enabled = peewee.BooleanField(default=False)
    config = JSONField(default=dict)
    updated_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "channel_config"
        indexes = ((("team", "channel"), True),)


class ChannelState(BaseModel):
    """``host.state``: a channel's small JSON values (tokens, cursors) per team."""

    team = peewee.ForeignKeyField(Team, backref="+", on_delete="CASCADE")
    channel = peewee.CharField(max_length=32)
    key = peewee.CharField(max_length=200)
    value = JSONField(null=True)
    updated_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "channel_state"
        indexes = ((("team", "channel", "key"), True),)


class ChannelVisitor(BaseModel):
    """The visitor behind an external user id (an e-mail address, an OpenID)."""

    team = peewee.ForeignKeyField(Team, backref="+", on_delete="CASCADE")
    channel = peewee.CharField(max_length=32)
    external_user_id = peewee.CharField(max_length=255)
    visitor = peewee.ForeignKeyField(Visitor, backref="+", on_delete="CASCADE")
    created_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "channel_visitor"
        indexes = ((("team", "channel", "external_user_id"), True),)


class ChannelThread(BaseModel):
    """What a channel said about a conversation it started: subject, metadata."""

    conversation = peewee.ForeignKeyField(Conversation, primary_key=True, backref="+",
                                          on_delete="CASCADE")
    team = peewee.ForeignKeyField(Team, backref="+", on_delete="CASCADE")
    channel = peewee.CharField(max_length=32)
    subject = peewee.TextField(null=True)
    metadata = JSONField(default=dict)
    last_inbound_at = peewee.DateTimeField(null=True)

    class Meta:
        table_name = "channel_thread"


class ChannelExternalId(BaseModel):
    """An external message id, stored once per (team, channel): inbound ids make
    a second delivery of the same message a duplicate; outbound ids (what the far
    side gave our reply) let a later inbound reply find its conversation."""

    team = peewee.ForeignKeyField(Team, backref="+", on_delete="CASCADE")
    channel = peewee.CharField(max_length=32)
    external_id = peewee.CharField(max_length=500)
    conversation = peewee.ForeignKeyField(Conversation, backref="+", on_delete="CASCADE")
    message = peewee.ForeignKeyField(Message, null=True, backref="+", on_delete="CASCADE")
    #: in or out
    direction = peewee.CharField(max_length=3, default="in")
    created_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "channel_external_id"
        indexes = ((("team", "channel", "external_id"), True),
                   (("conversation", "id"), False))


class ChannelDelivery(BaseModel):
    """One visitor-visible message on its way out through a channel's ``deliver``.

    Created in the transaction that stores the message, so no message of a
    channel conversation exists without its delivery (nothing is lost when the
    process dies before the job is queued: it stays ``pending`` and is shown).
    """

    message = peewee.ForeignKeyField(Message, unique=True, backref="+", on_delete="CASCADE")
    conversation = peewee.ForeignKeyField(Conversation, backref="+", on_delete="CASCADE")
    team = peewee.ForeignKeyField(Team, backref="+", on_delete="CASCADE")
    channel = peewee.CharField(max_length=32)
    #: pending, sent, retrying, failed
    status = peewee.CharField(max_length=10, default="pending")
    attempts = peewee.IntegerField(default=0)
    last_error = peewee.TextField(default="")
    next_attempt_at = peewee.DateTimeField(null=True)
    external_id = peewee.CharField(max_length=500, null=True)
    job_id = peewee.CharField(max_length=64, null=True)
    #: Set while an attempt is in flight, to when its claim lapses (a job that
    #: died mid-attempt): no second job sends the delivery meanwhile.
    claimed_until = peewee.DateTimeField(null=True)
    created_at = peewee.DateTimeField(default=utcnow)
    updated_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "channel_delivery"
        indexes = ((("conversation", "message"), False), (("team", "status"), False))
