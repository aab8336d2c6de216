"""Who may see what: the one place every endpoint asks (DESIGN §3).

An agent's permission scope decides whose conversations, tickets and figures he
sees: ``self`` (his own), ``groups`` (those of agents in his groups and of
conversations routed to his groups), ``all`` (the whole team) or ``custom`` (an
explicit list of agents and groups). Admins always see the whole team.
Conversations without a handler (with the bot, or queued) are the team's shared
pool and visible to every agent of the team, unless routed to a group he
cannot see. A conversation in which an agent was @mentioned is visible to him.

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


def _scoped(actor: Agent, model: Any, owner: Any) -> peewee.Expression | None:
    """Rows of the team whose ``owner`` the actor sees, or that nobody owns yet and
    are not routed to a group he cannot see; None when he sees the whole team."""
    agents = visible_agent_ids(actor)
    if agents is None:
        return None
    groups = visible_group_ids(actor) or set()
    unassigned = owner.is_null() & (
        model.group.is_null() | (model.group.in_(groups) if groups else False)
    )
    return owner.in_(agents) | unassigned


def conversation_filter(actor: Agent, model: Any = Conversation) -> peewee.Expression:
    """A WHERE clause limiting ``Conversation`` rows to what ``actor`` may see."""
    in_team = model.team == actor.team_id
    scoped = _scoped(actor, model, model.handler)
    if scoped is None:
        return in_team
    mentioned = model.id.in_(
        Mention.select(Mention.conversation).where(Mention.agent == actor.id)
    )
    return in_team & (scoped | mentioned)


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
    """A WHERE clause limiting tickets to those the actor may see.

    Unassigned tickets are the team's shared pool, like unassigned conversations.
    """
    in_team = model.team == actor.team_id
    scoped = _scoped(actor, model, model.assignee)
    return in_team if scoped is None else in_team & scoped


def get_ticket(actor: Agent, ticket_id: int) -> Ticket:
    ticket = Ticket.select().where(Ticket.id == ticket_id, ticket_filter(actor)).first()
    if ticket is None:
        raise NotFound("no such ticket")
    return ticket


def can_see_agent(actor: Agent, agent_id: int) -> bool:
    agents = visible_agent_ids(actor)
    return agents is None or agent_id in agents
