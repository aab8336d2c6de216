"""Channels through the public channel API (issue 16): six new tables.

``channel_config`` (a team's configuration of a channel, enabled or not),
``channel_state`` (``host.state`` of a channel), ``channel_visitor`` (external
user id -> visitor), ``channel_thread`` (a channel conversation's subject and
metadata), ``channel_external_id`` (inbound ids stored once; outbound ids for
threading) and ``channel_delivery`` (each outgoing message's delivery state).
New tables only: existing conversations stay on their channel (``web``).
"""

from __future__ import annotations


def up(migrator, db) -> None:  # noqa: ANN001 - peewee migrator protocol
    import peewee

    from meiqia.models.base import JSONField
    from meiqia.models.base import utcnow

    class _Base(peewee.Model):
        class Meta:
            database = db
            legacy_table_names = False

    class Team(_Base):
        class Meta:
            table_name = "team"

    class Visitor(_Base):
        class Meta:
            table_name = "visitor"

    class Conversation(_Base):
        class Meta:
            table_name = "conversation"

    class Message(_Base):
        id = peewee.BigAutoField()

        class Meta:
            table_name = "message"

    class ChannelConfig(_Base):
        team = peewee.ForeignKeyField(Team, backref="+", on_delete="CASCADE")
        channel = peewee.CharField(max_length=32)
        enabled = peewee.BooleanField(default=False)
        config = JSONField(default=dict)
        updated_at = peewee.DateTimeField(default=utcnow)

        class Meta:
            table_name = "channel_config"
            indexes = ((("team", "channel"), True),)

    class ChannelState(_Base):
        team = peewee.ForeignKeyField(Team, backref="+", on_delete="CASCADE")
        channel = peewee.CharField(max_length=32)
        key = peewee.CharField(max_length=200)
        value = JSONField(null=True)
        updated_at = peewee.DateTimeField(default=utcnow)

        class Meta:
            table_name = "channel_state"
            indexes = ((("team", "channel", "key"), True),)

    class ChannelVisitor(_Base):
        team = peewee.ForeignKeyField(Team, backref="+", on_delete="CASCADE")
        channel = peewee.CharField(max_length=32)
        external_user_id = peewee.CharField(max_length=255)
        visitor = peewee.ForeignKeyField(Visitor, backref="+", on_delete="CASCADE")
        created_at = peewee.DateTimeField(default=utcnow)

        class Meta:
            table_name = "channel_visitor"
            indexes = ((("team", "channel", "external_user_id"), True),)

    class ChannelThread(_Base):
        conversation = peewee.ForeignKeyField(Conversation, primary_key=True, backref="+",
                                              on_delete="CASCADE")
        team = peewee.ForeignKeyField(Team, backref="+", on_delete="CASCADE")
        channel = peewee.CharField(max_length=32)
        subject = peewee.TextField(null=True)
        metadata = JSONField(default=dict)
        last_inbound_at = peewee.DateTimeField(null=True)

        class Meta:
            table_name = "channel_thread"

    class ChannelExternalId(_Base):
        team = peewee.ForeignKeyField(Team, backref="+", on_delete="CASCADE")
        channel = peewee.CharField(max_length=32)
        external_id = peewee.CharField(max_length=500)
        conversation = peewee.ForeignKeyField(Conversation, backref="+", on_delete="CASCADE")
        message = peewee.ForeignKeyField(Message, null=True, backref="+", on_delete="CASCADE")
        direction = peewee.CharField(max_length=3, default="in")
        created_at = peewee.DateTimeField(default=utcnow)

        class Meta:
            table_name = "channel_external_id"
            indexes = ((("team", "channel", "external_id"), True),
                       (("conversation", "id"), False))

    class ChannelDelivery(_Base):
        message = peewee.ForeignKeyField(Message, unique=True, backref="+",
                                         on_delete="CASCADE")
        conversation = peewee.ForeignKeyField(Conversation, backref="+", on_delete="CASCADE")
        team = peewee.ForeignKeyField(Team, backref="+", on_delete="CASCADE")
        channel = peewee.CharField(max_length=32)
        status = peewee.CharField(max_length=10, default="pending")
        attempts = peewee.IntegerField(default=0)
        last_error = peewee.TextField(default="")
        next_attempt_at = peewee.DateTimeField(null=True)
        external_id = peewee.CharField(max_length=500, null=True)
        job_id = peewee.CharField(max_length=64, null=True)
        created_at = peewee.DateTimeField(default=utcnow)
        updated_at = peewee.DateTimeField(default=utcnow)

        class Meta:
            table_name = "channel_delivery"
            indexes = ((("conversation", "message"), False), (("team", "status"), False))

    db.create_tables([ChannelConfig, ChannelState, ChannelVisitor, ChannelThread,
                      ChannelExternalId, ChannelDelivery])
