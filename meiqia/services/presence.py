"""Presence: which visitors and agents have a socket open right now.

Agents' lists mark online visitors and grey the others, so presence must be
right across processes and survive a process dying. The database holds the
truth (``Visitor.online_until``, refreshed by the socket's pings, so a visitor
whose process died turns offline by itself when it expires); each process
counts its own sockets per visitor so that closing one of two tabs does not
mark him offline. Transitions (offline → online, online → offline) are told to
the team with a ``presence`` event that carries the conversation's handler and
group, so agent sockets filter it without a query.

Agent presence is his chosen status (online, invisible, offline: routing uses
it); his sockets only refresh ``Agent.last_seen_at`` and, when he connects while
``online``, tell routing a place may be free.
"""

from __future__ import annotations

import datetime
import threading
from collections import Counter
from typing import Any

from meiqia.models import Agent
from meiqia.models import Conversation
from meiqia.models import Visitor
from meiqia.models.base import utcnow
from meiqia.services import events

#: A visitor stays online this long after his socket's last sign of life
#: (clients ping every 25 s, so three pings may be lost).
ONLINE_SECONDS = 75

_lock = threading.Lock()
_visitor_sockets: Counter[int] = Counter()
_agent_sockets: Counter[int] = Counter()


def is_online(visitor: Visitor) -> bool:
    return bool(visitor.online_until and visitor.online_until > utcnow())


def _announce(visitor_id: int, online: bool) -> None:
    visitor = Visitor.get_or_none(Visitor.id == visitor_id)
    if visitor is None:
        return
    conversation = (Conversation.select().where(Conversation.visitor == visitor_id)
                    .order_by(Conversation.id.desc()).first())
    events.emit("presence", visitor.team_id, [f"team:{visitor.team_id}"], {
        "visitor_id": visitor_id, "online": online,
        "conversation_id": conversation.id if conversation else None,
        "handler_id": conversation.handler_id if conversation else None,
        "group_id": conversation.group_id if conversation else None,
    }, track=False)


def visitor_alive(visitor_id: int) -> bool:
    """The visitor's socket showed a sign of life: online for ONLINE_SECONDS more.

    Returns True (and tells the team) when he was offline until now.
    """
    now = utcnow()
    until = now + datetime.timedelta(seconds=ONLINE_SECONDS)
    came = Visitor.update(online_until=until, last_seen_at=now).where(
        Visitor.id == visitor_id,
        Visitor.online_until.is_null() | (Visitor.online_until <= now)).execute()
    if came:
        _announce(visitor_id, True)
        return True
    Visitor.update(online_until=until, last_seen_at=now).where(
        Visitor.id == visitor_id).execute()
    return False


def visitor_connected(visitor_id: int) -> None:
    with _lock:
        _visitor_sockets[visitor_id] += 1
    visitor_alive(visitor_id)


def visitor_disconnected(visitor_id: int) -> None:
    """A socket closed; offline when it was this process's last one for him.

    (A tab open on another process brings him back online at its next ping.)
    """
    with _lock:
        _visitor_sockets[visitor_id] -= 1
        last = _visitor_sockets[visitor_id] <= 0
        if last:
            del _visitor_sockets[visitor_id]
    if not last:
        return
    now = utcnow()
    gone = Visitor.update(online_until=now, last_seen_at=now).where(
        Visitor.id == visitor_id, Visitor.online_until > now).execute()
    if gone:
        _announce(visitor_id, False)


def agent_connected(agent: Agent) -> None:
    """An agent opened the workspace socket."""
    with _lock:
        _agent_sockets[agent.id] += 1
    Agent.update(last_seen_at=utcnow()).where(Agent.id == agent.id).execute()
    if agent.status == "online":
        # He may have been online with no socket (status kept across a restart):
        # the queue head need not wait for his next status change.
        events.capacity_changed(agent.team_id)


def agent_disconnected(agent: Agent) -> None:
    with _lock:
        _agent_sockets[agent.id] -= 1
        if _agent_sockets[agent.id] <= 0:
            del _agent_sockets[agent.id]
    Agent.update(last_seen_at=utcnow()).where(Agent.id == agent.id).execute()


def local_sockets() -> dict[str, Any]:
    """Sockets open in this process (for health and benchmarks)."""
    with _lock:
        return {"visitors": sum(_visitor_sockets.values()),
                "agents": sum(_agent_sockets.values())}
