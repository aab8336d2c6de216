"""Ticket lists: every filter, counts, "my tickets", scopes and the customer sidebar."""

from __future__ import annotations

import datetime

import pytest

from meiqia.models import Ticket
from meiqia.models import TicketEvent
from tests.api.test_conversations import start


@pytest.fixture
def team(db_api):
    return db_api.without_bot()


def create(agent, **body):
    response = agent.post("/api/v1/tickets", json={"content": "默认内容", **body})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def ids(response):
    assert response.status_code == 200, response.get_json()
    return sorted(t["id"] for t in response.get_json()["items"])


def test_every_filter_and_the_counts(team):
    li = team.new_agent(email="li@example.com", name="李", scope="all")
    group = team.post("/api/v1/groups", json={"name": "售后组"}).get_json()
    refund = create(team, content="退款没到账", phone="13800138000", priority="high",
                    assignee_id=li.agent["id"], tags=["退款"])
    invoice = create(team, content="发票抬头写错了", email="wang@example.com",
                     group_id=group["id"])
    old = create(team, content="旧的咨询 100% 满意", name="赵六")
    Ticket.update(created_at=datetime.datetime(2026, 1, 5, 3, 0)).where(
        Ticket.id == old["id"]).execute()
    team.patch(f"/api/v1/tickets/{invoice['id']}", json={"status": "pending"})
    client, token, cid, _ = start(team.app, team.team["id"])
    from_widget = client.post("/api/v1/widget/tickets", headers={"X-Visitor-Token": token},
                              json={"content": "没人在线", "email": "a@example.com",
                                    "conversation_id": cid}).get_json()

    url = "/api/v1/tickets"
    assert ids(team.get(url)) == sorted([refund["id"], invoice["id"], old["id"],
                                         from_widget["id"]])
    assert ids(team.get(f"{url}?status=pending")) == [invoice["id"]]
    assert ids(team.get(f"{url}?priority=high")) == [refund["id"]]
    assert ids(team.get(f"{url}?assignee_id={li.agent['id']}")) == [refund["id"]]
    assert refund["id"] not in ids(team.get(f"{url}?assignee_id=none"))
    assert ids(team.get(f"{url}?group_id={group['id']}")) == [invoice["id"]]
    assert ids(team.get(f"{url}?source=no_agent_online")) == [from_widget["id"]]
    assert ids(team.get(f"{url}?source=agent_created")) == sorted(
        [refund["id"], invoice["id"], old["id"]])
    # Text in the content and in the contact; LIKE wildcards are plain text.
    assert ids(team.get(f"{url}?q=发票")) == [invoice["id"]]
    assert ids(team.get(f"{url}?q=0013800")) == [refund["id"]]
    assert ids(team.get(f"{url}?q=WANG@")) == [invoice["id"]]
    assert ids(team.get(f"{url}?q=赵六")) == [old["id"]]
    assert ids(team.get(f"{url}?q=100%")) == [old["id"]]
    assert ids(team.get(f"{url}?q=_")) == []
    # Days are the team's (Asia/Shanghai): 03:00 UTC on 5 Jan is 11:00 there.
    assert ids(team.get(f"{url}?since=2026-01-05&until=2026-01-05")) == [old["id"]]
    assert ids(team.get(f"{url}?until=2026-01-04")) == []
    assert old["id"] not in ids(team.get(f"{url}?since=2026-01-06"))
    assert ids(team.get(f"{url}?since=2026-01-05T02:59:00Z&until=2026-01-05T03:01:00Z")) \
        == [old["id"]]
    # Counts per status ignore the status filter (the tabs), total follows it.
    data = team.get(f"{url}?status=pending").get_json()
    assert data["counts"] == {"open": 3, "pending": 1, "solved": 0, "closed": 0}
    assert data["total"] == 1
    page = team.get(f"{url}?per_page=2&page=2").get_json()
    assert page["total"] == 4 and len(page["items"]) == 2


def test_my_tickets(team):
    li = team.new_agent(email="li@example.com", name="李", scope="all")
    mine = create(li, assignee_id=li.agent["id"])
    create(li)
    assert ids(li.get("/api/v1/tickets?mine=true")) == [mine["id"]]
    assert len(ids(li.get("/api/v1/tickets?mine=false"))) == 2


@pytest.mark.parametrize(("query", "field"), [
    ("status=archived", "status"), ("source=phone", "source"), ("priority=p0", "priority"),
    ("assignee_id=abc", "assignee_id"), ("group_id=x", "group_id"),
    ("since=yesterday", "since"), ("since=2026-02-01&until=2026-01-01", "until"),
    ("mine=maybe", "mine"), ("page=0", "page"), ("per_page=1000", "per_page")])
