"""The routing race (DESIGN §4), on SQLite and on PostgreSQL.

Many visitors arrive at once (threads, each its own database connection)
against agents with small limits, while agents end conversations and raise
limits at the same time. Afterwards, and in every state event published on the
way: no agent over his limit, no conversation ever given two handlers, and the
queue positions are 1..n in arrival order.
"""

from __future__ import annotations

import threading
from collections import defaultdict

import pytest

from meiqia.models import Conversation
from tests.api.test_conversations import start
from tests.helpers import AGENT_PASSWORD
from tests.helpers import ApiClient

LIMITS = (1, 2, 2)
VISITORS = 20


def run_all(targets: list) -> list[BaseException]:
    """Start every callable at once (a barrier), wait, and return their errors."""
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(targets))

    def wrap(target):
        def run():
            try:
                barrier.wait(timeout=30)
                target()
            except BaseException as exc:  # noqa: BLE001 - collected for the assert
                errors.append(exc)
        return run

    threads = [threading.Thread(target=wrap(t)) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    return errors


def check_invariants(agents: dict[int, int]) -> None:
    open_rows = list(Conversation.select().where(Conversation.status == "open"))
    load = defaultdict(int)
    for c in open_rows:
        assert c.handler_id is not None
        load[c.handler_id] += 1
    for agent_id, limit in agents.items():
        assert load[agent_id] <= limit, (agent_id, load[agent_id], limit)
    queued = list(Conversation.select().where(Conversation.status == "queued")
                  .order_by(Conversation.queued_at, Conversation.id))
    assert all(c.handler_id is None for c in queued)
    from meiqia.services import routing

    assert [routing.queue_position(c) for c in queued] == list(range(1, len(queued) + 1))
    # Nobody waits while an agent has room.
    if queued:
        assert all(load[a] == limit for a, limit in agents.items())


@pytest.fixture
def team(db_api):
    db_api.patch("/api/v1/team", json={"settings": {"bot_enabled": False}})
    agents = {}
    clients = []
    for n, limit in enumerate(LIMITS):
        a = db_api.new_agent(max_concurrent=limit, email=f"a{n}@example.com", name=f"客服{n}")
        a.go_online()
        agents[a.agent["id"]] = limit
        clients.append(a)
    hub = db_api.app.extensions["meiqia.hub"]
    sub = hub.subscribe([f"team:{db_api.team['id']}"])
    yield db_api, agents, clients, sub
    sub.close()


def handlers_seen(sub) -> dict[int, set[int]]:
    """Every handler each conversation was announced with, from the state events."""
    seen: dict[int, set[int]] = defaultdict(set)
    for _topic, event in sub.drain():
        data = event["data"]
        if event["type"] == "conversation" and data.get("handler"):
            seen[data["conversation_id"]].add(data["handler"]["id"])
    return seen


def test_many_visitors_at_once_never_exceed_limits(team):
    api, agents, _clients, sub = team
    app = api.app
    statuses: list[str] = []

    def visitor():
        with app.app_context():
            statuses.append(start(app, api.team["id"])[3]["conversation"]["status"])

    errors = run_all([visitor] * VISITORS)
    assert errors == []
    assert len(statuses) == VISITORS
    capacity = sum(LIMITS)
    assert statuses.count("open") == capacity
    assert statuses.count("queued") == VISITORS - capacity
    check_invariants(agents)
    seen = handlers_seen(sub)
    assert len(seen) == capacity
    assert all(len(handlers) == 1 for handlers in seen.values()), seen


def test_places_freeing_while_visitors_arrive(team):
    """Ends, a raised limit and new visitors race; the queue head always goes first."""
    api, agents, clients, sub = team
    app = api.app
    with app.app_context():
        for _ in range(VISITORS):
            start(app, api.team["id"])
    check_invariants(agents)
    waiting = [c.id for c in Conversation.select().where(Conversation.status == "queued")
               .order_by(Conversation.queued_at, Conversation.id)]
    by_agent = {c.agent["id"]: c for c in clients}
    to_end = [(by_agent[c.handler_id], c.id) for c in
              Conversation.select().where(Conversation.status == "open")]
    sub.drain()

    def ender(agent_client, cid):
        client = ApiClient(app)  # a client of its own per thread
        assert client.login(agent_client.agent["email"], AGENT_PASSWORD).status_code == 200

        def run():
            response = client.post(f"/api/v1/conversations/{cid}/end")
            assert response.status_code == 200, response.get_json()
        return run

    def newcomer():
        with app.app_context():
            start(app, api.team["id"])

    first = clients[0].agent["id"]

    def raise_limit():
        response = api.patch(f"/api/v1/agents/{first}", json={"max_concurrent": 3})
        assert response.status_code == 200, response.get_json()

    errors = run_all([ender(c, cid) for c, cid in to_end] + [newcomer] * 4 + [raise_limit])
    assert errors == []
    agents[first] = 3
    check_invariants(agents)
    # Freed places went to those who waited longest (the newcomers queued behind).
    now_open = {c.id for c in Conversation.select().where(Conversation.status == "open")}
    assert now_open == set(waiting[:sum(agents.values())])
    assert all(len(h) == 1 for h in handlers_seen(sub).values())


@pytest.mark.parametrize("round_", range(5))
def test_two_agents_taking_one_queued_conversation(team, round_):
    """Both press "take" (a transfer to themselves, over their limit) at the same
    moment: one gets it; the other a 409 naming who did, or a 404 when the winner had
    already committed and the conversation left his scope; never two handlers."""
    api, agents, clients, sub = team
    app = api.app
    with app.app_context():
        for _ in range(sum(LIMITS) + 1):
            start(app, api.team["id"])
    waiting = Conversation.get(Conversation.status == "queued")
    sub.drain()
    takers = clients[1:]
    answers: dict[int, tuple[int, dict]] = {}

    def take(agent_client):
        client = ApiClient(app)  # a connection of its own per thread
        assert client.login(agent_client.agent["email"], AGENT_PASSWORD).status_code == 200

        def run():
            response = client.post(f"/api/v1/conversations/{waiting.id}/transfer", json={
                "agent_id": agent_client.agent["id"], "accept_over_limit": True})
            answers[agent_client.agent["id"]] = (response.status_code, response.get_json())
        return run

    assert run_all([take(c) for c in takers]) == []
    codes = sorted(code for code, _ in answers.values())
    assert codes in ([200, 404], [200, 409]), answers
    winner = next(agent for agent, (code, _) in answers.items() if code == 200)
    loser = next(body for code, body in answers.values() if code != 200)
    if codes == [200, 409]:
        assert "took this conversation a moment ago" in loser["error"]["message"]
    assert Conversation.get_by_id(waiting.id).handler_id == winner
    assert handlers_seen(sub).get(waiting.id, {winner}) == {winner}


@pytest.mark.parametrize("round_", range(3))
def test_one_visitor_opening_tabs_at_once_gets_one_conversation(db_api, round_):
    """A returning visitor (token kept, last chat ended) opens several tabs at the same
    moment: every tab resumes the one new conversation, none starts a second."""
    from meiqia.services import conversations

    app = db_api.app
    with app.app_context():
        _client, token, first, _ = start(app, db_api.team["id"])
        conversations.system_end(first, "test")
    opened: list[int] = []

    def tab():
        client = app.test_client()
        response = client.post("/api/v1/widget/session", json={
            "team_id": db_api.team["id"], "token": token})
        assert response.status_code == 200, response.get_json()
        opened.append(response.get_json()["conversation"]["conversation_id"])

    assert run_all([tab] * 6) == []
    assert len(set(opened)) == 1 and opened[0] != first
    active = Conversation.select().where(Conversation.status != "ended")
    assert [c.id for c in active] == [opened[0]]


def _queue_for_batches(agent_limits: list[int], waiting: int, group_members: int = 0):
    """A team, agents online with live workspaces and the given limits, and
    ``waiting`` queued conversations (the last ``group_members`` of the agents
    form a group; every third conversation waits in that group's queue)."""
    import datetime

    from meiqia.models import Agent
    from meiqia.models import AgentGroup
    from meiqia.models.base import utcnow
    from meiqia.services import presence
    from tests.factories import make_agent
    from tests.factories import make_conversation
    from tests.factories import make_group
    from tests.factories import make_team
    from tests.factories import make_visitor

    team = make_team()
    agents = []
    for n, limit in enumerate(agent_limits):
        agent = make_agent(team, f"客服{n}", max_concurrent=limit)
        Agent.update(status="online").where(Agent.id == agent.id).execute()
        presence.agent_connected(Agent.get_by_id(agent.id))
        agents.append(Agent.get_by_id(agent.id))
    group = make_group(team) if group_members else None
    for agent in agents[len(agents) - group_members:] if group_members else []:
        AgentGroup.create(agent=agent.id, group=group.id)
    start = utcnow() - datetime.timedelta(minutes=10)
    conversations = []
    for n in range(waiting):
        in_group = group is not None and n % 3 == 2
        conversations.append(make_conversation(
            team, make_visitor(team, f"访客{n}"), status="queued",
            queued_at=start + datetime.timedelta(seconds=n),
            group=group.id if in_group else None))
    return team, agents, group, conversations


def test_one_pass_assigns_past_a_batch_by_the_same_rules(db_app):
    """More waiting than one batch: every assignable conversation is given in
    queue order, least-loaded first, nobody past his limit, a group's queue
    only to its members, each announced once to its visitor."""
    from meiqia.models import Message
    from meiqia.services import routing

    limits = [40, 30, 5]
    team, agents, group, waiting = _queue_for_batches(limits, 120, group_members=1)
    assigned = routing.assign_waiting(team.id)

    rows = {c.id: c for c in Conversation.select()}
    loads = defaultdict(int)
    for c in rows.values():
        if c.status == "open":
            loads[c.handler_id] += 1
    assert sum(loads.values()) == len(assigned) > routing.BATCH
    limit_of = {a.id: limit for a, limit in zip(agents, limits, strict=True)}
    for agent_id, load in loads.items():
        assert load <= limit_of[agent_id]
    member = agents[-1].id
    full = {a for a, limit in limit_of.items() if loads[a] >= limit}
    for c in waiting:
        row = rows[c.id]
        if row.status == "open" and row.group_id == group.id:
            assert row.handler_id == member
        if row.status == "queued":  # left only when nobody who may take it is free
            assert (member in full) if row.group_id else (set(limit_of) <= full)
    # Queue order: a general conversation left waiting is younger than every
    # general one given.
    general_given = [c.id for c in waiting if not c.group_id and rows[c.id].status == "open"]
    general_left = [c.id for c in waiting if not c.group_id and rows[c.id].status == "queued"]
    assert not general_left or max(general_given) < min(general_left)
    per_conversation = defaultdict(int)
    for m in Message.select().where(Message.kind == "event"):
        if (m.payload or {}).get("event") == "handover":
            per_conversation[m.conversation_id] += 1
    assert set(per_conversation) == {c.id for c in assigned}
    assert set(per_conversation.values()) == {1}


@pytest.mark.parametrize("round_", range(3))
def test_callers_at_once_share_passes_and_give_each_conversation_once(db_app, round_):
    """Twenty threads ask for assignment at the same instant (as twenty first
    messages do); their passes coalesce, and still each conversation gets one
    handler and one handover line, and no agent passes his limit."""
    from meiqia.db import connection
    from meiqia.models import Message
    from meiqia.services import routing

    limits = [7, 7, 6]
    team, agents, _, waiting = _queue_for_batches(limits, 25)
    results: list[list] = []

    def ask():
        with db_app.app_context(), connection():
            results.append(routing.assign_waiting(team.id))

    errors = run_all([ask] * 20)
    assert not errors, errors
    given = [c.id for batch in results for c in batch]
    assert len(given) == len(set(given)) == 20
    check_invariants(dict(zip([a.id for a in agents], limits, strict=True)))
    handovers = defaultdict(int)
    for m in Message.select().where(Message.kind == "event"):
        if (m.payload or {}).get("event") == "handover":
            handovers[m.conversation_id] += 1
    assert set(handovers) == set(given)
    assert set(handovers.values()) == {1}
