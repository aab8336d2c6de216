"""Who may see what: the one place every endpoint asks (DESIGN §3).

An agent's permission scope decides whose conversations, tickets and figures he
sees: ``self`` (his own), ``groups`` (those of agents in his groups and of
conversations routed to his groups), ``all`` (the whole team) or ``custom`` (an
explicit list of agents and groups). Admins always see the whole team.
Conversations without a handler (with the bot, or queued) are the team's shared
pool and visible to every agent of the team, unless routed to a group he
cannot see. A conversation in which an agent was @mentioned is visible to him
(to read and write in, not to take over or transfer: ``within_own_scope``).

Tickets are not a shared pool (they carry the customer's contact and the
transcript): see ``ticket_filter``.

Things outside the scope answer 404, not 403: their existence is not revealed.
"""

from __future__ import annotations

from typing import Any

import peewee

from meiqia.models import Agent
from meiqia.models import AgentGroup
from meiqia.models import Conversation
from meiqia.models import Mention
from meiqia.models import ScopeGrant
from meiqia.models import Ticket
from meiqia.services.errors import NotFound


def sees_everything(actor: Agent) -> bool:
    return actor.is_admin or actor.scope == "all"


def visible_group_ids(actor: Agent) -> set[int] | None:
    """Groups whose work the actor sees; None means every group of the team."""
    if sees_everything(actor):
        return None
    own = {
        m.group_id for m in AgentGroup.select(AgentGroup.group).where(AgentGroup.agent == actor)
    }
    if actor.scope == "groups":
        return own
    if actor.scope == "custom":
        return {
            g.target_group_id
            for g in ScopeGrant.select().where(
                ScopeGrant.agent == actor, ScopeGrant.target_group.is_null(False)
            )
        }
    return set()


def visible_agent_ids(actor: Agent) -> set[int] | None:
    """Agents whose conversations and figures the actor sees; None means all."""
    if sees_everything(actor):
        return None
    ids = {actor.id}
    groups = visible_group_ids(actor) or set()
    if actor.scope == "custom":
        ids |= {
            g.target_agent_id
            for g in ScopeGrant.select().where(
                ScopeGrant.agent == actor, ScopeGrant.target_agent.is_null(False)
            )
        }
    if groups:
        ids |= {
            m.agent_id
            for m in AgentGroup.select(AgentGroup.agent).where(AgentGroup.group.in_(groups))
        }
    return ids


def _unassigned(model: Any, groups: set[int]) -> peewee.Expression:
    """Conversations nobody handles that are not routed to a group he cannot see."""
    return model.handler.is_null() & (
        model.group.is_null() | (model.group.in_(groups) if groups else False))


def unassigned_pool(actor: Agent, model: Any = Conversation) -> peewee.Expression:
    """The team's conversations nobody handles, within ``actor``'s groups, ended or
    not: what a scoped agent's dashboard figures count beside his agents' (numbers,
    not transcripts). Everything when he sees the whole team."""
    if visible_agent_ids(actor) is None:
        return model.handler.is_null()
    return _unassigned(model, visible_group_ids(actor) or set())


def conversation_filter(actor: Agent, model: Any = Conversation,
                        mentions: bool = True) -> peewee.Expression:
    """A WHERE clause limiting ``Conversation`` rows to what ``actor`` may see.

    A scoped agent sees his agents' conversations, those he was @mentioned in, and
    the **shared pool**: conversations nobody handles, routed to one of his groups,
    or in no group while they wait for a person (``queued``: a waiting visitor must
    be seen by someone). One nobody handles in no group that is still with the bot
    or ended (a chat with the bot only, a message left while nobody was online)
    holds a transcript and often the customer's contacts, and waits for no agent:
    like its ticket, it is for admins and ``all`` agents (docs/security.md §1). A
    message left from a chat still with the bot does not end the chat, so "not
    ended" was not enough: a scoped agent read the contact of a ticket he was
    refused through the conversation API (found by an outside check).

    ``mentions=False``: his scope without the @mention widening, what acting on a
    chat needs (``within_own_scope``): a mention lets him read a conversation, not
    take it over."""
    in_team = model.team == actor.team_id
    agents = visible_agent_ids(actor)
    if agents is None:
        return in_team
    groups = visible_group_ids(actor) or set()
    pool = _unassigned(model, groups) & (
        (model.status == "queued") | model.group.is_null(False))
    if not mentions:
        return in_team & (model.handler.in_(agents) | pool)
    mentioned = model.id.in_(
        Mention.select(Mention.conversation).where(Mention.agent == actor.id)
    )
    return in_team & (model.handler.in_(agents) | pool | mentioned)


def mentioned_in(actor: Agent, conversation: Conversation) -> bool:
    """Whether ``actor`` was @mentioned in ``conversation``. Asked before
    ``within_own_scope``: a chat a colleague took a moment ago is no longer in an
    agent's scope either, and his transfer must then lose the race (409), not be told
    he was mentioned."""
    return Mention.select(Mention.id).where(
        Mention.agent == actor.id, Mention.conversation == conversation.id).exists()