def test_bad_filters_say_what_is_wrong(team, query, field):
    response = team.get(f"/api/v1/tickets?{query}")
    assert response.status_code == 422
    assert response.get_json()["error"]["field"] == field


def test_scopes_apply_to_lists_details_and_changes(team):
    li = team.new_agent(email="li@example.com", name="李", scope="self")
    zhao = team.new_agent(email="zhao@example.com", name="赵", scope="self")
    lis = create(li, content="李的工单", assignee_id=li.agent["id"])
    pool = create(team, content="还没人接")
    # Unassigned, no group, no conversation: no pool of every agent (docs/security.md §1).
    assert ids(zhao.get("/api/v1/tickets")) == []
    assert ids(zhao.get("/api/v1/tickets?assignee_id=none")) == []
    assert team.patch(f"/api/v1/tickets/{pool['id']}", json={"assignee_id": zhao.agent["id"]}
                      ).status_code == 200
    assert ids(zhao.get("/api/v1/tickets")) == [pool["id"]]
    for call in (lambda: zhao.get(f"/api/v1/tickets/{lis['id']}"),
                 lambda: zhao.patch(f"/api/v1/tickets/{lis['id']}", json={"status": "closed"}),
                 lambda: zhao.post(f"/api/v1/tickets/{lis['id']}/comments",
                                   json={"body": "偷看"})):
        response = call()
        assert response.status_code == 404 and response.get_json()["error"]["code"] == \
            "not_found"
    assert Ticket.get_by_id(lis["id"]).status == "open"
    assert TicketEvent.select().where(TicketEvent.ticket == lis["id"]).count() == 1
    # A self-scoped agent cannot hand a ticket to someone he cannot see.
    refused = zhao.patch(f"/api/v1/tickets/{pool['id']}",
                         json={"assignee_id": li.agent["id"]})
    assert refused.status_code == 422 and refused.get_json()["error"]["field"] == "assignee_id"
    assert Ticket.get_by_id(pool["id"]).assignee_id == zhao.agent["id"]
    assert team.get(f"/api/v1/tickets/{lis['id']}").status_code == 200  # admin sees all


def test_groups_scope_and_assignment_inside_the_team(team):
    group = team.post("/api/v1/groups", json={"name": "售前组"}).get_json()
    li = team.new_agent(email="li@example.com", name="李", groups=[group["id"]])
    wu = team.new_agent(email="wu@example.com", name="吴", scope="groups",
                        groups=[group["id"]])
    outsider = team.new_agent(email="out@example.com", name="外", scope="self")
    routed = create(team, content="售前问题", group_id=group["id"])
    lis = create(team, content="李的", assignee_id=li.agent["id"])
    assert ids(wu.get("/api/v1/tickets")) == sorted([routed["id"], lis["id"]])
    assert ids(outsider.get("/api/v1/tickets")) == []  # routed to a group he cannot see
    # Another team's group or agent is not assignable (and says so).
    from tests.helpers import ApiClient

    team.app.config["OPEN_REGISTRATION"] = True  # a second team on this server
    other = ApiClient(team.app)
    registered = other.client.post("/api/v1/auth/register", json={
        "team_name": "别的团队", "name": "外管理", "email": "boss@other.example",
        "password": "other-pass-1"})
    assert registered.status_code == 201, registered.get_json()
    other._take(registered.get_json())
    foreign_group = other.post("/api/v1/groups", json={"name": "外组"}).get_json()
    for body, field in (({"group_id": foreign_group["id"]}, "group_id"),
                        ({"assignee_id": other.agent["id"]}, "assignee_id")):
        response = team.patch(f"/api/v1/tickets/{routed['id']}", json=body)
        assert response.status_code == 422 and response.get_json()["error"]["field"] == field
    assert other.get(f"/api/v1/tickets/{routed['id']}").status_code == 404


def test_the_customer_sidebar_lists_his_recent_tickets_in_scope(team):
    client, token, cid, data = start(team.app, team.team["id"], name="张三")
    for text in ("第一次留言", "第二次留言"):
        client.post("/api/v1/widget/tickets", headers={"X-Visitor-Token": token},
                    json={"content": text, "phone": "13800138000"})
    visitor_id = Ticket.get().visitor_id
    recent = team.get(f"/api/v1/visitors/{visitor_id}/tickets").get_json()
    assert [t["subject"] for t in recent] == ["第二次留言", "第一次留言"]
    li = team.new_agent(email="li@example.com", name="李", scope="self")
    team.patch(f"/api/v1/tickets/{recent[0]['id']}", json={"assignee_id": team.agent["id"]})
    team.patch(f"/api/v1/tickets/{recent[1]['id']}", json={"assignee_id": li.agent["id"]})
    assert [t["subject"] for t in li.get(f"/api/v1/visitors/{visitor_id}/tickets")
            .get_json()] == ["第一次留言"]
