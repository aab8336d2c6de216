"""Messages of a conversation and the files attached to them."""

from __future__ import annotations

import peewee

from meiqia.models.accounts import Agent
from meiqia.models.accounts import Team
from meiqia.models.base import BaseModel
from meiqia.models.base import JSONField
from meiqia.models.base import utcnow
from meiqia.models.conversations import Conversation

SENDER_KINDS = ("visitor", "agent", "bot", "system")
VISIBILITIES = ("public", "internal")
KINDS = ("text", "image", "file", "rating_invite", "event")


class Message(BaseModel):
    id = peewee.BigAutoField()
    conversation = peewee.ForeignKeyField(
        Conversation, backref="messages", on_delete="CASCADE"
    )
    sender_kind = peewee.CharField(max_length=8)
    #: The agent the visitor sees as the sender (the handler for anonymous replies).
    shown_agent = peewee.ForeignKeyField(
        Agent, null=True, backref="+", on_delete="SET NULL"
    )
    #: The agent who really sent it (differs from shown_agent for anonymous replies).
    agent = peewee.ForeignKeyField(Agent, null=True, backref="+", on_delete="SET NULL")
    visibility = peewee.CharField(max_length=8, default="public")
    kind = peewee.CharField(max_length=16, default="text")
    body = peewee.TextField(default="")
    #: Kind-specific data: attachment ids, bot candidates, event details.
    payload = JSONField(default=dict)
    #: The sender's own id for the message: a resend is stored once.
    client_msg_id = peewee.CharField(max_length=64, null=True)
    #: The message's position in its conversation: 1, 2, 3 … with no gap, assigned
    #: under the conversation's row lock in the transaction that stores it, so seq
    #: order is commit order (meiqia/services/delivery.py; docs/protocol.md). Null
    #: only for rows written outside ``post_message`` (fixtures, imports).
    seq = peewee.BigIntegerField(null=True)
    created_at = peewee.DateTimeField(default=utcnow)
    delivered_at = peewee.DateTimeField(null=True)
    read_at = peewee.DateTimeField(null=True)

    class Meta:
        indexes = (
            (("conversation", "client_msg_id"), True),
            (("conversation", "id"), False),
            (("conversation", "seq"), True),
        )


class Attachment(BaseModel):
    """An uploaded file, stored under a random name in the instance folder."""

    team = peewee.ForeignKeyField(Team, backref="+", on_delete="CASCADE")
    conversation = peewee.ForeignKeyField(
        Conversation, null=True, backref="attachments", on_delete="CASCADE"
    )
    #: Random public id used in URLs and as the stored file name.
    key = peewee.CharField(max_length=40, unique=True)
    original_name = peewee.CharField(max_length=255)
    content_type = peewee.CharField(max_length=120)
    size = peewee.BigIntegerField()
    is_image = peewee.BooleanField(default=False)
    uploader_kind = peewee.CharField(max_length=8)
    uploader_id = peewee.IntegerField()
    created_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        # The hourly upload quotas (services/upload_quota.py, migration m0014): a
        # visitor's, and his team's visitors', uploads of the last hour.
        indexes = (
            (("uploader_kind", "uploader_id", "created_at"), False),
            (("team", "uploader_kind", "created_at"), False),
        )
