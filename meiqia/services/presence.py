"""Presence: which visitors and agents have a socket open right now.

Agents' lists mark online visitors and grey the others, so presence must be
right across processes and survive a process dying. The database holds the
truth (``Visitor.online_until``, refreshed by the socket's pings, so a visitor
whose process died turns offline by itself when it expires); each process
counts its own sockets per visitor so that closing one of two tabs does not
mark him offline. Transitions (offline → online, online → offline) are told to
the team with a ``presence`` event that carries the conversation's handler and
group, so agent sockets filter it without a query.

Agent presence is his chosen status (online, invisible, offline) AND whether
a workspace of his is open: routing gives chats only to agents who are
``online`` and connected. Each workspace socket is a row (``AgentSocket``)
whose ``alive_until`` its process pushes forward with every sign of life
(``AGENT_HEARTBEAT_SECONDS``), so a socket on another gunicorn worker counts,
and a process killed -9 leaves rows that simply expire. A clean close leaves
the row alive for ``AGENT_AWAY_GRACE_SECONDS`` (a reload or a reconnect to
another process is not an absence). Each process runs a sweeper every
``PRESENCE_SWEEP_SECONDS``: an agent with no live row left is marked away
once (``Agent.connected``, a conditional UPDATE), the team is told
(``agent.presence``), his open chats go back to the queue or stay with him
(``AGENT_AWAY_OPEN_CHATS``), and when he was the last one, the queued visitors
are offered to leave a message (``routing.tell_if_nobody_left``); a chat
transferred to a group none of whose members is there is offered it by the next
sweep (``routing.tell_transferred_to_nobody``).
"""

from __future__ import annotations

import datetime
import logging
import threading
import time
from collections import Counter
from typing import Any

from flask import Flask
from flask import current_app

from meiqia.db import database
from meiqia.db import find_by_id
from meiqia.db import is_database_error
from meiqia.models import Agent
from meiqia.models import AgentSocket
from meiqia.models import Conversation
from meiqia.models import Visitor
from meiqia.models.base import utcnow
from meiqia.services import events
from meiqia.services.sweeper import Sweeper
from meiqia.services.sweeper import install

log = logging.getLogger(__name__)
#: A visitor stays online this long after his socket's last sign of life
#: (clients ping every 25 s, so three pings may be lost).
ONLINE_SECONDS = 75

_lock = threading.Lock()
def _counts(kind: str) -> Counter[int]:
    """This app's open sockets per visitor or agent in this process. Kept on the
    app, not the module: ids restart with each database, and a test process runs
    many apps one after another (a count left by one app's socket made another
    app's visitor look online forever)."""
    counts = current_app.extensions.setdefault("meiqia.socket_counts", {})
    return counts.setdefault(kind, Counter())


def is_online(visitor: Visitor) -> bool:
    return bool(visitor.online_until and visitor.online_until > utcnow())


def _announce(visitor_id: int, online: bool) -> None:
    visitor = find_by_id(Visitor, visitor_id)
    if visitor is None:
        return
    conversation = (Conversation.select().where(Conversation.visitor == visitor_id)
                    .order_by(Conversation.id.desc()).first())
    events.emit("presence", visitor.team_id, [f"team:{visitor.team_id}"], {
        "visitor_id": visitor_id, "online": online,
        "conversation_id": conversation.id if conversation else None,
        "handler_id": conversation.handler_id if conversation else None,
        "group_id": conversation.group_id if conversation else None,
        "conversation_status": conversation.status if conversation else None,
    }, track=False)


def visitor_alive(visitor_id: int) -> bool:
    """The visitor's socket showed a sign of life: online for ONLINE_SECONDS more.

    Returns True (and tells the team) when he was offline until now.
    """
    return bool(_visitors_alive([visitor_id]))


