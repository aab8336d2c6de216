"""What a plugin receives: stable, read-only views of conversations, messages,
visitors and agents.

Hooks never hand a plugin meiqia's database rows. Columns are added, renamed
and split between releases; a plugin written against them would break with
each one, and a plugin could write to a row by accident. Instead every hook
argument that is a conversation, a message, a visitor or an agent is one of
the frozen dataclasses below, made when the hook is called
(``PluginManager`` does it for every run-time hook, ``services/bot`` for
answerers). Their fields are the public surface documented in docs/plugins.md
("What a plugin receives"): a field is only ever added, never renamed or
removed within a major version.

``to_plugin(value)`` converts one value (rows, lists of rows; anything else is
returned as it is); ``hook_arguments(kwargs)`` converts a hook's keyword
arguments.
"""

from __future__ import annotations

import datetime
import functools
from collections.abc import Iterator
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from dataclasses import fields
from types import MappingProxyType
from typing import Any

__all__ = ["PluginAgent", "PluginConversation", "PluginMessage", "PluginVisitor",
           "hook_arguments", "probe_conversation", "to_plugin"]


def _frozen_mapping(value: Any) -> Mapping[str, Any]:
    return MappingProxyType(dict(value or {}))


@dataclass(frozen=True)
class PluginVisitor:
    """A customer: who the visitor said he is, and what agents noted on his card."""

    id: int
    team_id: int
    name: str = ""
    phone: str = ""
    email: str = ""
    company: str = ""
    address: str = ""
    note: str = ""
    tags: tuple[str, ...] = ()
    attributes: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    #: The widget's language (``zh-CN``, ``en``) or "".
    language: str = ""
    created_at: datetime.datetime | None = None

    @classmethod
    def from_row(cls, row: Any) -> PluginVisitor:
        return cls(id=row.id, team_id=row.team_id, name=row.name or "", phone=row.phone or "",
                   email=row.email or "", company=row.company or "",
                   address=row.address or "", note=row.note or "",
                   tags=tuple(row.tags or ()), attributes=_frozen_mapping(row.attributes),
                   language=row.language or "", created_at=row.created_at)


@dataclass(frozen=True)
class PluginAgent:
    """An agent (a person of the team), without anything secret about him."""

    id: int
    team_id: int
    name: str
    nickname: str = ""
    email: str = ""
    #: ``admin`` or ``agent``.
    role: str = "agent"
    #: ``online``, ``invisible`` or ``offline`` (what he set).
    status: str = "offline"
    #: Conversations he may hold at once.
    max_concurrent: int = 0
    last_assigned_at: datetime.datetime | None = None

    @property
    def display_name(self) -> str:
        """What visitors see: the nickname, else the name."""
        return self.nickname or self.name

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @classmethod
    def from_row(cls, row: Any) -> PluginAgent:
        return cls(id=row.id, team_id=row.team_id, name=row.name, nickname=row.nickname or "",
                   email=row.email or "", role=row.role, status=row.status,
                   max_concurrent=row.max_concurrent, last_assigned_at=row.last_assigned_at)


@dataclass(frozen=True)
class PluginConversation:
    """A conversation as it stood when the hook was called."""

    #: None for the stand-in of ``meiqia bot ask``/``bot eval`` and the bot console.
    id: int | None
    team_id: int | None
    visitor_id: int | None = None
    #: ``web`` for the widget, else the channel's slug.
    channel: str = "web"
    #: ``bot``, ``queued``, ``open`` or ``ended``.
    status: str = "bot"
    #: The agent handling it (an id), or None.
    handler_id: int | None = None
    group_id: int | None = None
    tags: tuple[str, ...] = ()
    created_at: datetime.datetime | None = None
    queued_at: datetime.datetime | None = None
    assigned_at: datetime.datetime | None = None
    ended_at: datetime.datetime | None = None
    last_message_at: datetime.datetime | None = None

    @functools.cached_property
    def visitor(self) -> PluginVisitor | None:
        """The conversation's visitor (read from the database on first use)."""
        if self.visitor_id is None:
            return None
        from meiqia.models import Visitor

        row = Visitor.get_or_none(Visitor.id == self.visitor_id)
        return None if row is None else PluginVisitor.from_row(row)

    @classmethod
    def from_row(cls, row: Any) -> PluginConversation:
        return cls(id=row.id, team_id=row.team_id, visitor_id=row.visitor_id,
                   channel=row.channel, status=row.status, handler_id=row.handler_id,
                   group_id=row.group_id, tags=tuple(row.tags or ()),
                   created_at=row.created_at, queued_at=row.queued_at,
                   assigned_at=row.assigned_at, ended_at=row.ended_at,
                   last_message_at=row.last_message_at)


