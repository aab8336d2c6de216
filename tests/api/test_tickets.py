"""Tickets: the six ways they are born, their life, and the bad input."""

from __future__ import annotations

import pytest

from meiqia.models import Conversation
from meiqia.models import Ticket
from meiqia.models import TicketEvent
from tests.api.test_conversations import start
from tests.helpers import new_client_id


def leave(client, token, **body):
    return client.post("/api/v1/widget/tickets", headers={"X-Visitor-Token": token},
                       json={"content": "请尽快联系我，订单没收到", "phone": "13800138000", **body})


@pytest.fixture
def team(db_api):
    return db_api.without_bot()


def online(team, limit=1, email="li@example.com"):
    agent = team.new_agent(max_concurrent=limit, email=email, name=email.split("@")[0])
    agent.go_online()
    return agent


def test_1_no_agent_online(team):
    client, token, cid, data = start(team.app, team.team["id"])
    assert data["conversation"]["availability"] == "nobody_online"
    created = leave(client, token, conversation_id=cid, name="张三")
    assert created.status_code == 201 and created.get_json()["source"] == "no_agent_online"
    ticket = Ticket.get()
    assert ticket.visitor_id and ticket.conversation_id == cid and ticket.contact_name == "张三"


def test_2_all_online_agents_busy(team):
    online(team, limit=1)
    team.patch("/api/v1/team", json={"settings": {"queue_enabled": False}})
    start(team.app, team.team["id"])  # takes the only place
    client, token, cid, data = start(team.app, team.team["id"])
    assert data["conversation"]["availability"] == "all_busy"
    assert leave(client, token, conversation_id=cid).get_json()["source"] == "all_busy"


def test_3_after_the_conversation_ended(team):
    agent = online(team)
    client, token, cid, _ = start(team.app, team.team["id"])
    agent.post(f"/api/v1/conversations/{cid}/end")
    assert leave(client, token, conversation_id=cid).get_json()["source"] == "after_end"


def test_4_bot_could_not_recognise_and_nobody_can_take_it(db_api):
    client, token, cid, data = start(db_api.app, db_api.team["id"])  # bot on, empty KB
    assert data["conversation"]["status"] == "bot"
    client.post(f"/api/v1/widget/conversations/{cid}/messages",
                headers={"X-Visitor-Token": token}, json={"client_msg_id": new_client_id(), "body": "你们卖汽车吗"})
    assert Conversation.get_by_id(cid).bot_failures == 1
    assert leave(client, token, conversation_id=cid).get_json()["source"] == "bot_unrecognised"


def test_5_queued_visitor_leaves_a_message_and_the_queue(team):
    online(team, limit=1)
    start(team.app, team.team["id"])
    client, token, cid, data = start(team.app, team.team["id"])
    assert data["conversation"]["queue_position"] == 1
    assert leave(client, token, conversation_id=cid).get_json()["source"] == "queue_leave"
    conversation = Conversation.get_by_id(cid)
    assert conversation.status == "ended" and conversation.end_reason == "left_ticket"


def test_6_agent_creates_one_from_the_chat_prefilled(team):
    agent = online(team, limit=2)
    client, token, cid, _ = start(team.app, team.team["id"], name="李四", phone="13912345678")
    client.post(f"/api/v1/widget/conversations/{cid}/messages",
                headers={"X-Visitor-Token": token}, json={"client_msg_id": new_client_id(), "body": "发票开错了"})
    agent.post(f"/api/v1/conversations/{cid}/messages",
               json={"client_msg_id": new_client_id(), "body": "内部：财务处理", "mode": "internal"})
    created = agent.post("/api/v1/tickets", json={"conversation_id": cid, "priority": "high"})
    assert created.status_code == 201, created.get_json()
    data = created.get_json()
    assert data["source"] == "agent_created" and data["contact"]["phone"] == "13912345678"
    assert "发票开错了" in data["content"] and "内部" not in data["content"]


