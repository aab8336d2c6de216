"""The permission matrix: each scope sees exactly the conversations it should."""

from __future__ import annotations

import pytest

from meiqia.models import Agent
from meiqia.models import AgentGroup
from meiqia.models import Conversation
from meiqia.models import Group
from meiqia.models import Mention
from meiqia.models import ScopeGrant
from meiqia.models import Team
from meiqia.models import Ticket
from meiqia.models import Visitor
from meiqia.services import permissions
from meiqia.services.errors import NotFound


@pytest.fixture
def world(db_app):
    """Two groups (售前, 售后), five agents, one conversation handled by each,
    one unassigned, one routed to 售后 but unassigned, and another team's."""
    team = Team.create(name="甲")
    other_team = Team.create(name="乙")
    pre = Group.create(team=team, name="售前")
    post = Group.create(team=team, name="售后")

    def agent(name, scope="self", role="agent", groups=(), t=team):
        a = Agent.create(team=t, email=f"{name}@x.cn", name=name, password_hash="x",
                         role=role, scope=scope)
        for g in groups:
            AgentGroup.create(agent=a, group=g)
        return a

    people = {
        "admin": agent("admin", role="admin", scope="self"),
        "all": agent("all", scope="all"),
        "pre1": agent("pre1", scope="groups", groups=[pre]),
        "pre2": agent("pre2", scope="self", groups=[pre]),
        "post1": agent("post1", scope="self", groups=[post]),
        "custom": agent("custom", scope="custom"),
        "outsider": agent("outsider", scope="all", t=other_team),
    }
    ScopeGrant.create(agent=people["custom"], target_agent=people["post1"])
    ScopeGrant.create(agent=people["custom"], target_group=pre)
    visitor = Visitor.create(team=team, uid="v1")
    convs = {}
    for key in ("pre1", "pre2", "post1", "admin"):
        convs[key] = Conversation.create(team=team, visitor=visitor, status="open",
                                         handler=people[key])
    convs["pool"] = Conversation.create(team=team, visitor=visitor, status="queued")
    convs["post_pool"] = Conversation.create(team=team, visitor=visitor, status="queued",
                                             group=post)
    other_visitor = Visitor.create(team=other_team, uid="v2")
    convs["other"] = Conversation.create(team=other_team, visitor=other_visitor,
                                         status="open", handler=people["outsider"])
    return people, convs


EXPECTED = {
    # admins and scope "all" see the whole team (never another team)
    "admin": {"pre1", "pre2", "post1", "admin", "pool", "post_pool"},
    "all": {"pre1", "pre2", "post1", "admin", "pool", "post_pool"},
    # groups: his group's agents, the team pool, nothing routed to other groups
    "pre1": {"pre1", "pre2", "pool"},
    # self: his own and the shared pool
    "pre2": {"pre2", "pool"},
    "post1": {"post1", "pool"},
    # custom: post1 by name, the 售前 group's agents, and 售前-routed pool
    "custom": {"post1", "pre1", "pre2", "pool"},
    "outsider": {"other"},
}


@pytest.mark.parametrize("who", sorted(EXPECTED))
def test_each_scope_sees_exactly_its_conversations(world, who):
    people, convs = world
    names = {v.id: k for k, v in convs.items()}
    seen = {
        names[c.id]
        for c in Conversation.select().where(permissions.conversation_filter(people[who]))
    }
    assert seen == EXPECTED[who]
    for key, conv in convs.items():
        assert permissions.can_see_conversation(people[who], conv) == (key in EXPECTED[who])


def test_out_of_scope_is_404_not_403(world):
    people, convs = world
    with pytest.raises(NotFound):
        permissions.get_conversation(people["pre2"], convs["post1"].id)
    with pytest.raises(NotFound):
        permissions.get_conversation(people["all"], convs["other"].id)
    assert permissions.get_conversation(people["pre1"], convs["pre2"].id).id == convs["pre2"].id


def test_mention_widens_conversations_but_not_figures(world):
    people, convs = world
    Mention.create(conversation=convs["post1"], message_id=1, agent=people["pre2"],
                   by_agent=people["post1"])
    assert permissions.can_see_conversation(people["pre2"], convs["post1"])
    figures = Conversation.select().where(permissions.figures_filter(people["pre2"]))
    assert {c.id for c in figures} == {convs["pre2"].id}


#: Figures count the conversations of the agents one may see; whole-team scopes count
#: the unassigned ones too. The pool is shared for reading, not credited to anyone.
FIGURES_EXPECTED = {
    "admin": {"pre1", "pre2", "post1", "admin", "pool", "post_pool"},
    "all": {"pre1", "pre2", "post1", "admin", "pool", "post_pool"},
    "pre1": {"pre1", "pre2"},
    "pre2": {"pre2"},
    "post1": {"post1"},
    "custom": {"post1", "pre1", "pre2"},
    "outsider": {"other"},
}


@pytest.mark.parametrize("who", sorted(FIGURES_EXPECTED))
def test_figures_scope_counts_only_visible_handlers(world, who):
    people, convs = world
    names = {v.id: k for k, v in convs.items()}
    seen = {names[c.id] for c in
            Conversation.select().where(permissions.figures_filter(people[who]))}
    assert seen == FIGURES_EXPECTED[who]


def test_tickets_follow_the_same_scopes(world):
    people, convs = world
    team = people["admin"].team
    mine = Ticket.create(team=team, source="agent_created", content="退款", assignee=people["pre2"])
    theirs = Ticket.create(team=team, source="agent_created", content="发票", assignee=people["post1"])
    pool = Ticket.create(team=team, source="no_agent_online", content="留言")
    seen = {t.id for t in Ticket.select().where(permissions.ticket_filter(people["pre2"]))}
    assert seen == {mine.id, pool.id}
    with pytest.raises(NotFound):
        permissions.get_ticket(people["pre2"], theirs.id)
    assert permissions.get_ticket(people["pre1"], mine.id).id == mine.id
