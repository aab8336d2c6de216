"""Routing (DESIGN §4): who takes a conversation, and the queue.

An online agent below his limit gets it (least-loaded first, ties round-robin,
then the ``assign_agent`` hook decides); nobody free but someone online: the
conversation queues, first come first served, with positions pushed live;
nobody online: the visitor is offered the leave-a-message form.

Assignment is atomic: each team's assignments are serialised (an IMMEDIATE
transaction on SQLite, a transaction-scoped advisory lock on PostgreSQL), and
the conversation is updated only if it still has no handler, so under any
concurrency no agent exceeds his limit and no conversation gets two handlers.
No plugin runs while that lock is held: ``assign_agent`` is asked first, outside
the transaction, and its choice is checked inside (``_plugin_choice``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from flask import current_app

from meiqia.db import database
from meiqia.db import is_postgres
from meiqia.models import Agent
from meiqia.models import Conversation
from meiqia.models.base import utcnow
from meiqia.services import capacity
from meiqia.services import events
from meiqia.services.messages import agent_topic
from meiqia.services.messages import conversation_topic
from meiqia.services.messages import team_topic
from meiqia.services.teams import settings_of


@contextlib.contextmanager
def team_transaction(team_id: int) -> Iterator[None]:
    """A transaction that holds the team's routing lock until it ends."""
    if is_postgres():
        with database.atomic():
            database.execute_sql("SELECT pg_advisory_xact_lock(%s, %s)", (7301, team_id))
            yield
    else:
        with database.atomic("IMMEDIATE"):
            yield


def _same_queue(team_id: int, group_id: int | None) -> Any:
    """Queued conversations of one queue: the team's general one (no group) or a
    group's. Each is served first come first served by its own agents, so a
    visitor's place counts only those ahead of him in his queue."""
    group = Conversation.group.is_null() if group_id is None else Conversation.group == group_id
    return (Conversation.team == team_id) & (Conversation.status == "queued") & group


def queue_position(conversation: Conversation) -> int | None:
    """1 for the head of the conversation's queue (see ``_same_queue``), None when
    it is not queued."""
    if conversation.status != "queued" or conversation.queued_at is None:
        return None
    ahead = Conversation.select().where(
        _same_queue(conversation.team_id, conversation.group_id),
        (Conversation.queued_at < conversation.queued_at)
        | ((Conversation.queued_at == conversation.queued_at)
           & (Conversation.id < conversation.id)),
    ).count()
    return ahead + 1


def publish_queue(team_id: int, group_ids: Any) -> None:
    """Push the position of every conversation still waiting in these queues.

    Called whenever a conversation leaves a queue (assigned, taken or
    transferred by hand, ended, left for a ticket), so every visitor behind it
    sees his new place. One query per queue: positions are counted in order,
    not asked of ``queue_position`` one by one.
    """
    for group_id in set(group_ids):
        waiting = (Conversation.select(Conversation.id)
                   .where(_same_queue(team_id, group_id))
                   .order_by(Conversation.queued_at, Conversation.id).tuples())
        for position, (conversation_id,) in enumerate(waiting, 1):
            events.emit("conversation", team_id,
                        [conversation_topic(conversation_id), team_topic(team_id)],
                        {"conversation_id": conversation_id, "status": "queued",
                         "queue_position": position, "handler": None, "group_id": group_id},
                        track=False)


def _state_event(conversation: Conversation) -> dict[str, Any]:
    handler = Agent.get_or_none(Agent.id == conversation.handler_id) \
        if conversation.handler_id else None
    return {
        "conversation_id": conversation.id,
        "status": conversation.status,
        "queue_position": queue_position(conversation),
        "handler": {"id": handler.id, "name": handler.display_name} if handler else None,
        "group_id": conversation.group_id,
    }


def publish_state(conversation: Conversation) -> None:
    """Tell the visitor and the team what state the conversation is in now."""
    data = _state_event(conversation)
    events.emit("conversation", conversation.team_id,
                [conversation_topic(conversation.id), team_topic(conversation.team_id)], data,
                track=False)