def test_lifecycle_transitions_history_and_comments(team):
    agent = online(team, limit=2)
    client, token, cid, _ = start(team.app, team.team["id"])
    ticket_id = agent.post("/api/v1/tickets", json={"conversation_id": cid,
                                                    "content": "退款问题"}).get_json()["id"]
    url = f"/api/v1/tickets/{ticket_id}"
    assert agent.patch(url, json={"status": "pending"}).get_json()["status"] == "pending"
    assert agent.patch(url, json={"status": "solved", "tags": ["退款"]}).status_code == 200
    assert agent.patch(url, json={"status": "open"}).status_code == 200  # reopen
    assert agent.patch(url, json={"status": "closed"}).status_code == 200
    refused = agent.patch(url, json={"status": "open"})
    assert refused.status_code == 422 and "closed is final" in refused.get_json()["error"]["message"]
    agent.post(f"{url}/comments", json={"body": "内部备注", "visibility": "internal"})
    agent.post(f"{url}/comments", json={"body": "已为您退款", "visibility": "public"})
    full = agent.get(url).get_json()
    fields = [h["field"] for h in full["history"]]
    assert fields[:6] == ["created", "status", "status", "tags", "status", "status"]
    assert {"old": "solved", "new": "open"} == {k: full["history"][4][k] for k in ("old", "new")}
    mine = client.get("/api/v1/widget/tickets", headers={"X-Visitor-Token": token}).get_json()
    assert [r["body"] for r in mine[0]["replies"]] == ["已为您退款"]  # never the internal note
    listed = agent.get("/api/v1/tickets?status=closed&q=退款").get_json()
    assert listed["total"] == 1 and listed["counts"]["closed"] == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [({"phone": "", "email": ""}, "phone"),  # contact required by the default form
     ({"phone": "12345"}, "phone"),
     ({"email": "not-mail", "phone": ""}, "email"),
     ({"content": ""}, "content"),
     # an empty form: the message is named first, not the contact (the widget names both)
     ({"content": "", "phone": "", "email": ""}, "content"),
     ({"content": "长" * 5001}, "content"),
     ({"attachments": ["nope"]}, "attachments")],
)
def test_bad_input_changes_nothing(team, body, field):
    client, token, cid, _ = start(team.app, team.team["id"])
    response = leave(client, token, conversation_id=cid, **body)
    assert response.status_code == 422, response.get_json()
    assert response.get_json()["error"]["field"] == field
    assert Ticket.select().count() == 0 and TicketEvent.select().count() == 0


def test_html_is_stored_as_text_and_other_visitors_see_nothing(team):
    client, token, cid, _ = start(team.app, team.team["id"])
    leave(client, token, content="<script>alert(1)</script>", name="<b>x</b>")
    assert Ticket.get().content == "<script>alert(1)</script>"
    other, other_token, other_cid, _ = start(team.app, team.team["id"])
    assert other.get("/api/v1/widget/tickets", headers={"X-Visitor-Token": other_token}
                     ).get_json() == []
    stolen = leave(other, other_token, conversation_id=cid)
    assert stolen.status_code == 404 and Ticket.select().count() == 1


def test_scopes_apply_to_tickets(team):
    li = online(team, limit=2, email="li@example.com")
    zhao = team.new_agent(email="zhao@example.com", name="赵", scope="self")
    ticket = li.post("/api/v1/tickets", json={"content": "只给李", "assignee_id":
                                              li.agent["id"]}).get_json()
    assert zhao.get(f"/api/v1/tickets/{ticket['id']}").status_code == 404
    assert zhao.patch(f"/api/v1/tickets/{ticket['id']}", json={"status": "closed"}
                      ).status_code == 404
    assert Ticket.get_by_id(ticket["id"]).status == "open"
    assert team.get(f"/api/v1/tickets/{ticket['id']}").status_code == 200
