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
    """An ended conversation; a line is (sender, body) 30 s after the one before,
    or (sender, body, seconds after the start)."""
    team_id = api.team["id"]
    visitor = Visitor.create(team=team_id, uid=f"u{visitor_name}{ended}", name=visitor_name,
                             phone=extra.pop("phone", ""), note=extra.pop("note", ""),
                             tags=extra.pop("customer_tags", []))
    visit = Visit.create(visitor=visitor, team=team_id, ip=extra.pop("ip", "114.114.114.114"),
                         region=extra.pop("region", "江苏 南京"),
                         source=extra.pop("source", "direct"),
                         platform=extra.pop("platform", "pc_web"),
                         search_keyword=extra.pop("keyword", ""),
                         landing_page=extra.pop("landing_page", "https://shop.example.com/p/1"))
    conv = Conversation.create(team=team_id, visitor=visitor, visit=visit, status="ended",
                               handler=agent_id,
                               created_at=extra.pop("started", ended - datetime.timedelta(
                                   minutes=10)), ended_at=ended, **extra)
    for n, (kind, body, *at) in enumerate(lines):
        Message.create(conversation=conv, sender_kind=kind, body=body,
                       agent=agent_id if kind == "agent" else None,
                       created_at=conv.created_at + datetime.timedelta(
                           seconds=at[0] if at else 30 * n))
    figures.compute_and_store(conv)
    return conv


@pytest.fixture
def world(db_api):
    li = db_api.new_agent(email="li@example.com", name="李客服", scope="self")
    li_id = li.agent["id"]
    admin_id = db_api.agent["id"]
    # Every field a filter reads differs between the four, so no filter can pass
    # by returning everything: a: li's, searched for, a lead; b: admin's, missed;
    # c: li's, invalid, 40 days old; d: admin's, a slow first response.
    a = make_conversation(db_api, li_id, "张三", [("visitor", "退款还没到账，电话 13800138000"),
                                                  ("agent", "马上查"), ("agent", "已退回")],
                          NOW, rating="good", rating_comment="服务很好，谢谢", summary="退款咨询",
                          tags=["退款"],
                          source="search_engine", keyword="退款", platform="mobile_web",
                          phone="13800138000", region="浙江 杭州")
    b = make_conversation(db_api, admin_id, "李四", [("visitor", "发票怎么开？")],
                          NOW - datetime.timedelta(days=3), customer_tags=["VIP"],
                          source="link", note="老客户，要开发票",
                          landing_page="https://shop.example.com/p/2?from=ad")
    c = make_conversation(db_api, li_id, "王五", [], NOW - datetime.timedelta(days=40),
                          rating="bad", ip="8.8.8.8", region="江苏 苏州",
                          landing_page="https://shop.example.com/sale", phone="13912345678")
    d = make_conversation(db_api, admin_id, "赵六", [("visitor", "在吗", 0),
                                                    ("agent", "在的，请讲", 120),
                                                    ("visitor", "好的", 150)],
                          NOW - datetime.timedelta(days=10), rating="neutral",
                          note="上次投诉过物流")
    return {"admin": db_api, "li": li, "a": a, "b": b, "c": c, "d": d}


def ids(response):
    assert response.status_code == 200, response.get_json()
    return {row["id"] for row in response.get_json()["items"]}


