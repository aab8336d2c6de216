"""Queue positions pushed over the visitor socket whenever a conversation leaves
its queue (taken or transferred by hand, ended, left for a ticket, assigned),
counted per queue: the team's general queue and each group's."""

from __future__ import annotations

import pytest

from meiqia.models import Conversation
from tests.api.test_conversations import start
from tests.api.test_conversations import vpost
from tests.ws.conftest import Socket


@pytest.fixture
def team(api):
    return api.without_bot()


def online(api, limit=1, **fields):
    return api.online_agent(limit, **fields)


def queued(api, live):
    """A new visitor who has to wait: (client, token, conversation id, socket)."""
    client, token, cid, data = start(api.app, api.team["id"])
    assert data["conversation"]["status"] == "queued"
    socket = Socket(live.url(f"/ws/visitor?token={token}"))
    socket.expect("hello")
    return client, token, cid, socket


def moves_to(socket, position):
    return socket.expect("conversation", where=lambda d: d.get("queue_position") == position
                         and d["status"] == "queued")


def test_positions_move_up_when_a_queued_conversation_is_taken_ended_or_transferred(team, live):
    online(team, email="li@example.com", name="李客服")
    supervisor = team.new_agent(email="sup@example.com", name="主管", max_concurrent=0,
                                scope="all")
    supervisor.go_online()  # limit 0: routing gives him nothing; a transfer needs him there
    start(team.app, team.team["id"])  # li's one place
    a, b, c, d = (queued(team, live) for _ in range(4))

    # The admin takes the head of the queue by hand ("take" is a transfer to himself).
    taken = team.post(f"/api/v1/conversations/{a[2]}/transfer",
                      json={"agent_id": team.agent["id"], "accept_over_limit": True})
    assert taken.status_code == 200, taken.get_json()
    moves_to(b[3], 1)
    moves_to(c[3], 2)
    moves_to(d[3], 3)

    # An agent ends a conversation that is still waiting.
    assert team.post(f"/api/v1/conversations/{b[2]}/end").status_code == 200
    moves_to(c[3], 1)
    moves_to(d[3], 2)

    # A waiting conversation transferred to a colleague who takes no automatic ones.
    moved = team.post(f"/api/v1/conversations/{c[2]}/transfer",
                      json={"agent_id": supervisor.agent["id"]})
    assert moved.status_code == 200, moved.get_json()
    moves_to(d[3], 1)
    assert Conversation.get_by_id(d[2]).status == "queued"


def test_leaving_a_message_instead_of_waiting_moves_the_others_up(team, live):
    online(team)
    start(team.app, team.team["id"])
    first, second = queued(team, live), queued(team, live)
    client, token, cid, _socket = first
    left = vpost(client, token, "/api/v1/widget/tickets", json={
        "conversation_id": cid, "content": "不等了，请回电", "name": "张三",
        "phone": "13800138000"})
    assert left.status_code == 201, left.get_json()
    moves_to(second[3], 1)


def test_each_group_has_its_own_queue(team, live):
    group = team.post("/api/v1/groups", json={"name": "售后组"}).get_json()
    online(team, email="li@example.com", name="李客服")
    online(team, email="wang@example.com", name="王客服", groups=[group["id"]])
    start(team.app, team.team["id"])
    start(team.app, team.team["id"])  # both agents full
    general = [queued(team, live) for _ in range(2)]
    for_group = queued(team, live)
    assert Conversation.get_by_id(for_group[2]).group_id is None
    # Transferred to the group: first in the group's queue, whatever the team's queue holds.
    moved = team.post(f"/api/v1/conversations/{for_group[2]}/transfer",
                      json={"group_id": group["id"]})
    assert moved.status_code == 200 and moved.get_json()["status"] == "queued"
    assert moves_to(for_group[3], 1)["data"]["group_id"] == group["id"]
    assert team.get(f"/api/v1/conversations/{for_group[2]}").get_json()["queue_position"] == 1
    # A second one for the group queues behind it there, and the general queue
    # does not count either of them.
    other = queued(team, live)
    team.post(f"/api/v1/conversations/{other[2]}/transfer", json={"group_id": group["id"]})
    moves_to(other[3], 2)
    states = [vpost(x[0], x[1], f"/api/v1/widget/conversations/{x[2]}/human").get_json()
              for x in general]
    assert [s["queue_position"] for s in states] == [1, 2]
    # The general head ends: the second general one moves up; the group's stay.
    team.post(f"/api/v1/conversations/{general[0][2]}/end")
    moves_to(general[1][3], 1)
    assert for_group[3].quiet("conversation", 0.5,
                              where=lambda d: d.get("queue_position") not in (None, 1))
