"""Normalisation: the way a visitor types must not change the match."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from meiqia.bot.normalize import MAX_QUESTION_CHARS
from meiqia.bot.normalize import QuestionError
from meiqia.bot.normalize import check_question
from meiqia.bot.normalize import normalize
from meiqia.bot.normalize import small_talk
from meiqia.bot.normalize import truncate_question


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ＡＢＣ１２３", "abc123"),  # full-width to half-width
        ("請問退貨運費誰出？", "退货运费谁出"),  # traditional to simplified, filler, punctuation
        ("您好，7天无理由退货吗？", "7天无理由退货"),  # digits kept, final particle gone
        ("Hi, please tell me: how do I RETURN an item?!", "tell me how do i return an item"),
        ("退款　　多久\n到账", "退款 多久 到账"),
        ("吗", "吗"),  # a particle alone is not erased to nothing
        ("亲，在吗？退货运费谁出", "退货运费谁出"),  # Taobao greeting
        ("亲子装怎么退", "亲子装怎么退"),  # 亲 inside a word carries meaning
        ("退货太麻烦了吧", "退货太麻烦了"),  # 麻烦 = troublesome, kept
        ("麻烦查一下物流", "查 物流"),  # polite 麻烦 at the start, 一下
        ("客服在吗", "客服"),
        ("Could you tell me my balance, please?", "tell me my balance"),
        ("what can you do", "what can you do"),  # "can you" kept inside
        ("I'd like to know the fee", "the fee"),
        ("退款 100 元　ＯＫ", "退款 100 元 ok"),
    ],
)
def test_normalize_examples(text, expected):
    assert normalize(text) == expected


@settings(deadline=None)  # no timing in unit tests
@given(st.text())
def test_normalize_never_raises_and_is_idempotent(text):
    once = normalize(text)
    assert normalize(once) == once
    assert once == once.strip()


FRAGMENTS = ["can you", "could you", "hi", "please", "请问", "吗", "呢", "a", "退货", "?",
             "i want to know", "你好", "您好", "好", "问", "一下", "请", "亲", "麻烦", " ", "，"]


@settings(deadline=None)
@given(st.lists(st.sampled_from(FRAGMENTS)), st.sampled_from(["", " "]))
def test_normalize_is_idempotent_on_filler_soup(parts, sep):
    # Removing one filler can expose another ("hi吗" → "hi" → ""): still a fixed point.
    once = normalize(sep.join(parts))
    assert normalize(once) == once


@settings(deadline=None)  # no timing in unit tests
@given(st.text(min_size=1))
def test_normalize_keeps_digits(text):
    folded = unicodedata.normalize("NFKC", text)  # ² and ２ are digits after NFKC
    digits = "".join(c for c in folded if c.isascii() and c.isdigit())
    assert "".join(c for c in normalize(text) if c.isascii() and c.isdigit()) == digits


@pytest.mark.parametrize(
    ("text", "reason"),
    [("", "empty"), ("   ", "empty"), ("😀😀👍", "no words"), ("\x00\x01\x02\x03", "binary")],
)
def test_unreadable_questions_are_refused_with_a_reason(text, reason):
    with pytest.raises(QuestionError, match=reason):
        check_question(text)


def test_long_questions_are_truncated_and_say_so():
    text, cut = truncate_question("退" * 2500)
    assert cut and len(text) == MAX_QUESTION_CHARS == 500
    assert truncate_question("退" * 500) == ("退" * 500, False)
    assert truncate_question("退款") == ("退款", False)


@pytest.mark.parametrize(
    ("text", "talk"),
    [("你好", "greeting"), ("在吗", "greeting"), ("您好！", "greeting"), ("你好，在吗？", "greeting"),
     ("在不在", "greeting"), ("hello", "greeting"), ("Hi!", "greeting"), ("hi there", "greeting"),
     ("謝謝", "thanks"), ("谢谢你", "thanks"), ("好的，谢谢", "thanks"), ("thanks", "thanks"),
     ("Thank you very much!", "thanks"),
     # a word that is no filler makes a question; emoji and bare particles are no greeting
     ("你好，退款多久到账", None), ("hi, where is my order", None), ("😀", None), ("吗", None),
     ("你", None), ("", None)],
)
def test_greetings_and_thanks_are_small_talk(text, talk):
    assert small_talk(text) == talk


@pytest.mark.parametrize("text", ["你好", "在吗", "谢谢", "hello", "thanks", "请问"])
def test_fillers_alone_are_not_refused_as_having_no_words(text):
    """docs/bot.md: only empty, emoji-only and binary questions are refused; a
    greeting normalises to nothing but has words (issue: "你好" got "cannot read")."""
    assert check_question(f" {text} ") == text