def test_each_filter_with_hand_checked_results(world):
    admin = world["admin"]
    a, b, c, d = (world[k].id for k in "abcd")
    everything = {a, b, c, d}
    cases = {
        "customer_name=张": {a},
        "ended_from=2026-11-20&ended_to=2026-11-20": {a},
        "ended_from=2026-11-01": {a, b, d},
        "ended_to=2026-11-15": {c, d},
        f"agent_id={world['li'].agent['id']}": {a, c},
        "agent_name=李客": {a, c}, "agent_name=王管理": {b, d},
        "customer_tags=VIP": {b},
        "phone=1380013": {a},  # from the customer card
        "phone=139": {c},
        "note=发票": {b}, "note=物流": {d},
        "content=退款": {a},  # two Chinese characters
        "content=在": {d},  # one
        "content=怎么开": {b},
        "content=到账，电话": {a},
        "content=请讲": {d},
        "tags=退款": {a},
        "summary=咨询": {a},
        "rating_comment=谢谢": {a},
        "source=search_engine": {a}, "source=link": {b}, "source=direct": {c, d},
        "platform=mobile_web": {a}, "platform=pc_web": {b, c, d},
        "keyword=退款": {a},
        "rating=good": {a}, "rating=bad": {c}, "rating=neutral": {d}, "rating=none": {b},
        "lead=true": {a}, "lead=false": {b, c, d},
        "invalid=true": {c}, "invalid=false": {a, b, d},
        "missed=true": {b}, "missed=false": {a, c, d},
        "duration_min=30&duration_max=30": {a},
        "duration_max=0": {d},  # one manual message: 0 s
        "first_response_min=60": {d}, "first_response_max=30": {a},
        "first_response_min=30&first_response_max=120": {a, d},
        "ip=8.8": {c},
        "grade=C": {a, d}, "grade=D": {b, c},  # 3 messages; 1 and 0 (default rules)
        "region=南京": {b, d}, "region=浙江": {a},
        "landing_page=/p/1": {a, d}, "landing_page=from=ad": {b},
        "landing_page=/sale": {c},
        "agent_name=李客&rating=bad&region=苏州": {c},
    }
    assert ids(admin.get("/api/v1/history")) == everything
    for query, expected in cases.items():
        assert expected != everything, query  # a filter that is ignored would fail
        assert ids(admin.get(f"/api/v1/history?{query}")) == expected, query
        total = admin.get(f"/api/v1/history?{query}&per_page=1").get_json()["total"]
        assert total == len(expected), query


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
    """The last month (30 days) of one customer's conversations, in the viewer's scope."""
    admin, li = world["admin"], world["li"]
    li_id = li.agent["id"]
    now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
    customer = Visitor.create(team=admin.team["id"], uid="sidebar-customer", name="钱七")

    def ended(agent_id, days):
        started = now - datetime.timedelta(days=days)
        conv = Conversation.create(team=admin.team["id"], visitor=customer, status="ended",
                                   handler=agent_id, created_at=started,
                                   ended_at=started + datetime.timedelta(minutes=10))
        Message.create(conversation=conv, sender_kind="visitor", body="还是退款的事",
                       created_at=started)
        figures.compute_and_store(conv)
        return conv.id

    day29 = ended(li_id, 29)
    ended(li_id, 31)  # a month and a day: not in the sidebar
    colleague = ended(admin.agent["id"], 5)  # not li's: outside his scope

    def recent(api):
        response = api.get(f"/api/v1/visitors/{customer.id}/conversations")
        assert response.status_code == 200, response.get_json()
        return [c["id"] for c in response.get_json()]

    assert recent(li) == [day29]
    assert recent(admin) == [colleague, day29]  # newest first
    only = li.get(f"/api/v1/visitors/{customer.id}/conversations").get_json()[0]
    assert only["status"] == "ended" and only["agent"] == "李客服"
    other = world["b"].visitor_id  # 李四, admin's: none of it is li's
    # not his to see: a 404, as PATCH /visitors/{id} answers (not an empty list)
    hidden = li.get(f"/api/v1/visitors/{other}/conversations")
    assert hidden.status_code == 404 and hidden.get_json()["error"]["code"] == "not_found"
    _ = Agent


def test_changing_the_rules_regrades_history_as_a_job(world):
    admin = world["admin"]
    changed = admin.put("/api/v1/conversation-rules", json={"grades": [
        {"grade": "重要", "min_messages": 3}, {"grade": "普通", "min_messages": 0}]})
    assert changed.status_code == 200, changed.get_json()
    job = admin.get(f"/api/v1/jobs/{changed.get_json()['job_id']}").get_json()
    assert job["status"] == "finished" and job["result"]["conversations"] == 4
    assert ids(admin.get("/api/v1/history?grade=重要")) == {world["a"].id, world["d"].id}
    assert ids(admin.get("/api/v1/history?grade=普通")) == {world["b"].id, world["c"].id}
    bad = admin.put("/api/v1/conversation-rules", json={"grades": [
        {"grade": "A", "min_messages": 1}, {"grade": "A", "min_messages": 2}]})
    assert bad.status_code == 422
    assert world["li"].put("/api/v1/conversation-rules", json={}).status_code == 403


