"""Where a long WeChat reply is cut (``meiqia/channels/wechat/split.py``): the best
boundary in the second half of what fits, never inside a word, a number, a
character or an emoji, and never over the byte limit."""

from __future__ import annotations

import re

import pytest

from meiqia.channels.wechat.api import MAX_TEXT_BYTES
from meiqia.channels.wechat.split import split_text


def pieces(text: str, limit: int = MAX_TEXT_BYTES) -> list[str]:
    got = split_text(text, limit)
    assert all(len(p.encode("utf-8")) <= limit for p in got), [len(p.encode()) for p in got]
    assert all(p.strip() for p in got)
    # Only the whitespace at a cut is gone.
    assert re.sub(r"\s", "", "".join(got)) == re.sub(r"\s", "", text)
    return got


def test_short_text_is_one_piece_as_it_is():
    assert split_text("你好 ", 2000) == ["你好 "]
    assert split_text("", 2000) == [""]


def test_a_paragraph_comes_before_a_sentence_end():
    first = "退款将在七个工作日内原路返回。" * 30  # 1,350 bytes
    second = "如需发票请在订单页面申请。" * 30
    got = pieces(first + "\n\n" + second)
    assert got == [first, second]


def test_chinese_without_spaces_is_cut_after_a_sentence():
    text = "".join(f"您的第{n}个包裹已发出，预计明天送达" + "。！？"[n % 3] for n in range(200))
    got = pieces(text)
    assert len(got) > 2 and all(p.endswith(("。", "！", "？")) for p in got)
    assert "".join(got) == text


def test_a_sentence_end_takes_its_closing_quote_along():
    text = ("他说：“好的，我们马上处理。”" + "请稍候" * 10) * 60
    got = pieces(text)
    assert all(p.endswith("。”") for p in got[:-1]), [p[-3:] for p in got]


def test_english_is_cut_after_a_sentence_then_a_comma_never_in_a_word():
    text = " ".join(f"Order {n} costs 1,234.50 yuan. It ships today." for n in range(80))
    got = pieces(text)
    assert all(p.endswith(".") for p in got) and " ".join(got) == text
    no_stop = ", ".join(f"order {n} costs 1,234.50 yuan" for n in range(120))
    got = pieces(no_stop)
    assert all(p.endswith(",") for p in got[:-1]) and " ".join(got) == no_stop
    words = " ".join(f"word{n}" for n in range(600))
    got = pieces(words)
    assert " ".join(got) == words


def test_chinese_with_no_punctuation_is_cut_beside_a_character_not_in_a_number():
    text = "请您核对运单号SF1357924680和订单号20261206000123是否一致然后告诉我们" * 60
    got = pieces(text)
    assert "".join(got) == text
    for before, after in zip(got, got[1:], strict=False):
        assert not (before[-1].isascii() and before[-1].isalnum()
                    and after[0].isascii() and after[0].isalnum()), (before[-9:], after[:9])


@pytest.mark.parametrize("unit", ["😀", "👍🏽", "👨‍👩‍👧", "🇨🇳", "1️⃣", "e\u0301", "𠀀"])
def test_a_cut_never_splits_a_character_or_an_emoji(unit):
    text = unit * (3 * MAX_TEXT_BYTES // len(unit.encode()))
    got = pieces(text)
    assert "".join(got) == text
    assert all(p == unit * (len(p) // len(unit)) for p in got), [ascii(p[-3:]) for p in got]
    odd = "中" + unit * 700  # shifted by three bytes: the limit falls mid-character
    got = pieces(odd)
    assert "".join(got) == odd and all(p.lstrip("中") == unit * (len(p.lstrip("中")) // len(unit))
                                       for p in got)


def test_a_run_with_no_boundary_is_cut_hard_at_the_limit():
    url = "https://shop.example/" + "a" * 5000
    got = pieces(url)
    assert "".join(got) == url and len(got[0].encode()) == MAX_TEXT_BYTES