def _visitors_alive(visitor_ids: list[int]) -> list[int]:
    """``visitor_alive`` for many at once: one UPDATE for those already online;
    those who were offline are each brought back by a conditional UPDATE, so of
    several processes exactly one tells the team. Returns those brought back."""
    now = utcnow()
    until = now + datetime.timedelta(seconds=ONLINE_SECONDS)
    offline = [vid for (vid,) in Visitor.select(Visitor.id).where(
        Visitor.id.in_(visitor_ids),
        Visitor.online_until.is_null() | (Visitor.online_until <= now)).tuples()]
    came = []
    for vid in offline:
        if Visitor.update(online_until=until, last_seen_at=now).where(
                Visitor.id == vid,
                Visitor.online_until.is_null() | (Visitor.online_until <= now)).execute():
            came.append(vid)
    rest = [vid for vid in visitor_ids if vid not in came]
    if rest:
        Visitor.update(online_until=until, last_seen_at=now).where(
            Visitor.id.in_(rest)).execute()
    for vid in came:
        _announce(vid, True)
    return came


def visitor_connected(visitor_id: int) -> None:
    with _lock:
        _counts("visitors")[visitor_id] += 1
    visitor_alive(visitor_id)


def visitor_disconnected(visitor_id: int) -> None:
    """A socket closed; offline when it was this process's last one for him.

    (A tab open on another process brings him back online at its next ping.)
    """
    with _lock:
        _counts("visitors")[visitor_id] -= 1
        last = _counts("visitors")[visitor_id] <= 0
        if last:
            del _counts("visitors")[visitor_id]
    if not last:
        return
    now = utcnow()
    gone = Visitor.update(online_until=None, last_seen_at=now).where(
        Visitor.id == visitor_id, Visitor.online_until > now).execute()
    if gone:
        _announce(visitor_id, False)


#: Visitors whose silence one sweep announces at most (the rest: the next sweep).
SILENT_PER_SWEEP = 500


def _silent_visitors(now: datetime.datetime) -> int:
    """Tell the team about visitors whose socket went silent: no sign of life for
    ONLINE_SECONDS (a tab asleep, a network gone without a close). Each is set
    offline (NULL) by a conditional UPDATE, so of several sweeping processes
    exactly one tells the team; returns how many were told."""
    told = 0
    for (vid,) in Visitor.select(Visitor.id).where(
            Visitor.online_until.is_null(False), Visitor.online_until <= now,
    ).limit(SILENT_PER_SWEEP).tuples():
        if Visitor.update(online_until=None).where(
                Visitor.id == vid, Visitor.online_until <= now).execute():
            _announce(vid, False)
            told += 1
    return told


def _config(key: str, default: Any) -> Any:
    try:
        return current_app.config.get(key, default)
    except RuntimeError:  # outside an application (a script): the defaults
        return default


def heartbeat_seconds() -> float:
    return float(_config("AGENT_HEARTBEAT_SECONDS", 75))


def grace_seconds() -> float:
    return float(_config("AGENT_AWAY_GRACE_SECONDS", 60))


def routing_grace_seconds() -> float:
    """How long after a workspace closed new chats still go to it (a reload):
    at most the away grace."""
    return min(float(_config("AGENT_ROUTING_GRACE_SECONDS", 10)), grace_seconds())


def live_sockets(now: datetime.datetime | None = None) -> Any:
    """Agent sockets alive at ``now`` (a query of AgentSocket)."""
    return AgentSocket.select(AgentSocket.agent).where(AgentSocket.alive_until > (now or utcnow()))


def serving_sockets(now: datetime.datetime | None = None) -> Any:
    """Agent sockets new chats may go to at ``now``: alive, and open or closed
    within AGENT_ROUTING_GRACE_SECONDS (a query of AgentSocket).

    ``live_sockets`` also counts a workspace closed within the longer away grace,
    which keeps his chats his over a reload; routing (``capacity.seats``, the same
    condition in its one statement) stops giving him new chats sooner. The agent
    list and the transfer check go by this one, so whoever is shown ``online`` is
    one routing serves, also between the two graces."""
    now = now or utcnow()
    closed_after = now - datetime.timedelta(seconds=routing_grace_seconds())
    return AgentSocket.select(AgentSocket.agent).where(
        AgentSocket.alive_until > now,
        AgentSocket.closed_at.is_null() | (AgentSocket.closed_at > closed_after))


def is_connected(agent_id: int, now: datetime.datetime | None = None) -> bool:
    """He has a workspace socket new chats may go to now, on any process
    (``serving_sockets``), or one this process heard from (``heard_here``)."""
    return agent_id in touches().heard_recently() or \
        serving_sockets(now).where(AgentSocket.agent == agent_id).exists()