def probe_conversation(team_id: int | None) -> PluginConversation:
    """The stand-in answerers get when nobody is chatting: the bot console,
    ``meiqia bot ask`` and ``meiqia bot eval``. Its ``id`` is None."""
    return PluginConversation(id=None, team_id=team_id, channel="probe", status="bot")


@dataclass(frozen=True)
class PluginMessage(Mapping):
    """A message: stored (``id`` set) or about to be (``before_message_saved``).

    It is also a read-only mapping of ``sender_kind``, ``kind``, ``body``,
    ``payload`` and ``visibility`` (``message["body"]``), as the hook's message
    always was."""

    sender_kind: str
    kind: str
    body: str
    payload: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    #: ``public`` or ``internal`` (an agents' note, never shown to the visitor).
    visibility: str = "public"
    #: None before it is stored.
    id: int | None = None
    conversation_id: int | None = None
    #: The agent who wrote it (agent messages), else None.
    agent_id: int | None = None
    created_at: datetime.datetime | None = None

    _KEYS = ("sender_kind", "kind", "body", "payload", "visibility")

    def __getitem__(self, key: str) -> Any:
        if key not in self._KEYS:
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._KEYS)

    def __len__(self) -> int:
        return len(self._KEYS)

    @classmethod
    def from_draft(cls, draft: Mapping[str, Any],
                   conversation_id: int | None = None) -> PluginMessage:
        return cls(sender_kind=draft["sender_kind"], kind=draft["kind"], body=draft["body"],
                   payload=_frozen_mapping(draft.get("payload")),
                   visibility=draft.get("visibility", "public"),
                   conversation_id=conversation_id)

    @classmethod
    def from_row(cls, row: Any) -> PluginMessage:
        return cls(sender_kind=row.sender_kind, kind=row.kind, body=row.body,
                   payload=_frozen_mapping(row.payload), visibility=row.visibility, id=row.id,
                   conversation_id=row.conversation_id, agent_id=row.agent_id,
                   created_at=row.created_at)


PLUGIN_TYPES = (PluginVisitor, PluginAgent, PluginConversation, PluginMessage)


def to_plugin(value: Any) -> Any:
    """``value`` as a plugin may see it: a row becomes its Plugin* view, a list
    of rows a list of views; a Plugin* object, a dict or anything else stays."""
    if value is None or isinstance(value, (*PLUGIN_TYPES, str, int, float, dict)):
        return value
    if isinstance(value, list | tuple):
        return [to_plugin(item) for item in value]
    from meiqia.models import Agent
    from meiqia.models import Conversation
    from meiqia.models import Message
    from meiqia.models import Visitor

    for model, view in ((Conversation, PluginConversation), (Visitor, PluginVisitor),
                        (Agent, PluginAgent), (Message, PluginMessage)):
        if isinstance(value, model):
            return view.from_row(value)
    return value


#: Hook arguments that are converted; the others (``request``, ``event``,
#: ``app``, ``cli``) are passed as they are.
CONVERTED = frozenset({"conversation", "visitor", "actor", "candidates", "agent"})


def hook_arguments(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """A hook's keyword arguments with rows replaced by their Plugin* views."""
    return {name: to_plugin(value) if name in CONVERTED else value
            for name, value in kwargs.items()}


def field_names(cls: type) -> list[str]:
    """The public fields of a Plugin* class, in order (docs and tests)."""
    return [f.name for f in fields(cls)]