#: One conversation per body; the terms below are checked against Python's `in`.
SEARCH_BODIES = [
    "退款还没到账", "我要退货退款", "退", "款", "Refund please", "REFUND NOW", "refunded 50%",
    "订单号 20261124，电话 131-2113-2323", "地址：上海市 浦东新区", "100% 正品_保证",
    '他说"不行"', "emoji 😀 好评", "a*b", "NEAR AND OR", "退\n款", "…省略号", "发票抬头",
]
SEARCH_TERMS = [
    "退", "款", "退款", "款还", "退货退款", "还没到账", "refund", "REFUND", "Refund please",
    "50%", "%", "_", "0%", "20261124", "131-2113", "😀", "😀 好", '"不行"', '"', "a*b", "*",
    "AND", "near and", "退\n款", "上海市 浦东", "省略", "…", "：", "发票", "不存在的词", "ab",
    "x", "d 50",
]


def _containing(term):
    return {body for body in SEARCH_BODIES if term.lower() in body.lower()}


def test_content_search_is_exact_for_every_term_length(db_api):
    """1, 2, 3+ characters, Chinese, mixed case, punctuation, emoji and the
    characters LIKE and FTS5 give a meaning (% _ " * AND NEAR): the history
    finds exactly the conversations with a message containing the term."""
    admin_id = db_api.agent["id"]
    by_body = {}
    for n, body in enumerate(SEARCH_BODIES):
        conv = make_conversation(db_api, admin_id, f"搜索{n}", [("visitor", body)],
                                 NOW - datetime.timedelta(hours=n))
        by_body[conv.id] = body
    for term in SEARCH_TERMS:
        found = ids(db_api.get("/api/v1/history", query_string={"content": term}))
        assert {by_body[i] for i in found} == _containing(term), term
        total = db_api.get("/api/v1/history", query_string={
            "content": term, "per_page": 1}).get_json()["total"]
        assert total == len(_containing(term)), term
    # Combined with another filter, paged: the total still counts every match.
    page2 = db_api.get("/api/v1/history", query_string={
        "content": "退", "per_page": 2, "page": 2}).get_json()
    assert page2["total"] == 4 and len(page2["items"]) == 2
    past_the_end = db_api.get("/api/v1/history", query_string={
        "content": "退", "per_page": 2, "page": 9}).get_json()
    assert past_the_end["total"] == 4 and past_the_end["items"] == []


def test_the_search_index_follows_edits_and_deletes(db_api):
    admin_id = db_api.agent["id"]
    keep = make_conversation(db_api, admin_id, "甲", [("visitor", "发货了吗"),
                                                     ("agent", "内部：仓库缺货")], NOW)
    gone = make_conversation(db_api, admin_id, "乙", [("visitor", "退款到哪了")], NOW)
    found = lambda term: ids(db_api.get("/api/v1/history", query_string={"content": term}))  # noqa: E731
    assert found("缺货") == {keep.id}  # any message counts, internal ones too
    Message.update(body="请开发票").where(Message.conversation == keep.id,
                                      Message.sender_kind == "visitor").execute()
    assert found("发货") == set() and found("发票") == {keep.id}
    Conversation.delete().where(Conversation.id == gone.id).execute()  # messages cascade
    assert found("退款") == set()
    Message.create(conversation=keep, sender_kind="visitor", body="还想退款")
    assert found("退款") == {keep.id}
    from meiqia.db import database
    from meiqia.db import is_postgres

    if not is_postgres():
        # The deleted messages left the gram table too, not just the results.
        from meiqia.services.history import gram_query

        left = database.execute_sql("SELECT rowid FROM message_gram WHERE message_gram "
                                    "MATCH ?", (gram_query("退款到"),)).fetchall()
        assert left == []