def request_human(conversation: Conversation) -> str:
    """Route a conversation to a person. Returns ``open``, ``queued`` or
    ``nobody`` (nobody can take it: the widget offers the leave-a-message form)."""
    conversation = Conversation.get_by_id(conversation.id)
    if conversation.status in {"open", "queued"}:
        return conversation.status
    if conversation.status == "ended":
        return "nobody"
    team_id = conversation.team_id
    situation = capacity.availability(team_id)
    queue_ok = settings_of(conversation.team)["queue_enabled"]
    if situation == capacity.NOBODY_ONLINE or (
        situation == capacity.ALL_BUSY and not queue_ok
    ):
        events.emit("conversation", team_id, [conversation_topic(conversation.id)],
                    {"conversation_id": conversation.id, "status": conversation.status,
                     "offer_ticket": situation}, track=False)
        return "nobody"
    Conversation.update(status="queued", queued_at=utcnow()).where(
        Conversation.id == conversation.id, Conversation.status == "bot").execute()
    assign_waiting(team_id)
    conversation = Conversation.get_by_id(conversation.id)
    if conversation.status == "queued":
        publish_state(conversation)
    return conversation.status


def _waiting_with_pool(team_id: int) -> Iterator[tuple[Conversation, list[Agent]]]:
    """Queued conversations of the team, oldest first, each with the free agents
    who may take it (its group's members, or anyone for the general queue)."""
    free = capacity.candidates(team_id)
    if not free:
        return
    waiting = (
        Conversation.select()
        .where(Conversation.team == team_id, Conversation.status == "queued",
               Conversation.handler.is_null())
        .order_by(Conversation.queued_at, Conversation.id)
        .limit(50)
    )
    for conversation in waiting:
        pool = free
        if conversation.group_id:
            from meiqia.models import AgentGroup

            members = {m.agent_id for m in AgentGroup.select().where(
                AgentGroup.group == conversation.group_id)}
            pool = [a for a in free if a.id in members]
        if pool:
            yield conversation, pool


def _plugin_choice(team_id: int) -> tuple[int, int] | None:
    """Ask ``assign_agent`` plugins, outside any transaction: (conversation id,
    agent id) for the conversation that is next in line, or None.

    A plugin may hang or be slow (its budget bounds the wait); holding the
    team's write lock meanwhile stalled every message of every conversation.
    So the plugin only proposes, here, and ``_assign_one`` takes the proposal
    inside the transaction if it still holds (the same conversation is next
    and the agent is still free), else the default: least-loaded first.
    Without a plugin of its own (only the built-in policy, which picks the
    first), nothing is asked.
    """
    pm = current_app.extensions["meiqia.plugins"]
    if not pm.has_custom("assign_agent"):
        return None
    for conversation, pool in _waiting_with_pool(team_id):
        chosen = pm.call_first("assign_agent", conversation=conversation, candidates=pool)
        chosen_id = getattr(chosen, "id", None)
        return (conversation.id, chosen_id) if chosen_id is not None else None
    return None


def _assign_one(team_id: int) -> Conversation | None:
    """Give the longest-waiting assignable conversation a handler, atomically.

    No plugin is called in here (see ``_plugin_choice``)."""
    proposal = _plugin_choice(team_id)
    with team_transaction(team_id):
        for conversation, pool in _waiting_with_pool(team_id):
            chosen = pool[0]
            if proposal is not None and proposal[0] == conversation.id:
                chosen = next((a for a in pool if a.id == proposal[1]), chosen)
            now = utcnow()
            updated = Conversation.update(
                handler=chosen.id, status="open", assigned_at=now,
            ).where(Conversation.id == conversation.id, Conversation.handler.is_null(),
                    Conversation.status == "queued").execute()
            if updated:
                Agent.update(last_assigned_at=now).where(Agent.id == chosen.id).execute()
                return Conversation.get_by_id(conversation.id)
        return None


def assign_waiting(team_id: int) -> list[Conversation]:
    """Assign queued conversations while someone is free; push new queue positions."""
    assigned = []
    while True:
        conversation = _assign_one(team_id)
        if conversation is None:
            break
        assigned.append(conversation)
        publish_state(conversation)
        events.emit("assigned", team_id, [agent_topic(conversation.handler_id)],
                    {"conversation_id": conversation.id})
    publish_queue(team_id, {c.group_id for c in assigned})
    return assigned


def leave_queue(conversation: Conversation) -> None:
    """The visitor stops waiting (e.g. leaves a message instead): back to the bot."""
    left = Conversation.update(status="bot", queued_at=None).where(
        Conversation.id == conversation.id, Conversation.status == "queued").execute()
    conversation = Conversation.get_by_id(conversation.id)
    publish_state(conversation)
    if left:
        publish_queue(conversation.team_id, {conversation.group_id})


# A freed place (end, transfer, limit raised, agent online) assigns the queue head.
if assign_waiting not in events.capacity_listeners:
    events.capacity_listeners.append(assign_waiting)
