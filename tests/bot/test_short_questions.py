"""Short questions are topics: the bot offers the entries on that topic (issue 20).

On the demo knowledge base "怎么支付", "退款" or "发票" carry one content word
and little else; the calibrated score of such a question stays low (there is
little to be sure of), and the bot declared them unrecognised. An entry that
holds every content word of a short question is now offered at least as a
"did you mean" (``KBIndex.calibration_of``), while short questions about
something the KB never mentions stay unrecognised.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from meiqia.bot.index import KBIndex
from meiqia.bot.kbfile import KBEntry
from meiqia.bot.kbfile import load_kb

DEMO = Path(__file__).resolve().parents[2] / "knowledge_base"


@pytest.fixture(scope="module")
def demo_zh() -> KBIndex:
    return KBIndex(load_kb(DEMO / "shop.zh-CN.yaml"), background_rebuild=False)


@pytest.mark.parametrize(("question", "expected"), [
    ("怎么支付", "pay-methods"),
    ("支付", "pay-methods"),
    ("怎么付款", "pay-methods"),
    ("退款", "refund-time"),
    ("怎么退款", "refund-time"),
    ("退货", "return-how"),
    ("发票", "invoice-how"),
    ("开发票", "invoice-how"),
    ("物流", "ship-tracking"),
    ("积分", "points-earn"),
])
def test_short_chinese_questions_are_answered_or_suggested_on_the_demo_kb(
        demo_zh: KBIndex, question: str, expected: str) -> None:
    decision = demo_zh.decide(demo_zh.query(question, k=3))
    assert decision.kind in ("answer", "suggest"), (question, decision)
    offered = [c.entry_id for c in decision.candidates]
    assert expected in offered, (question, offered)


@pytest.mark.parametrize("question", ["天气", "今天天气", "股票", "怎么", "怎么办", "你是谁"])
def test_short_questions_about_nothing_in_the_kb_stay_unrecognised(
        demo_zh: KBIndex, question: str) -> None:
    decision = demo_zh.decide(demo_zh.query(question, k=3))
    assert decision.kind == "unrecognised", (question, decision)


def test_the_topic_word_may_be_in_any_question_of_the_entry() -> None:
    # 支付 is only in the third question of "pay"; its best match for 怎么支付
    # is 怎么付款 by characters, yet the entry holds the word and is offered.
    entries = [
        KBEntry("pay", ["支持哪些付款方式", "怎么付款", "可以微信支付吗"], "支付宝、微信"),
        KBEntry("pay-failed", ["付款失败怎么办", "支付不成功", "一直提示支付失败"], "换一张卡"),
        KBEntry("ship", ["多久发货", "什么时候发货"], "当天发货"),
        KBEntry("invoice", ["怎么开发票", "发票怎么申请"], "订单详情里申请"),
    ]
    index = KBIndex(entries, background_rebuild=False)
    found = index.query("怎么支付", k=3)
    by_id = {c.entry_id: c for c in found}
    assert by_id["pay"].features["keyword"] == 1.0
    assert by_id["pay-failed"].features["keyword"] == 1.0
    assert all(c.features["keyword"] == 0.0 for c in found if c.entry_id in ("ship", "invoice"))
    decision = index.decide(found)
    assert decision.kind in ("answer", "suggest")
    assert {"pay", "pay-failed"} <= {c.entry_id for c in decision.candidates}


def test_a_long_question_is_not_a_topic() -> None:
    entries = [KBEntry("pay", ["可以微信支付吗", "怎么付款"], "a"),
               KBEntry("ship", ["多久发货", "什么时候发货"], "b")]
    index = KBIndex(entries, background_rebuild=False)
    found = index.query("我昨天用微信支付买的那件外套今天能不能发货", k=2)
    assert all(c.features["keyword"] == 0.0 for c in found)
