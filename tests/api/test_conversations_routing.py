"""Routing (DESIGN §4) on SQLite and PostgreSQL: least-loaded first with
round-robin ties, only online agents with room, and the head of the queue
assigned at once when a place frees by a transfer or an agent coming online
(his status, or his workspace socket when his status was kept online)."""

from __future__ import annotations

import pytest

from meiqia.models import Agent
from meiqia.models import Conversation
from tests.api.test_conversations import start
from tests.ws.conftest import Socket
from tests.ws.conftest import cookie_of


@pytest.fixture
def team(db_api):
    return db_api.without_bot()


def agent(api, name, limit, status="online", **fields):
    created = api.new_agent(max_concurrent=limit, name=name, email=f"{name}@example.com",
                            **fields)
    if status != "offline":
        created.patch(f"/api/v1/agents/{created.agent['id']}", json={"status": status})
        created.workspace_open()
    return created


def handler_of_next(api):
    cid = start(api.app, api.team["id"])[2]
    conversation = Conversation.get_by_id(cid)
    return conversation.handler_id, cid


def test_least_loaded_first_ties_in_round_robin(team):
    clients = [agent(team, name, 3) for name in ("a", "b", "c")]
    a, b, c = (x.agent["id"] for x in clients)
    agent(team, "invisible", 3, status="invisible")
    agent(team, "no-auto", 0)
    agent(team, "away", 3, status="offline")
    # All free and never given one: in the order they joined, then round robin.
    got = [handler_of_next(team) for _ in range(4)]
    assert [h for h, _ in got] == [a, b, c, a]
    # Loads a=2, b=1, c=1: b and c tie; b had his last one longest ago.
    assert handler_of_next(team)[0] == b
    # Loads a=2, b=2, c=1: c is least loaded.
    assert handler_of_next(team)[0] == c
    # c ends one (loads a=2, b=2, c=1): c again, though he had the last one.
    c_open = Conversation.select().where(Conversation.handler == c,
                                         Conversation.status == "open").first()
    assert clients[2].post(f"/api/v1/conversations/{c_open.id}/end").status_code == 200
    assert handler_of_next(team)[0] == c
    # All at 2: round robin again, a (his last one is the oldest), then b, then c.
    assert [handler_of_next(team)[0] for _ in range(3)] == [a, b, c]
    # Full (3 each): the next one waits; invisible, offline and limit-0 agents got none.
    assert Conversation.get_by_id(handler_of_next(team)[1]).status == "queued"
    others = Agent.select(Agent.id).where(Agent.id.not_in([a, b, c]))
    assert Conversation.select().where(Conversation.handler.in_(others)).count() == 0


def test_a_transfer_that_frees_a_place_assigns_the_head_of_the_queue(team):
    li = agent(team, "li", 1)
    supervisor = agent(team, "supervisor", 0, scope="all")
    first = start(team.app, team.team["id"])[2]
    head = start(team.app, team.team["id"])[2]
    behind = start(team.app, team.team["id"])[2]
    assert [Conversation.get_by_id(c).status for c in (first, head, behind)] \
        == ["open", "queued", "queued"]
    moved = li.post(f"/api/v1/conversations/{first}/transfer",
                    json={"agent_id": supervisor.agent["id"]})
    assert moved.status_code == 200, moved.get_json()
    assert Conversation.get_by_id(head).handler_id == li.agent["id"]
    assert Conversation.get_by_id(behind).status == "queued"
    assert li.get(f"/api/v1/conversations/{behind}").get_json()["queue_position"] == 1


def test_an_agent_coming_online_takes_the_head_of_the_queue(team):
    agent(team, "li", 1)
    wang = agent(team, "wang", 1, status="offline")
    start(team.app, team.team["id"])
    head = start(team.app, team.team["id"])[2]
    behind = start(team.app, team.team["id"])[2]
    # Invisible is not online: nothing moves.
    wang.patch(f"/api/v1/agents/{wang.agent['id']}", json={"status": "invisible"})
    assert Conversation.get_by_id(head).status == "queued"
    wang.go_online()
    assert Conversation.get_by_id(head).handler_id == wang.agent["id"]
    assert Conversation.get_by_id(behind).status == "queued"


def test_an_online_agent_opening_his_socket_takes_the_head_of_the_queue(team):
    """His status stayed ``online`` with no socket (e.g. across a restart, or the
    limit raised straight in the database): opening the workspace assigns the
    queue head without waiting for his next status change."""
    from tests.ws.conftest import LiveServer

    agent(team, "li", 1)
    zhou = agent(team, "zhou", 1, status="offline")
    start(team.app, team.team["id"])
    head = start(team.app, team.team["id"])[2]
    Agent.update(status="online").where(Agent.id == zhou.agent["id"]).execute()
    assert Conversation.get_by_id(head).status == "queued"
    live = LiveServer(team.app)
    try:
        socket = Socket(live.url("/ws/agent"), cookie_of(zhou))
        socket.expect("hello")
        socket.expect("assigned", where=lambda d: d["conversation_id"] == head)
        assert Conversation.get_by_id(head).handler_id == zhou.agent["id"]
        socket.close()
    finally:
        Socket.close_all()
        live.stop()
