"""The history figures of DESIGN §8, with hand-checked values."""

from __future__ import annotations

import datetime
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from meiqia.services.figures import compute_figures
from meiqia.services.figures import grade_for
from meiqia.services.figures import lead_matches

T0 = datetime.datetime(2026, 11, 24, 8, 0, 0)
GRADES = [{"grade": "A", "min_messages": 6}, {"grade": "B", "min_messages": 3},
          {"grade": "C", "min_messages": 0}]


def msg(kind, seconds, body="x", visibility="public", mkind="text"):
    return SimpleNamespace(sender_kind=kind, created_at=T0 + datetime.timedelta(seconds=seconds),
                           body=body, visibility=visibility, kind=mkind)


@pytest.mark.parametrize(
    ("text", "lead"),
    [("我的电话 13121132323", True),  # 11 digits
     ("订单号 12345", True),  # exactly five digits
     ("1234", False),  # four: a near miss
     ("131-2113-2323", True),  # digits joined with -: a mobile number in groups
     ("400-820-8820", True),  # ten digits in groups
     ("0571-88888888", True),  # a landline with its area code (12 digits)
     ("座机 0571-8888888", True),  # 11 digits in groups, and a run of seven on its own
     ("010-1234567", True),  # ten digits: the shortest grouped number that counts
     ("１３８００１３８０００", True),  # full-width digits of a Chinese input method
     ("邮箱 a@b.cn", True), ("@", True), ("ａ＠ｂ．ｃｎ", True),
     ("订单 12345-6", True),  # the run of five counts on its own
     # near misses
     ("1312-113", False),  # seven digits in groups: not a phone number
     ("2026-11-24 到的货", False),  # a date
     ("2026-12-03", False),  # a date: 8 digits in groups, no run of five
     ("12-03 到 12-05", False),  # dates without the year
     ("010-1234-56", False),  # nine digits in groups, no run of five: a near miss
     ("价格 99.5 元，第 1-2 件", False),  # a range
     ("131 2113 2323", False),  # joined by spaces, not "-"
     ("1234 5678", False), ("12 34 56", False), ("一二三四五六七", False), ("", False),
     ("电话-号码", False), ("131--2113-2323", False)],
)
def test_lead_patterns_and_near_misses(text, lead):
    assert bool(lead_matches(text)) is lead


def test_lead_details_name_what_was_found():
    assert lead_matches("电话 131-2113-2323，邮箱 li.ming@qq.com") == [
        "131-2113-2323", "li.ming@qq.com"]
    f = compute_figures([msg("visitor", 0, "手机 13800138000"), msg("visitor", 5, "13800138000"),
                         msg("agent", 9, "我的 12345678", )], GRADES)
    assert f["lead_details"] == "13800138000"  # once; the agent's digits do not count


@settings(deadline=None)
@given(st.text(alphabet="0123456789", min_size=5, max_size=20), st.text(max_size=10),
       st.text(max_size=10))
def test_any_five_digit_run_is_a_lead(digits, before, after):
    assert lead_matches(f"{before} {digits} {after}")


@settings(deadline=None)
@given(st.lists(st.text(alphabet="0123456789", min_size=1, max_size=4), max_size=6))
def test_short_runs_are_a_lead_only_as_a_grouped_number_of_ten_digits(groups):
    text = "-".join(groups)
    assert bool(lead_matches(text)) == (len(groups) > 1 and len("".join(groups)) >= 10)


def test_figures_of_a_handled_conversation():
    messages = [
        msg("bot", 0), msg("visitor", 10, "在吗"), msg("agent", 40), msg("visitor", 50,
                                                                        "电话 13800138000"),
        msg("agent", 70, visibility="internal"),  # internal: not manual
        msg("agent", 100), msg("system", 120, "", mkind="event"),
    ]
    f = compute_figures(messages, GRADES)
    assert f["visitor_message_count"] == 2 and f["agent_message_count"] == 2
    assert f["bot_message_count"] == 1
    assert f["first_response_s"] == 30  # 10 s → 40 s
    assert f["duration_s"] == 60  # first manual 40 s → last manual 100 s
    assert f["is_lead"] and f["lead_details"] == "13800138000"
    assert not f["is_invalid"] and not f["is_missed"] and not f["bot_resolved"]
    assert f["grade"] == "B"  # 4 messages