def connected_ids(team_id: int, now: datetime.datetime | None = None) -> set[int]:
    """The team's agents with a workspace socket new chats may go to, on any process
    (``serving_sockets``), or one this process heard from (``heard_here``)."""
    return heard_here(team_id) | {agent_id for (agent_id,) in serving_sockets(now).where(
        AgentSocket.team == team_id).distinct().tuples()}


def agent_presence(agent: Agent, connected: set[int] | None = None) -> str:
    """What colleagues see: ``online`` (online and connected), ``away`` (online, but
    no workspace open for longer than the grace period), ``invisible``, ``offline``."""
    if agent.status != "online":
        return agent.status
    # ``connected`` as routing requires it (``capacity.seats``): ``online`` means
    # a chat would reach him now.
    live = agent.connected and (
        agent.id in connected if connected is not None else is_connected(agent.id))
    return "online" if live else "away"


def _announce_agent(agent_id: int) -> None:
    agent = find_by_id(Agent, agent_id)
    if agent is None:
        return
    events.emit("agent.presence", agent.team_id, [f"team:{agent.team_id}"], {
        "agent_id": agent.id, "status": agent.status, "connected": agent.connected,
        "presence": agent_presence(agent)}, track=False)


def agent_connected(agent: Agent) -> int:
    """An agent opened the workspace socket: record it (see ``AgentSocket``) and
    return its id, which the socket's heartbeats and close name."""
    now = utcnow()
    # The row and ``connected`` in one transaction: routing needs both
    # (``capacity.seats``), and colleagues (and a client's own check) are shown
    # ``online`` from the same two. Written one after the other, a reader between
    # them saw him online while routing found nobody: a full run's browser test
    # routed its visitor to nobody after the workspace had shown him online.
    with database.atomic():
        row = AgentSocket.create(agent=agent.id, team=agent.team_id,
                                 alive_until=now + datetime.timedelta(seconds=heartbeat_seconds()))
        came = Agent.update(connected=True, last_seen_at=now).where(
            Agent.id == agent.id, Agent.connected == False).execute()  # noqa: E712
        if not came:
            Agent.update(last_seen_at=now).where(Agent.id == agent.id).execute()
    with _lock:
        _counts("agents")[agent.id] += 1
    _told_back(agent, bool(came))
    return row.id


def heard_here(team_id: int) -> set[int]:
    """The team's agents whose workspace socket in *this* process showed a sign of life
    within AGENT_HEARTBEAT_SECONDS.

    The database says the same once the presence sweep has written the notes, but
    the sweep runs on a timer, and a process that has fallen behind runs its timers
    late: at 300 msg/s on one core a one-second wait returned after 50 s, every
    agent's row expired although his pings kept coming, and routing found nobody
    (issue 19, docs/benchmarks.md). What this process heard itself needs no timer.
    Other processes still go by the rows."""
    return touches().heard_recently(team_id)


def _came_back(agent: Agent) -> None:
    came = Agent.update(connected=True).where(
        Agent.id == agent.id, Agent.connected == False).execute()  # noqa: E712
    _told_back(agent, bool(came))


def _told_back(agent: Agent, came: bool) -> None:
    """After he was marked connected (``came``: by this call, from away)."""
    if came:
        _announce_agent(agent.id)
    if came or Agent.get_by_id(agent.id).status == "online":
        # He may have been online with no socket (status kept across a restart):
        # the queue head need not wait for his next status change.
        events.capacity_changed(agent.team_id)


def agent_alive(agent: Agent, socket_id: int) -> None:
    """A sign of life on his socket: alive for AGENT_HEARTBEAT_SECONDS more.

    A row deleted meanwhile (expired during a database outage and swept) is
    written again, and an agent marked away meanwhile comes back.
    """
    _agents_alive({socket_id: (agent.id, agent.team_id)})


