"""Home dashboard (首页): hand-checked figures, time-zone days and hours, scopes.

The team is in Asia/Shanghai (UTC+8): a conversation that ended at 17:30 UTC on
the 19th ended at 01:30 on the 20th for the team, and counts on the 20th.
"""

from __future__ import annotations

import datetime

import pytest

from meiqia.models import SuggestionLog
from meiqia.models.base import utcnow
from tests.factories import make_conversation
from tests.factories import make_visitor

UTC = datetime.datetime
RANGE = "from=2026-11-14&to=2026-11-20"


@pytest.fixture
def world(db_api):
    team = db_api.team["id"]
    admin = db_api.agent["id"]
    li_api = db_api.new_agent(email="li@example.com", name="李客服", scope="self")
    zhao_api = db_api.new_agent(email="zhao@example.com", name="赵客服", scope="self")
    li, zhao = li_api.agent["id"], zhao_api.agent["id"]

    def conv(handler, ended, messages, **fields):
        return make_conversation(team, make_visitor(team, name="访客"), handler=handler,
                                 ended_at=ended, messages=messages, **fields)

    c = {
        # 12:00 local on the 20th: first response 30 s, duration 60 s, a lead.
        "c1": conv(li, UTC(2026, 11, 20, 4, 0), [("visitor", "退款 13800138000", 0),
                                                 ("agent", "好的", 30), ("agent", "已退", 90)],
                   rating="good"),
        # 01:30 local on the 20th (still the 19th in UTC).
        "c2": conv(li, UTC(2026, 11, 19, 17, 30), [("visitor", "在吗", 0), ("agent", "在", 10)],
                   rating="bad"),
        # 10:00 local on the 15th: nobody answered (missed).
        "c3": conv(zhao, UTC(2026, 11, 15, 2, 0), [("visitor", "在吗", 0),
                                                   ("agent", "内部：稍后回", 5, "internal")]),
        # 14:00 local on the 16th: the visitor never wrote (invalid).
        "c4": conv(admin, UTC(2026, 11, 16, 6, 0), [("agent", "您好", 0)], rating="neutral"),
        # 16:00 local on the 17th: the bot answered and nobody asked for a person
        # (solved by the bot, not missed: docs/history.md).
        "c5": conv(None, UTC(2026, 11, 17, 8, 0), [("visitor", "发票怎么开", 0),
                                                   ("bot", "在订单页申请", 1)]),
        # 00:30 local on the 14th (the 13th in UTC): first response 50 s, duration 200 s.
        "c6": conv(li, UTC(2026, 11, 13, 16, 30), [("visitor", "你好", 0), ("agent", "您好", 50),
                                                   ("agent", "再见", 250)], rating="good"),
        # 00:10 local on the 21st: outside the range although the 20th in UTC.
        "c7": conv(li, UTC(2026, 11, 20, 16, 10), [("visitor", "hi", 0), ("agent", "hello", 5)]),
    }
    at = UTC(2026, 11, 18, 3, 0)
    for agent, outcome in ((li, "accepted"), (li, "accepted"), (li, "ignored"),
                           (zhao, "edited")):
        SuggestionLog.create(team=team, conversation=c["c1"], message_id=1, entry_key="k1",
                             score=0.8, agent=agent, outcome=outcome, created_at=at)
    SuggestionLog.create(team=team, conversation=c["c1"], message_id=1, entry_key="k1",
                         score=0.8, agent=li, outcome="accepted",
                         created_at=UTC(2026, 11, 25, 3, 0))  # outside the range
    return {"admin": db_api, "li": li_api, "zhao": zhao_api, "ids": (admin, li, zhao), **c}


def range_of(api, query=RANGE):
    response = api.get(f"/api/v1/dashboard?{query}")
    assert response.status_code == 200, response.get_json()
    return response.get_json()["range"]