def test_first_response_counts_from_the_visitor_first_message():
    # The agent greeted first (manual at 0), the visitor wrote at 20, the reply came at 65.
    f = compute_figures([msg("agent", 0), msg("visitor", 20), msg("bot", 21),
                         msg("agent", 65), msg("agent", 200)], GRADES)
    assert f["first_response_s"] == 45 and f["duration_s"] == 200
    assert f["first_manual_at"] == T0 and f["last_manual_at"] == T0 + datetime.timedelta(
        seconds=200)
    assert f["grade"] == "B"  # 1 visitor + 3 manual messages


def test_an_agent_who_spoke_only_before_the_visitor_leaves_no_first_response():
    f = compute_figures([msg("agent", 0), msg("visitor", 20)], GRADES)
    assert f["first_response_s"] is None and not f["is_missed"] and f["duration_s"] == 0


def test_invalid_missed_and_bot_resolved():
    assert compute_figures([msg("agent", 0)], GRADES)["is_invalid"] is True
    missed = compute_figures([msg("visitor", 0), msg("agent", 5, visibility="internal")], GRADES,
                             asked_human=True)
    assert missed["is_missed"] and missed["first_response_s"] is None and missed["duration_s"] is None
    # The bot answered and nobody asked for a person: solved by the bot, nobody missed him.
    bot = compute_figures([msg("visitor", 0), msg("bot", 1)], GRADES)
    assert bot["bot_resolved"] and not bot["is_missed"]
    # He asked for a human (the offer to leave a message is the event that shows it) and
    # nobody answered: missed, and not solved by the bot.
    offer = SimpleNamespace(**vars(msg("system", 2, "", mkind="event")),
                            payload={"event": "leave_message"})
    asked = compute_figures([msg("visitor", 0), msg("bot", 1), offer], GRADES)
    assert asked["is_missed"] and not asked["bot_resolved"]
    # He left a message from a bot chat: not solved by the bot either.
    ticket = compute_figures([msg("visitor", 0), msg("bot", 1)], GRADES, left_ticket=True)
    assert not ticket["bot_resolved"]


def test_grades_use_the_highest_threshold_reached():
    assert grade_for(0, GRADES) == "C" and grade_for(5, GRADES) == "B"
    assert grade_for(6, GRADES) == "A" and grade_for(3, []) == ""


@settings(deadline=None)  # no timing in unit tests
@given(st.lists(st.tuples(st.sampled_from(["visitor", "agent", "bot", "system"]),
                          st.integers(0, 10_000), st.sampled_from(["public", "internal"])),
                max_size=30), st.booleans(), st.booleans())
def test_figures_properties(items, asked, left):
    items = sorted(items, key=lambda i: i[1])
    f = compute_figures([msg(k, s, visibility=v) for k, s, v in items], GRADES,
                        asked_human=asked, left_ticket=left)
    manual = [i for i in items if i[0] == "agent" and i[2] == "public"]
    visitor = [i for i in items if i[0] == "visitor"]
    assert f["is_invalid"] == (not visitor)
    assert f["is_missed"] == (bool(visitor) and asked and not manual)
    bots = [i for i in items if i[0] == "bot"]
    assert f["bot_resolved"] == (bool(visitor) and bool(bots) and not asked and not manual
                                 and not left)
    assert not (f["is_missed"] and f["bot_resolved"])
    assert (f["duration_s"] is None) == (not manual)
    if f["duration_s"] is not None:
        assert f["duration_s"] >= 0
    if f["first_response_s"] is not None:
        assert f["first_response_s"] >= 0
    assert f["visitor_message_count"] == len(visitor)
    assert f["agent_message_count"] == len(manual)
    assert f["grade"] == grade_for(len(visitor) + len(manual), GRADES)


def test_compute_and_store_on_a_real_database(app):
    from meiqia.models import Conversation
    from tests.factories import make_agent
    from tests.factories import make_conversation
    from tests.factories import make_team
    from tests.factories import make_visitor

    team = make_team(grades=GRADES)
    li = make_agent(team)
    conv = make_conversation(team, make_visitor(team), handler=li, ended_at=T0, messages=[
        ("visitor", "发货了吗？邮箱 zhang@163.com", 0), ("agent", "查一下", 12),
        ("agent", "内部备注 13800138000", 20, "internal"), ("agent", "已发货", 42)])
    stored = Conversation.get_by_id(conv.id)
    assert (stored.first_response_s, stored.duration_s) == (12, 30)
    assert stored.is_lead and stored.lead_details == "zhang@163.com"
    assert (stored.visitor_message_count, stored.agent_message_count) == (1, 2)
    assert stored.grade == "B" and not stored.is_missed and not stored.is_invalid
