"""How much room the team has: who is online, how loaded, can anyone take more.

Routing, the widget (which form to show) and tickets (which scenario a
leave-a-message comes from) all ask the same questions, so they are answered
here once.
"""

from __future__ import annotations

import peewee

from meiqia.models import Agent
from meiqia.models import AgentSocket
from meiqia.models import Conversation

NOBODY_ONLINE = "nobody_online"
ALL_BUSY = "all_busy"
AVAILABLE = "available"


def open_counts(team_id: int) -> dict[int, int]:
    """Open conversations per handler of the team."""
    rows = (
        Conversation.select(Conversation.handler, peewee.fn.COUNT(Conversation.id).alias("n"))
        .where(Conversation.team == team_id, Conversation.status == "open")
        .group_by(Conversation.handler)
        .tuples()
    )
    return {handler: n for handler, n in rows if handler is not None}


def eligible_agents(team_id: int) -> list[Agent]:
    """Agents who take conversations now: active, status ``online`` (invisible and
    offline do not) AND connected, i.e. with a live workspace socket on any
    process (``presence.live_sockets``). An agent set online who never opened
    the workspace, or closed it longer than the grace period ago, gets nothing."""
    from meiqia.services.presence import live_sockets

    # ``connected`` too, not the socket rows alone: routing takes its ``now``
    # before it waits for the team's lock, so a socket that expired meanwhile can
    # still look alive to it. ``connected`` is cleared by the one UPDATE that
    # marks him away (``presence.settle``), and a chat routed before that UPDATE
    # is committed before the requeue that follows it reads his chats.
    return list(
        Agent.select()
        .where(Agent.team == team_id, Agent.status == "online", Agent.active == True,  # noqa: E712
               Agent.connected == True,  # noqa: E712
               Agent.id.in_(live_sockets().where(AgentSocket.team == team_id)))
        .order_by(Agent.id)
    )


#: The name routing and the widget have used: online means "there to take chats".
online_agents = eligible_agents


def candidates(team_id: int) -> list[Agent]:
    """Online agents below their limit: least-loaded first, ties round-robin.

    Round-robin means the agent who got a conversation longest ago (or never)
    comes first among equals.
    """
    return candidates_and_loads(team_id)[0]


def candidates_and_loads(team_id: int) -> tuple[list[Agent], dict[int, int]]:
    """``candidates`` and the open conversations per handler they were ranked by."""
    loads = open_counts(team_id)
    free = [
        a for a in online_agents(team_id)
        if a.max_concurrent > 0 and loads.get(a.id, 0) < a.max_concurrent
    ]
    return order_candidates(free, loads), loads


def order_candidates(agents: list[Agent], loads: dict[int, int]) -> list[Agent]:
    """Least-loaded first, then the one given a conversation longest ago (or never)."""
    return sorted(
        agents,
        key=lambda a: (
            loads.get(a.id, 0),
            a.last_assigned_at is not None,
            a.last_assigned_at or a.created_at,
            a.id,
        ),
    )


def availability(team_id: int) -> str:
    """``available``, ``all_busy`` (someone online, nobody free) or ``nobody_online``
    (nobody online and connected: ``eligible_agents``; or outside the team's
    working hours, ``services/working_hours.py``)."""
    from meiqia.services.working_hours import team_is_open

    if not team_is_open(team_id):
        return NOBODY_ONLINE
    if candidates(team_id):
        return AVAILABLE
    return ALL_BUSY if online_agents(team_id) else NOBODY_ONLINE