def test_range_figures_hand_checked(world):
    admin_id, li, zhao = world["ids"]
    r = range_of(world["admin"])
    assert r["from"] == "2026-11-14" and r["to"] == "2026-11-20"
    assert r["ended"] == 6  # c1-c6; c7 ended on the 21st for the team
    assert (r["missed"], r["invalid"], r["leads"]) == (1, 1, 1)
    assert r["bot_resolved_share"] == round(1 / 6, 4)
    assert r["first_response_s"] == {"avg": 30.0, "p90": 46.0}  # 10, 30, 50
    assert r["duration_s"] == {"avg": 65.0, "p90": 158.0}  # 0 (c4: one manual), 0, 60, 200
    assert r["ratings"] == {"good": 2, "neutral": 1, "bad": 1, "none": 2}
    assert r["suggestions"] == {"shown": 4, "accepted": 2, "edited": 1, "acceptance": 0.75}
    assert [d["ended"] for d in r["by_day"]] == [1, 1, 1, 1, 0, 0, 2]
    assert r["by_day"][0]["day"] == "2026-11-14" and len(r["by_day"]) == 7
    assert {h["hour"]: h["ended"] for h in r["by_hour"] if h["ended"]} == {
        0: 1, 1: 1, 10: 1, 12: 1, 14: 1, 16: 1}
    rows = {row["agent"]: row for row in r["per_agent"]}
    assert set(rows) == {"李客服", "赵客服", "王管理"}  # c5 had no handler
    assert rows["李客服"] == {
        "agent_id": li, "agent": "李客服", "ended": 3, "missed": 0, "invalid": 0, "leads": 1,
        "good": 2, "neutral": 0, "bad": 1, "avg_first_response_s": 30.0,
        "avg_duration_s": 86.7}
    assert rows["赵客服"]["missed"] == 1 and rows["赵客服"]["avg_first_response_s"] is None
    assert rows["王管理"]["invalid"] == 1
    assert r["per_agent"][0]["agent"] == "李客服"  # most conversations first


def test_scope_narrows_every_figure(world):
    # 李客服 sees his own (c1, c2, c6) and the team's unassigned pool (c5).
    r = range_of(world["li"])
    assert (r["ended"], r["missed"], r["invalid"], r["leads"]) == (4, 0, 0, 1)
    assert r["bot_resolved_share"] == 0.25
    assert r["ratings"] == {"good": 2, "neutral": 0, "bad": 1, "none": 1}
    assert [row["agent"] for row in r["per_agent"]] == ["李客服"]
    assert r["suggestions"]["shown"] == 3 and r["suggestions"]["acceptance"] == 0.6667
    z = range_of(world["zhao"])
    assert (z["ended"], z["missed"]) == (2, 1)  # c3 and c5; only c3 (his) was missed
    assert z["first_response_s"] == {"avg": None, "p90": None}
    assert z["suggestions"] == {"shown": 1, "accepted": 0, "edited": 1, "acceptance": 1.0}


def test_now_and_today(world):
    admin_api = world["admin"]
    team = admin_api.team["id"]
    _, li, _ = world["ids"]
    make_conversation(team, make_visitor(team), handler=li, ended_at=utcnow(),
                      messages=[("visitor", "邮箱 a@b.cn", -20), ("agent", "收到", -8)])
    make_conversation(team, make_visitor(team), handler=li, status="open")
    make_conversation(team, make_visitor(team), status="bot")
    make_conversation(team, make_visitor(team), status="queued")
    home = admin_api.get("/api/v1/dashboard").get_json()
    assert home["now"] == {"active": 2, "queued": 1}
    assert home["today"]["ended"] == 1 and home["today"]["leads"] == 1
    assert home["today"]["first_response_s"]["avg"] == 12.0
    assert len(home["range"]["by_day"]) == 7  # the last seven days by default
    assert world["zhao"].get("/api/v1/dashboard").get_json()["now"] == {
        "active": 1, "queued": 1}  # the pool, not 李客服's open one


