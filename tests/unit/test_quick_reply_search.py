"""Ranking of the composer's ``#keyword`` autocomplete, without a database.

Replies are unsaved model instances: ``rank`` only reads their fields.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from meiqia.models import QuickReply
from meiqia.services.errors import ValidationError
from meiqia.services.quick_replies import clean_keyword
from meiqia.services.quick_replies import keyword_form
from meiqia.services.quick_replies import rank

TEAM = None
ME = 7


def reply(id_: int, keyword: str, title: str = "", owner: int | None = TEAM) -> QuickReply:
    return QuickReply(id=id_, keyword=keyword, title=title, body=f"正文 {keyword}", owner=owner)


def keywords(query: str, replies: list[QuickReply], limit: int = 10) -> list[str]:
    return [r.keyword for r in rank(query, replies, limit)]


SHOP = [reply(1, "发货", "发货时间"), reply(2, "退货流程", "如何退货"), reply(3, "退款", "退款到账"),
        reply(4, "快递退款", "快递丢失"), reply(5, "问候", "开场白", owner=ME)]


def test_hash_tui_finds_refund_and_returns_prefix_first():
    found = keywords("#退", SHOP)
    assert found[:2] == ["退款", "退货流程"]  # prefix matches, shorter keyword first
    assert "发货" not in found
    assert found.index("快递退款") > 1  # contains "退": after the prefix matches


def test_prefix_before_contains_before_fuzzy():
    replies = [reply(1, "申请退货"), reply(2, "退货流成说明"), reply(3, "退货流程")]
    # Both start with 退货 (shorter first); 申请退货 only contains it.
    assert keywords("退货", replies) == ["退货流程", "退货流成说明", "申请退货"]
    # A typo: nothing starts with or contains 退货流成, 退货流程 is the fuzzy match.
    replies = [reply(1, "发货"), reply(2, "退货流程"), reply(3, "退款流程说明")]
    assert keywords("退货流成", replies)[0] == "退货流程"
    assert "发货" not in keywords("退货流成", replies)


def test_title_matches_count_too():
    assert keywords("到账", SHOP) == ["退款"]


@pytest.mark.parametrize(("query", "expected"),
                         [("＃退款", "退款"),  # full-width #
                          ("退貨流程", "退货流程"),  # traditional characters
                          ("ＶＩＰ", "vip"), ("Vip", "vip")])  # full-width and case
def test_query_is_folded_like_keywords(query, expected):
    replies = [reply(1, "退款"), reply(2, "退货流程"), reply(3, "vip")]
    assert keywords(query, replies)[0] == expected


def test_greeting_keywords_are_found_though_the_bot_drops_them():
    replies = [reply(1, "您好"), reply(2, "hi"), reply(3, "亲")]
    assert keywords("您", replies) == ["您好"]
    assert keywords("hi", replies) == ["hi"]
    assert keywords("亲", replies) == ["亲"]


def test_personal_before_team_on_a_tie():
    replies = [reply(1, "退款"), reply(2, "退款", owner=ME)]
    assert [r.id for r in rank("退款", replies)] == [2, 1]


def test_empty_query_lists_personal_first_then_by_keyword():
    found = [r.keyword for r in rank("#", SHOP)]
    assert found[0] == "问候" and len(found) == 5


def test_at_most_the_limit():
    replies = [reply(i, f"退{i}") for i in range(30)]
    assert len(rank("退", replies)) == 10
    assert len(rank("", replies)) == 10
    assert len(rank("退", replies, limit=3)) == 3


def test_nothing_unrelated_is_suggested():
    assert keywords("物流", SHOP) == []


@pytest.mark.parametrize(("raw", "stored"), [("#退款", "退款"), ("＃退款", "退款"),
                                             ("  发货 ", "发货"), ("a" * 40, "a" * 40)])
def test_clean_keyword(raw, stored):
    assert clean_keyword(raw) == stored


@pytest.mark.parametrize(("raw", "message"),
                         [("有 空格", "no spaces"), ("全角\u3000空格", "no spaces"),
                          ("tab\there", "no spaces"), ("#", "must not be empty"),
                          ("a" * 41, "at most 40"), ("零\u200b宽", "control")])
def test_bad_keywords_say_why(raw, message):
    with pytest.raises(ValidationError, match=message) as info:
        clean_keyword(raw)
    assert info.value.field == "keyword"


def test_keyword_form():
    assert keyword_form("＃退貨ＡＢＣ") == "退货abc"
    assert keyword_form("Hello") == "hello"


CJK = st.sampled_from("退款货流程发问候您好快递")


@settings(deadline=None, max_examples=60)
@given(st.lists(st.text(CJK, min_size=1, max_size=5), min_size=0, max_size=15),
       st.text(CJK, min_size=1, max_size=3))
def test_ranking_properties(words, query):
    replies = [reply(i + 1, w, owner=ME if i % 2 else TEAM) for i, w in enumerate(words)]
    found = rank(query, replies)
    assert len(found) <= 10
    assert len({r.id for r in found}) == len(found)
    prefix = [keyword_form(r.keyword).startswith(query) for r in found]
    # Every prefix match comes before every other match.
    assert prefix == sorted(prefix, reverse=True)
    # No prefix match is left out while a worse one is shown.
    all_prefix = sum(keyword_form(w).startswith(query) for w in words)
    assert sum(prefix) == min(all_prefix, 10)


def test_short_queries_do_not_match_fuzzily():
    # 退货 and 退款 share a character but are different words.
    replies = [reply(1, "退款", "退款说明"), reply(2, "发货", "发货时间")]
    assert keywords("退货", replies) == []
    assert keywords("退货流成", [reply(1, "退货流程")]) == ["退货流程"]
