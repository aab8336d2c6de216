"""Knowledge-base entries, questions the bot did not recognise, suggestion outcomes."""

from __future__ import annotations

import peewee

from meiqia.models.accounts import Agent
from meiqia.models.accounts import Team
from meiqia.models.base import BaseModel
from meiqia.models.base import JSONField
from meiqia.models.base import utcnow
from meiqia.models.conversations import Conversation


class KnowledgeEntry(BaseModel):
    team = peewee.ForeignKeyField(Team, backref="knowledge", on_delete="CASCADE")
    #: The entry id of the KB files (a slug such as ``refund-how``).
    key = peewee.CharField(max_length=80)
    #: The first is the standard question, the rest similar questions.
    questions = JSONField(default=list)
    answer = peewee.TextField()
    category = peewee.CharField(max_length=80, default="")
    tags = JSONField(default=list)
    enabled = peewee.BooleanField(default=True)
    created_at = peewee.DateTimeField(default=utcnow)
    updated_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("team", "key"), True),)


class KnowledgeChange(BaseModel):
    """One change to a team's knowledge base: the log every process's index follows.

    The id is the team's KB version. Writers take a per-team lock before adding
    a row (``services.knowledge``), so within a team ids are in commit order and
    a process that has applied everything up to id N can apply what came after
    N, entry by entry, instead of rebuilding its index.
    """

    id = peewee.BigAutoField()
    team = peewee.ForeignKeyField(Team, backref="+", on_delete="CASCADE")
    #: The entry's key (the id of the KB files); empty: "rebuild everything".
    entry_key = peewee.CharField(max_length=80, default="")
    #: ``edit`` (an entry added, changed or removed), ``import`` (too many to
    #: list) or ``reindex`` (a full rebuild was asked for).
    kind = peewee.CharField(max_length=16, default="edit")
    #: For ``reindex``: the version the rebuild read; an index built from that
    #: version or later already is what the reindex asked for.
    base = peewee.BigIntegerField(null=True)
    created_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("team", "id"), False),)


class UnrecognisedQuestion(BaseModel):
    team = peewee.ForeignKeyField(Team, backref="+", on_delete="CASCADE")
    conversation = peewee.ForeignKeyField(
        Conversation, null=True, backref="+", on_delete="SET NULL"
    )
    message_id = peewee.BigIntegerField(null=True)
    question = peewee.TextField()
    #: Set when an admin turns the question's group into an entry.
    resolved_entry = peewee.ForeignKeyField(
        KnowledgeEntry, null=True, backref="+", on_delete="SET NULL"
    )
    created_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("team", "created_at"), False),)


class SuggestionLog(BaseModel):
    """What an agent did with a bot suggestion: accepted, edited or ignored."""

    team = peewee.ForeignKeyField(Team, backref="+", on_delete="CASCADE")
    conversation = peewee.ForeignKeyField(
        Conversation, backref="+", on_delete="CASCADE"
    )
    message_id = peewee.BigIntegerField()
    entry_key = peewee.CharField(max_length=80)
    score = peewee.FloatField()
    #: The words the agent was shown (a plugin's suggestion is in no table): a
    #: workspace opened later shows them again (``bot.last_suggestions``).
    question = peewee.TextField(default="")
    answer = peewee.TextField(default="")
    agent = peewee.ForeignKeyField(Agent, null=True, backref="+", on_delete="SET NULL")
    outcome = peewee.CharField(max_length=16, default="ignored")
    created_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("team", "entry_key"), False), (("team", "created_at"), False))
