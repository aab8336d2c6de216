"""A lifecycle the visitor can follow and the figures that count it (issue 14):
bot-only chats end by themselves, "missed" and "solved by the bot" follow
docs/history.md, and a returning visitor sees his earlier conversation.
Time is moved through the data, never by sleeping."""

from __future__ import annotations

import datetime
from zoneinfo import ZoneInfo

import pytest

from meiqia.models import Conversation
from meiqia.services import inactivity
from tests.api.test_conversations import start
from tests.api.test_conversations import vpost
from tests.api.test_conversations_inactivity import quiet_for
from tests.helpers import new_client_id


@pytest.fixture
def team(db_api):
    created = db_api.post("/api/v1/knowledge", json={
        "key": "weekend-ship", "questions": ["周末发货吗", "周六周日发不发货"],
        "answer": "周末照常发货。"})
    assert created.status_code == 201, created.get_json()
    return db_api


def say(client, token, cid, body):
    response = vpost(client, token, f"/api/v1/widget/conversations/{cid}/messages",
                     json={"body": body, "client_msg_id": new_client_id()})
    assert response.status_code == 201, response.get_json()


def test_bot_chats_end_after_thirty_quiet_minutes_by_default(team):
    client, token, cid, data = start(team.app, team.team["id"])
    assert data["conversation"]["status"] == "bot"
    say(client, token, cid, "周末发货吗")
    assert team.get("/api/v1/dashboard").get_json()["now"]["active"] == 1
    quiet_for(cid, 29)
    assert inactivity.sweep() == 0
    quiet_for(cid, 31)
    assert inactivity.sweep() == 1
    ended = Conversation.get_by_id(cid)
    assert (ended.status, ended.end_reason) == ("ended", "inactivity")
    assert ended.bot_resolved and not ended.is_missed
    assert team.get("/api/v1/dashboard").get_json()["now"]["active"] == 0


def test_the_bot_idle_end_is_a_team_rule(team):
    rules = team.get("/api/v1/conversation-rules").get_json()
    assert rules["bot_inactivity_minutes"] == 30
    changed = team.put("/api/v1/conversation-rules", json={"bot_inactivity_minutes": 0})
    assert changed.status_code == 200 and changed.get_json()["bot_inactivity_minutes"] == 0
    _client, _token, cid, _ = start(team.app, team.team["id"])
    quiet_for(cid, 600)
    assert inactivity.sweep() == 0  # 0 follows inactivity_minutes, which is 0: never
    team.put("/api/v1/conversation-rules", json={"bot_inactivity_minutes": 10})
    assert inactivity.sweep() == 1
    assert team.put("/api/v1/conversation-rules",
                    json={"bot_inactivity_minutes": -1}).status_code == 422


def test_missed_and_solved_by_the_bot_follow_the_definitions(team):
    # 1. The bot answered and he never asked for a person: solved by the bot.
    c1, t1, solved, _ = start(team.app, team.team["id"])
    say(c1, t1, solved, "周末发货吗")
    # 2. He asked for a human in the team's off hours (nobody online): missed.
    c2, t2, asked, _ = start(team.app, team.team["id"])
    say(c2, t2, asked, "周末发货吗")
    offer = vpost(c2, t2, f"/api/v1/widget/conversations/{asked}/human").get_json()
    assert offer["outcome"] == "nobody"
    # 3. He left a message from a bot chat: not solved by the bot.
    c3, t3, left, _ = start(team.app, team.team["id"])
    say(c3, t3, left, "周末发货吗")
    ticket = vpost(c3, t3, "/api/v1/widget/tickets", json={
        "conversation_id": left, "content": "请回电", "name": "张三", "phone": "13800138000"})
    assert ticket.status_code == 201, ticket.get_json()
    # 4. Served by an agent who answered: neither.
    li = team.online_agent(2, email="li@example.com", name="李客服")
    c4, t4, served, _ = start(team.app, team.team["id"])
    say(c4, t4, served, "周末发货吗")
    assert vpost(c4, t4, f"/api/v1/widget/conversations/{served}/human"
                 ).get_json()["outcome"] == "open"
    li.post(f"/api/v1/conversations/{served}/messages", json={"body": "照常发货",
                                                        "client_msg_id": new_client_id()})
    for cid in (solved, asked, left, served):
        quiet_for(cid, 600)
    team.put("/api/v1/conversation-rules", json={"inactivity_minutes": 60})
    inactivity.sweep()
    flags = {cid: (c.is_missed, c.bot_resolved) for c in Conversation.select()
             for cid in [c.id]}
    assert flags[solved] == (False, True)
    assert flags[asked] == (True, False)
    assert flags[left][1] is False
    assert flags[served] == (False, False)
    # The dashboard's days are the team's (Asia/Shanghai): after 16:00 UTC its
    # today is tomorrow in UTC.
    zone = ZoneInfo(team.get("/api/v1/team").get_json()["timezone"])
    today = datetime.datetime.now(zone).date().isoformat()
    figures = team.get(f"/api/v1/dashboard?from={today}&to={today}").get_json()["range"]
    assert figures["ended"] == 4
    assert figures["missed"] == sum(m for m, _ in flags.values())
    assert figures["bot_resolved_share"] == 0.25


def test_a_returning_visitor_sees_his_earlier_conversation(team):
    client, token, cid, _ = start(team.app, team.team["id"])
    say(client, token, cid, "周末发货吗")
    # The same browser comes back while it is going on: the same conversation.
    again = client.post("/api/v1/widget/session", json={"team_id": team.team["id"],
                                                         "token": token}).get_json()
    assert again["conversation"]["conversation_id"] == cid
    assert again["earlier"] is None
    assert "周末发货吗" in [m["body"] for m in again["messages"]]
    # Later, after the bot chat ended: a new one, with the earlier one to show above it.
    quiet_for(cid, 31)
    assert inactivity.sweep() == 1
    later = client.post("/api/v1/widget/session", json={"team_id": team.team["id"],
                                                         "token": token}).get_json()
    assert later["conversation"]["conversation_id"] != cid
    assert later["earlier"]["conversation_id"] == cid
    bodies = [m["body"] for m in later["earlier"]["messages"]]
    assert bodies[bodies.index("周末发货吗") + 1] == "周末照常发货。"
    ended_at = Conversation.get_by_id(cid).ended_at
    assert later["earlier"]["ended_at"] == ended_at.isoformat(timespec="seconds") + "Z"
