"""Teams, groups, agents, their permission scopes and API tokens."""

from __future__ import annotations

import peewee

from meiqia.models.base import BaseModel
from meiqia.models.base import JSONField
from meiqia.models.base import utcnow

ROLES = ("admin", "agent")
#: Whose conversations and figures an agent sees: only his own, those of the groups
#: he belongs to, everyone's, or an explicit list of agents and groups (custom).
SCOPES = ("self", "groups", "all", "custom")
STATUSES = ("online", "invisible", "offline")
#: What an API token may do (``meiqia.web.api.token_allows``): ``read`` only reads,
#: ``conversations`` also does an agent's daily work (conversations, messages,
#: tickets, visitors, uploads, quick replies, exports), ``admin`` everything the
#: agent himself may do. No token manages tokens, sessions, passwords or emails.
TOKEN_SCOPES = ("read", "conversations", "admin")


class Team(BaseModel):
    name = peewee.CharField(max_length=120)
    timezone = peewee.CharField(max_length=64, default="Asia/Shanghai")
    language = peewee.CharField(max_length=8, default="zh-CN")
    #: Bot thresholds, queue and ticket-form options; defaults live in
    #: ``meiqia.services.settings`` so new keys need no migration.
    settings = JSONField(default=dict)
    created_at = peewee.DateTimeField(default=utcnow)


class Group(BaseModel):
    team = peewee.ForeignKeyField(Team, backref="groups", on_delete="CASCADE")
    name = peewee.CharField(max_length=80)
    created_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("team", "name"), True),)


class Agent(BaseModel):
    team = peewee.ForeignKeyField(Team, backref="agents", on_delete="CASCADE")
    email = peewee.CharField(max_length=254, unique=True)
    #: Real name: what colleagues and the history show.
    name = peewee.CharField(max_length=80)
    #: Name shown to visitors (defaults to the real name).
    nickname = peewee.CharField(max_length=80, default="")
    password_hash = peewee.CharField(max_length=255)
    role = peewee.CharField(max_length=16, default="agent")
    scope = peewee.CharField(max_length=16, default="self")
    #: 接待上限: concurrent conversations routing may give him; 0 = none automatically.
    max_concurrent = peewee.IntegerField(default=5)
    status = peewee.CharField(max_length=16, default="offline")
    active = peewee.BooleanField(default=True)
    #: Personal UI preferences (history columns, language, notification sound).
    preferences = JSONField(default=dict)
    #: Unused since issue 15 (no per-account lockout: ``services/login_throttle``);
    #: kept so older code reading them during a rolling upgrade does not fail.
    failed_logins = peewee.IntegerField(default=0)
    locked_until = peewee.DateTimeField(null=True)
    #: Round-robin tie-break for routing: when he last received a conversation.
    last_assigned_at = peewee.DateTimeField(null=True)
    last_seen_at = peewee.DateTimeField(null=True)
    #: Whether presence last counted him as connected (a live workspace socket).
    #: Only the transitions use it (each told once, across processes); routing
    #: asks ``AgentSocket`` itself (``services/presence.py``).
    connected = peewee.BooleanField(default=False)
    created_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("team", "status"), False),)

    @property
    def display_name(self) -> str:
        return self.nickname or self.name

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


class AgentSocket(BaseModel):
    """One open workspace socket of an agent, wherever its process runs.

    The socket's process refreshes ``alive_until`` with each sign of life; a
    clean close leaves the grace period; a process killed -9 leaves its rows
    to expire. Routing counts an agent as connected while one of his rows is
    alive (``services/presence.py``).
    """

    id = peewee.BigAutoField()
    agent = peewee.ForeignKeyField(Agent, backref="+", on_delete="CASCADE")
    team = peewee.ForeignKeyField(Team, backref="+", on_delete="CASCADE")
    alive_until = peewee.DateTimeField()
    opened_at = peewee.DateTimeField(default=utcnow)
    #: Set by a clean close: new chats reach the row only for
    #: ``AGENT_ROUTING_GRACE_SECONDS`` after it (``capacity.seats``).
    closed_at = peewee.DateTimeField(null=True)

    class Meta:
        table_name = "agent_socket"
        indexes = ((("agent", "alive_until"), False), (("team", "alive_until"), False))


class AgentGroup(BaseModel):
    agent = peewee.ForeignKeyField(Agent, backref="memberships", on_delete="CASCADE")
    group = peewee.ForeignKeyField(Group, backref="memberships", on_delete="CASCADE")

    class Meta:
        indexes = ((("agent", "group"), True),)


class ScopeGrant(BaseModel):
    """One agent or group in an agent's ``custom`` permission scope."""

    agent = peewee.ForeignKeyField(Agent, backref="scope_grants", on_delete="CASCADE")
    target_agent = peewee.ForeignKeyField(
        Agent, null=True, backref="+", on_delete="CASCADE"
    )
    target_group = peewee.ForeignKeyField(
        Group, null=True, backref="+", on_delete="CASCADE"
    )


class ApiToken(BaseModel):
    """A bearer token for integrations; only its SHA-256 is stored."""

    agent = peewee.ForeignKeyField(Agent, backref="api_tokens", on_delete="CASCADE")
    name = peewee.CharField(max_length=80)
    token_hash = peewee.CharField(max_length=64, unique=True)
    #: First characters of the token, to recognise it in lists.
    prefix = peewee.CharField(max_length=16)
    created_at = peewee.DateTimeField(default=utcnow)
    last_used_at = peewee.DateTimeField(null=True)
    revoked_at = peewee.DateTimeField(null=True)
    #: One of TOKEN_SCOPES (tokens made before m0011 keep their old power: admin).
    scope = peewee.CharField(max_length=16, default="read")
    #: After this (UTC) the token no longer authenticates; null: no expiry.
    expires_at = peewee.DateTimeField(null=True)


class AgentSession(BaseModel):
    """A signed-in browser, named by a random id in the session cookie.

    Only the SHA-256 of the id is stored. Every cookie request looks its row up,
    so ending a session (log out, password change, deactivation, "sign out
    everywhere") takes effect on the next request in every process.
    """

    agent = peewee.ForeignKeyField(Agent, backref="sessions", on_delete="CASCADE")
    key_hash = peewee.CharField(max_length=64, unique=True)
    created_at = peewee.DateTimeField(default=utcnow)
    last_seen_at = peewee.DateTimeField(default=utcnow)
    ended_at = peewee.DateTimeField(null=True)
    ip = peewee.CharField(max_length=64, default="")
    user_agent = peewee.CharField(max_length=255, default="")

    class Meta:
        indexes = ((("agent", "ended_at"), False),)