@pytest.mark.parametrize(("query", "field"), [
    ("from=2026-11-21&to=2026-11-20", "from"), ("from=yesterday", "from"),
    ("to=2026-13-01", "to"), ("from=2025-01-01&to=2026-11-20", "from")])
def test_bad_ranges_are_refused(world, query, field):
    response = world["admin"].get(f"/api/v1/dashboard?{query}")
    assert response.status_code == 422
    assert response.get_json()["error"]["field"] == field


def test_visitors_cannot_read_the_dashboard(world):
    response = world["admin"].app.test_client().get("/api/v1/dashboard")
    assert response.status_code == 401


def _p90(values):
    """Linear interpolation between the two values around rank 0.9 * (n - 1)."""
    values = sorted(values)
    k = (len(values) - 1) * 0.9
    low = int(k)
    if low + 1 == len(values):
        return float(values[low])
    return round(values[low] + (values[low + 1] - values[low]) * (k - low), 1)


def test_p90_is_the_interpolated_value_over_many_conversations(db_api):
    """On PostgreSQL the p90 comes from percentile_cont, on SQLite from the two
    values at the rank: both must give what the definition gives."""
    import random

    team, admin = db_api.team["id"], db_api.agent["id"]
    rnd = random.Random(5)
    firsts, durations = [], []
    for n in range(37):
        first, length = rnd.randrange(1, 400), rnd.randrange(0, 3000)
        firsts.append(first)
        durations.append(length)
        make_conversation(team, make_visitor(team, name=f"访客{n}"), handler=admin,
                          ended_at=UTC(2026, 11, 18, 4, 0) + datetime.timedelta(minutes=n),
                          messages=[("visitor", "在吗", 0), ("agent", "您好", first),
                                    ("agent", "再见", first + length)])
    r = range_of(db_api)
    assert r["ended"] == 37
    assert r["first_response_s"]["p90"] == _p90(firsts)
    assert r["duration_s"]["p90"] == _p90(durations)
    assert r["first_response_s"]["avg"] == round(sum(firsts) / 37, 1)


@pytest.mark.parametrize(("zone", "offset"), [("Asia/Kolkata", (5, 30)),
                                              ("Asia/Kathmandu", (5, 45)),
                                              ("America/St_Johns", (-3, -30))])
def test_days_and_hours_in_zones_a_whole_hour_does_not_fit(db_api, zone, offset):
    """Kolkata is UTC+5:30, Kathmandu +5:45, St. John's -3:30 (in November): a
    conversation that ends a minute after the team's midnight counts on the new
    day in hour 0, one a minute before it on the old day in hour 23, and one in the
    second half of a local hour in that hour. Counting per UTC hour and moving the
    hour whole put the first on the day before, in hour 23."""
    team, admin = db_api.team["id"], db_api.agent["id"]
    assert db_api.patch("/api/v1/team", json={"timezone": zone}).status_code == 200
    shift = datetime.timedelta(hours=offset[0], minutes=offset[1])

    def ended_at(local: UTC) -> UTC:
        return local - shift

    for n, local in enumerate((UTC(2026, 11, 18, 0, 1), UTC(2026, 11, 17, 23, 59),
                               UTC(2026, 11, 16, 14, 50), UTC(2026, 11, 16, 14, 5))):
        make_conversation(team, make_visitor(team, name=f"访客{n}"), handler=admin,
                          ended_at=ended_at(local),
                          messages=[("visitor", "在吗", 0), ("agent", "您好", 5)])
    r = range_of(db_api)
    days = {d["day"]: d["ended"] for d in r["by_day"]}
    assert days["2026-11-18"] == 1 and days["2026-11-17"] == 1 and days["2026-11-16"] == 2
    hours = {h["hour"]: h["ended"] for h in r["by_hour"]}
    assert hours[0] == 1 and hours[23] == 1 and hours[14] == 2, hours
    assert sum(hours.values()) == 4