def _agents_alive(sockets: dict[int, tuple[int, int]]) -> None:
    """``agent_alive`` for many sockets ({socket id: (agent id, team id)}): one
    UPDATE of the socket rows, one of the agents; rows and agents that need more
    (a row swept meanwhile, an agent marked away) are found by one SELECT each."""
    now = utcnow()
    until = now + datetime.timedelta(seconds=heartbeat_seconds())
    ids = list(sockets)
    AgentSocket.update(alive_until=until).where(AgentSocket.id.in_(ids)).execute()
    present = {sid for (sid,) in AgentSocket.select(AgentSocket.id).where(
        AgentSocket.id.in_(ids)).tuples()}
    for sid in ids:
        if sid not in present:
            agent_id, team_id = sockets[sid]
            AgentSocket.insert(id=sid, agent=agent_id, team=team_id, alive_until=until,
                               opened_at=now).on_conflict_ignore().execute()
    agent_ids = sorted({agent_id for agent_id, _ in sockets.values()})
    Agent.update(last_seen_at=now).where(Agent.id.in_(agent_ids)).execute()
    for agent in Agent.select().where(Agent.id.in_(agent_ids),
                                      Agent.connected == False):  # noqa: E712
        _came_back(agent)


class Touches:
    """Signs of life of this process's sockets, written in batches.

    A socket shows a sign of life with every frame (clients ping every 25 s);
    written one by one, that was two to four statements per ping: at 10,000
    sockets 400 pings a second, each waiting for the database in line with
    chat messages. Here a ping only notes the socket; the presence sweeper of
    the process writes every noted socket with one statement per table each
    PRESENCE_SWEEP_SECONDS, far inside the 75 s a sign of life lasts. Without
    a sweeper (PRESENCE_SWEEP_SECONDS 0: tests, the CLI) a note is written at
    once. A batch that fails (the database away) is kept for the next sweep.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.visitors: set[int] = set()
        self.agents: dict[int, tuple[int, int]] = {}
        #: Agent sockets of this process: socket id -> (agent id, team id, when last
        #: heard, ``time.monotonic``), whether or not the sweep has written it yet.
        self.heard: dict[int, tuple[int, int, float]] = {}

    def heard_from(self, agent: Agent, socket_id: int) -> None:
        with self.lock:
            self.heard[socket_id] = (agent.id, agent.team_id, time.monotonic())

    def heard_recently(self, team_id: int | None = None) -> set[int]:
        """The agents (of a team) whose socket in this process showed a sign of life
        within AGENT_HEARTBEAT_SECONDS (``heard_here``)."""
        cutoff = time.monotonic() - heartbeat_seconds()
        with self.lock:
            return {agent_id for agent_id, team, at in self.heard.values()
                    if at > cutoff and team_id in (None, team)}

    def visitor(self, visitor_id: int) -> None:
        if not batched():
            visitor_alive(visitor_id)
            return
        with self.lock:
            self.visitors.add(visitor_id)

    def agent(self, agent: Agent, socket_id: int) -> None:
        self.heard_from(agent, socket_id)
        if not batched():
            agent_alive(agent, socket_id)
            return
        with self.lock:
            self.agents[socket_id] = (agent.id, agent.team_id)

    def forget_agent_socket(self, socket_id: int) -> None:
        """His socket closed: its grace period, not a late note, decides now."""
        with self.lock:
            self.agents.pop(socket_id, None)
            self.heard.pop(socket_id, None)

    def flush(self) -> None:
        """Write what was noted (a failed batch is kept for the next flush)."""
        with self.lock:
            visitors, self.visitors = self.visitors, set()
            agents, self.agents = self.agents, {}
        with _lock:  # a socket closed since its note is not brought back to life
            visitors = {vid for vid in visitors if _counts("visitors").get(vid, 0) > 0}
        try:
            if visitors:
                _visitors_alive(sorted(visitors))
            if agents:
                _agents_alive(agents)
        except Exception:
            with self.lock:  # the next sweep tries again; newer notes win
                self.visitors |= visitors
                self.agents = {**agents, **self.agents}
            raise


def touches() -> Touches:
    """This app's notes (kept on the app, as the socket counts are)."""
    return current_app.extensions.setdefault("meiqia.touches", Touches())


def batched() -> bool:
    """Whether this process has a presence sweeper to write the notes."""
    return bool(_config("PRESENCE_SWEEP_SECONDS", 0))


