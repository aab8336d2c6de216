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
    assert seen == {mine.id}  # no shared pool of tickets: the admin triages ``pool``
    assert permissions.get_ticket(people["admin"], pool.id).id == pool.id
    with pytest.raises(NotFound):
        permissions.get_ticket(people["pre2"], theirs.id)
    assert permissions.get_ticket(people["pre1"], mine.id).id == mine.id


def test_ticket_rule_in_sql_and_on_socket_facts_agree(world):
    """Every shape of ticket (assigned to each agent or nobody, with each group or
    none, from each conversation or none): ``ticket_filter`` (lists, pages, search)
    and ``ticket_visible`` (socket events) decide the same for every agent."""
    people, convs = world
    team = people["admin"].team
    pre, post = Group.get(Group.name == "售前"), Group.get(Group.name == "售后")
    assignees = [None, people["pre1"], people["pre2"], people["post1"], people["admin"]]
    conversations = [None, *(convs[k] for k in ("pre1", "post1", "pool", "post_pool"))]
    made = [Ticket.create(team=team, source="agent_created", content="留言", assignee=a,
                          group=g, conversation=c)
            for a in assignees for g in (None, pre, post) for c in conversations]
    for who in ("admin", "all", "pre1", "pre2", "post1", "custom"):
        actor = people[who]
        in_sql = {t.id for t in Ticket.select().where(permissions.ticket_filter(actor))}
        agents = permissions.visible_agent_ids(actor)
        groups = permissions.visible_group_ids(actor)
        on_facts = {t.id for t in made if permissions.ticket_visible(
            agents, groups, permissions.ticket_scope_facts(t))}
        assert in_sql == on_facts, who
        assert in_sql == {t.id for t in made if permissions.can_see_ticket(actor, t.id)}
    # the rule's cases, for pre2 (self, in 售前) and pre1 (groups: 售前)
    def seen(who, **kw):
        ticket = Ticket.create(team=team, source="no_agent_online", content="x", **kw)
        return permissions.can_see_ticket(people[who], ticket.id)

    assert seen("pre2", assignee=people["pre2"])
    assert not seen("pre2", assignee=people["post1"], conversation=convs["pre2"])
    assert seen("pre2", conversation=convs["pre2"])          # his conversation's ticket
    assert not seen("pre2", conversation=convs["post1"])     # someone else's conversation
    assert not seen("pre2", conversation=convs["pool"])      # no shared pool of tickets
    assert not seen("pre2")
    assert seen("pre1", group=pre) and not seen("pre2", group=pre)
    assert not seen("pre1", group=post, conversation=convs["pre1"])  # the group decides
    assert seen("post1", conversation=convs["post1"])
    assert not seen("post1", conversation=convs["post_pool"])  # self: not his group's pool
    assert seen("all") and seen("admin")
    assert not seen("outsider", assignee=None)
