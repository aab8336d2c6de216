"""How much room the team has: who is online, how loaded, can anyone take more.

Routing, the widget (which form to show) and tickets (which scenario a
leave-a-message comes from) all ask the same questions, so they are answered
here once.
"""

from __future__ import annotations

import datetime
import logging
from typing import Any

import peewee

from meiqia.db import database
from meiqia.db import statement
from meiqia.models import Agent
from meiqia.models import AgentSocket
from meiqia.models import Conversation
from meiqia.models.base import utcnow

log = logging.getLogger(__name__)

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


class Seat:
    """What routing needs to know of an eligible agent: who, his limit, his load,
    and when he last got a conversation (for round-robin). Routing used to read
    the whole ``Agent`` row of every eligible agent, twice per conversation that
    asked for a person: at 50 agents that was most of the CPU of a burst of
    first messages (docs/benchmarks.md, "Production at 300 msg/s")."""

    __slots__ = ("id", "max_concurrent", "last_assigned_at", "created_at", "load")

    def __init__(self, id: int, max_concurrent: int, last_assigned_at: Any,
                 created_at: Any, load: int) -> None:
        self.id = id
        self.max_concurrent = max_concurrent
        self.last_assigned_at = last_assigned_at
        self.created_at = created_at
        self.load = load

    @property
    def free(self) -> bool:
        return self.max_concurrent > 0 and self.load < self.max_concurrent


def _seats_sql() -> str:
    agent, sock, conv = Agent._meta, AgentSocket._meta, Conversation._meta
    mark = database.param
    return (
        f'SELECT a."id", a."max_concurrent", a."last_assigned_at", a."created_at", '
        f'(SELECT COUNT(*) FROM "{conv.table_name}" c WHERE c."handler_id" = a."id" '
        f'AND c."status" = {mark}) '
        f', a."id" IN (SELECT s."agent_id" FROM "{sock.table_name}" s '
        f'WHERE s."team_id" = {mark} AND s."alive_until" > {mark} '
        f'AND (s."closed_at" IS NULL OR s."closed_at" > {mark})) '
        f'FROM "{agent.table_name}" a WHERE a."team_id" = {mark} AND a."status" = {mark} '
        f'AND a."active" = {mark} AND a."connected" = {mark} ORDER BY a."id"')


def seats(team_id: int) -> list[Seat]:
    """The eligible agents (online, active, connected, with a live workspace
    socket) with their open conversations, in one statement.

    A socket is live when its row says so (any process), or when this process
    heard from it within the heartbeat and the sweep has not written that yet
    (``presence.heard_here``: a process behind on its timers must not take its own
    agents for gone).

    ``connected`` too, not the socket rows alone: routing takes its ``now``
    before it waits for the team's lock, so a socket that expired meanwhile can
    still look alive to it. ``connected`` is cleared by the one UPDATE that
    marks him away (``presence.settle``), and a chat routed before that UPDATE
    is committed before the requeue that follows it reads his chats."""
    from meiqia.services.presence import heard_here
    from meiqia.services.presence import routing_grace_seconds

    sql = statement("capacity.seats", _seats_sql)
    moment = utcnow()
    now = AgentSocket.alive_until.db_value(moment)
    # A workspace closed cleanly takes new chats only a moment (a reload), though
    # its row keeps him from being marked away for the longer away grace.
    closed_after = AgentSocket.closed_at.db_value(
        moment - datetime.timedelta(seconds=routing_grace_seconds()))
    cursor = database.execute_sql(sql, ["open", team_id, now, closed_after, team_id, "online",
                                        True, True])
    rows = cursor.fetchall()
    here = heard_here(team_id) if rows else set()
    as_time = Agent.created_at.python_value
    return [Seat(agent_id, limit, as_time(last), as_time(created), int(load or 0))
            for agent_id, limit, last, created, load, alive in rows
            if alive or agent_id in here]


def candidates(team_id: int) -> list[Seat]:
    """Eligible agents below their limit: least-loaded first, ties round-robin.

    Round-robin means the agent who got a conversation longest ago (or never)
    comes first among equals.
    """
    return candidates_and_loads(team_id)[0]


def candidates_and_loads(team_id: int) -> tuple[list[Seat], dict[int, int]]:
    """``candidates`` and the open conversations of each eligible agent, by id."""
    everyone = seats(team_id)
    loads = {seat.id: seat.load for seat in everyone}
    return order_candidates([seat for seat in everyone if seat.free], loads), loads


def order_candidates(agents: list[Any], loads: dict[int, int]) -> list[Any]:
    """Least-loaded first, then the one given a conversation longest ago (or never).
    ``agents``: seats or agents (anything with ``id``, ``last_assigned_at`` and
    ``created_at``)."""
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
    (nobody online and connected: ``seats``; or outside the team's
    working hours, ``services/working_hours.py``)."""
    from meiqia.services.working_hours import team_is_open

    if not team_is_open(team_id):
        return NOBODY_ONLINE
    everyone = seats(team_id)
    if any(seat.free for seat in everyone):
        return AVAILABLE
    return ALL_BUSY if everyone else NOBODY_ONLINE


def note_if_shown_online(team_id: int) -> None:
    """Log what presence says when routing found nobody but an agent of the team is
    marked online and connected (what the agent list shows as ``online``).

    The two are meant to agree (docs/protocol.md, "Agent presence"); a browser test
    once routed a visitor to nobody a second after the list had shown its agent
    online, and the cause was not found from the log of that run. This line names
    what each side read: his sockets' rows, this process's notes and the clock.
    Only on the path that found nobody, so it costs nothing on a served chat."""
    from meiqia.services.presence import heard_here
    from meiqia.services.presence import routing_grace_seconds
    from meiqia.services.working_hours import team_is_open

    if not team_is_open(team_id):
        return  # closed hours: nobody is the answer, whoever is online
    shown = [agent_id for (agent_id,) in Agent.select(Agent.id).where(
        Agent.team == team_id, Agent.status == "online", Agent.active == True,  # noqa: E712
        Agent.connected == True).tuples()]  # noqa: E712
    if not shown:
        return
    sockets = list(AgentSocket.select(AgentSocket.agent, AgentSocket.alive_until,
                                      AgentSocket.closed_at)
                   .where(AgentSocket.agent.in_(shown)).tuples())
    log.warning(
        "routing: nobody to serve in team %s, yet agents %s are online and connected; "
        "sockets (agent, alive until, closed at): %s; heard here: %s; routing grace %s s; "
        "now %s; loads %s", team_id, shown, sockets, sorted(heard_here(team_id)),
        routing_grace_seconds(), utcnow(), {s.id: (s.load, s.max_concurrent)
                                            for s in seats(team_id)})