def agent_disconnected(agent: Agent, socket_id: int | None = None) -> None:
    """His socket closed: it stays alive for the grace period (a reload, a
    switch of process), then the presence sweep marks him away unless another
    socket of his lives."""
    with _lock:
        _counts("agents")[agent.id] -= 1
        if _counts("agents")[agent.id] <= 0:
            del _counts("agents")[agent.id]
    now = utcnow()
    Agent.update(last_seen_at=now).where(Agent.id == agent.id).execute()
    if socket_id is not None:
        touches().forget_agent_socket(socket_id)
        AgentSocket.update(alive_until=now + datetime.timedelta(seconds=grace_seconds()),
                           closed_at=now).where(AgentSocket.id == socket_id).execute()
        if grace_seconds() <= 0:
            settle(agent.id)


def settle(agent_id: int, now: datetime.datetime | None = None) -> bool:
    """Mark him away if no socket of his is alive; True when this call did.

    One conditional UPDATE decides, so of several processes sweeping at once
    exactly one tells the team and moves his chats.
    """
    now = now or utcnow()
    went = Agent.update(connected=False).where(
        Agent.id == agent_id, Agent.connected == True,  # noqa: E712
        Agent.id.not_in(live_sockets(now))).execute()
    if went:
        _went_away(agent_id)
    return bool(went)


#: What happens to an away agent's open chats (``AGENT_AWAY_OPEN_CHATS``).
OPEN_CHAT_POLICIES = ("requeue", "keep")


def _went_away(agent_id: int) -> None:
    from meiqia.services import routing

    agent = find_by_id(Agent, agent_id)
    if agent is None:
        return
    _announce_agent(agent_id)
    if agent.status != "online":
        return
    if _config("AGENT_AWAY_OPEN_CHATS", "requeue") == "requeue":
        routing.requeue_handled_by(agent)
    routing.tell_if_nobody_left(agent.team_id)


#: Seconds between two clean-ups of long-expired socket rows (per process).
CLEANUP_SECONDS = 300
_last_cleanup = float("-inf")


def sweep(now: datetime.datetime | None = None) -> int:
    """Mark away every agent whose sockets all expired; return how many.

    Safe in several processes at once (``settle``). Also tells the team about
    visitors whose socket went silent (``_silent_visitors``), offers a message to
    chats just transferred to a group with nobody online
    (``routing.tell_transferred_to_nobody``) and forgets sockets that expired long ago.
    """
    try:
        touches().flush()
    except Exception as exc:  # noqa: BLE001 - kept for the next sweep; marking away goes on
        if is_database_error(exc):
            raise  # the database is down: the sweeper warns once (db.Outage)
        log.exception("presence: could not write the sockets' signs of life")
    now = now or utcnow()
    gone = [agent_id for (agent_id,) in Agent.select(Agent.id).where(
        Agent.connected == True, Agent.id.not_in(live_sockets(now))).tuples()]  # noqa: E712
    count = 0
    for agent_id in gone:
        try:
            count += settle(agent_id, now)
        except Exception as exc:  # noqa: BLE001 - one agent must not stop the sweep
            if is_database_error(exc):
                raise
            log.exception("presence: could not settle agent %s", agent_id)
    try:
        _silent_visitors(now)
    except Exception as exc:  # noqa: BLE001 - the next sweep tries again
        if is_database_error(exc):
            raise
        log.exception("presence: could not settle silent visitors")
    try:
        from meiqia.services import routing

        routing.tell_transferred_to_nobody(now)
    except Exception as exc:  # noqa: BLE001 - the next sweep tries again
        if is_database_error(exc):
            raise
        log.exception("presence: could not tell chats transferred to a group nobody serves")
    global _last_cleanup
    if time.monotonic() - _last_cleanup > CLEANUP_SECONDS:
        # Not every sweep: on SQLite even a DELETE of nothing takes the write lock.
        _last_cleanup = time.monotonic()
        AgentSocket.delete().where(
            AgentSocket.alive_until < now - datetime.timedelta(minutes=10)).execute()
    return count



def init_app(app: Flask) -> Sweeper | None:
    """This process sweeps every ``PRESENCE_SWEEP_SECONDS`` seconds (``services/sweeper.py``)."""
    return install(app, "PRESENCE_SWEEP_SECONDS", "meiqia.presence", sweep, "presence")


def local_sockets() -> dict[str, Any]:
    """Sockets open in this process (for health and benchmarks)."""
    with _lock:
        return {"visitors": sum(_counts("visitors").values()),
                "agents": sum(_counts("agents").values())}