def within_own_scope(actor: Agent, conversation: Conversation) -> bool:
    """Whether ``actor`` sees ``conversation`` by his scope alone, not only because
    he was @mentioned in it. Taking a chat over or transferring it needs this: a
    mentioned agent who took the chat made it his for good (his handler's scope, his
    figures), a scope no admin gave him (docs/security.md §1)."""
    return (
        Conversation.select(Conversation.id)
        .where(Conversation.id == conversation.id,
               conversation_filter(actor, mentions=False))
        .exists()
    )


def figures_filter(actor: Agent, model: Any = Conversation) -> peewee.Expression:
    """Conversations whose figures count for ``actor`` (no @mention widening)."""
    in_team = model.team == actor.team_id
    agents = visible_agent_ids(actor)
    if agents is None:
        return in_team
    return in_team & model.handler.in_(agents)


def can_see_conversation(actor: Agent, conversation: Conversation) -> bool:
    return (
        Conversation.select(Conversation.id)
        .where(Conversation.id == conversation.id, conversation_filter(actor))
        .exists()
    )


def get_conversation(actor: Agent, conversation_id: int) -> Conversation:
    """Load a conversation the actor may see, or raise NotFound."""
    conversation = (
        Conversation.select()
        .where(Conversation.id == conversation_id, conversation_filter(actor))
        .first()
    )
    if conversation is None:
        raise NotFound("no such conversation")
    return conversation


def ticket_filter(actor: Agent, model: Any = Ticket) -> peewee.Expression:
    """A WHERE clause limiting tickets to those the actor may see (``ticket_visible``'s
    rule, in SQL).

    A ticket carries a customer's contact and its conversation's transcript, so it
    is no shared pool: an unassigned ticket belongs to its group, else to its
    conversation's handler or group; one with none of these is for admins and
    ``all`` agents to triage (docs/security.md §1).
    """
    in_team = model.team == actor.team_id
    agents = visible_agent_ids(actor)
    if agents is None:
        return in_team
    groups = visible_group_ids(actor) or set()
    unassigned = model.assignee.is_null()
    owned_conversations = Conversation.select(Conversation.id).where(
        Conversation.team == actor.team_id,
        Conversation.handler.in_(agents)
        | (Conversation.handler.is_null()
           & (Conversation.group.in_(groups) if groups else False)))
    scoped = (
        model.assignee.in_(agents)
        | (unassigned & (model.group.in_(groups) if groups else False))
        | (unassigned & model.group.is_null()
           & model.conversation.in_(owned_conversations))
    )
    return in_team & scoped


def ticket_scope_facts(ticket: Ticket) -> dict[str, int | None]:
    """What ``ticket_visible`` needs of a ticket, as ticket events carry it to sockets."""
    handler = group = None
    if ticket.conversation_id is not None:
        row = (Conversation.select(Conversation.handler, Conversation.group)
               .where(Conversation.id == ticket.conversation_id).first())
        if row is not None:
            handler, group = row.handler_id, row.group_id
    return {"assignee_id": ticket.assignee_id, "group_id": ticket.group_id,
            "conversation_handler_id": handler, "conversation_group_id": group}


def ticket_visible(agents: set[int] | None, groups: set[int] | None,
                   facts: dict[str, Any]) -> bool:
    """The ticket rule on a ticket's facts (``ticket_scope_facts``), for agent sockets.

    ``agents``/``groups``: ``visible_agent_ids``/``visible_group_ids`` of the
    viewer (None: the whole team). The assignee decides; an unassigned ticket
    goes by its group, then by its conversation's handler, then by that
    conversation's group; nothing of that: admins and ``all`` agents only.
    ``ticket_filter`` says the same in SQL (a test holds them equal).
    """
    if agents is None:
        return True
    groups = groups or set()
    if facts.get("assignee_id") is not None:
        return facts["assignee_id"] in agents
    if facts.get("group_id") is not None:
        return facts["group_id"] in groups
    if facts.get("conversation_handler_id") is not None:
        return facts["conversation_handler_id"] in agents
    group = facts.get("conversation_group_id")
    return group is not None and group in groups


def can_see_ticket(actor: Agent, ticket_id: int) -> bool:
    return Ticket.select(Ticket.id).where(Ticket.id == ticket_id,
                                          ticket_filter(actor)).exists()


def get_ticket(actor: Agent, ticket_id: int) -> Ticket:
    ticket = Ticket.select().where(Ticket.id == ticket_id, ticket_filter(actor)).first()
    if ticket is None:
        raise NotFound("no such ticket")
    return ticket


def can_see_agent(actor: Agent, agent_id: int) -> bool:
    agents = visible_agent_ids(actor)
    return agents is None or agent_id in agents
