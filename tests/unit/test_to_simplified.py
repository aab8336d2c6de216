"""``normalize.to_simplified`` skips OpenCC for a text it would not change, and gives
exactly OpenCC's conversion for every text."""

from __future__ import annotations

import re
from pathlib import Path

from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from opencc import OpenCC

from meiqia.bot.normalize import _t2s_chars
from meiqia.bot.normalize import normalize
from meiqia.bot.normalize import to_simplified
from meiqia.services.quick_replies import keyword_form

REFERENCE = OpenCC("t2s")
DEMO_KB = Path(__file__).resolve().parents[2] / "knowledge_base" / "shop.zh-CN.yaml"
REFERENCE.convert("")  # loads its dictionaries
_TABLES = [table for group in REFERENCE._dict_chain_data for _, _, table in group]
#: Characters the dictionaries hold in keys (phrase and single), and common
#: simplified ones: a text drawn from them meets phrases, single characters and
#: text OpenCC leaves alone, next to each other.
_KEY_CHARS = sorted({c for table in _TABLES for key in table for c in key})
_ALPHABET = _KEY_CHARS[::7] + list("的了我你退款快递物流订单发货请问怎么为什么，。？！ abcXYZ123")


def test_simplified_text_is_skipped_and_traditional_text_is_converted():
    assert _t2s_chars() is not None
    assert _t2s_chars().isdisjoint("请问我的快递什么时候到？一目了然")
    assert to_simplified("請問我的快遞什麼時候到？") == "请问我的快递什么时候到？"
    assert to_simplified("一目瞭然") == REFERENCE.convert("一目瞭然") == "一目了然"
    assert to_simplified("乾隆皇帝") == REFERENCE.convert("乾隆皇帝")
    assert normalize("退貨運費誰付") == normalize("退货运费谁付")
    assert keyword_form("＃退貨") == "退货"


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=st.sampled_from(_ALPHABET), max_size=40))
def test_the_same_as_opencc_on_mixed_text(text):
    assert to_simplified(text) == REFERENCE.convert(text)


def test_the_same_as_opencc_on_every_phrase_key_and_every_line_of_the_demo_kb():
    phrases = [key for table in _TABLES for key in table if len(key) > 1]
    assert phrases
    for key in phrases:
        assert to_simplified(key) == REFERENCE.convert(key), key
        assert to_simplified(f"好{key}的") == REFERENCE.convert(f"好{key}的"), key
    lines = [line for line in DEMO_KB.read_text(encoding="utf-8").splitlines()
             if re.search("[\u4e00-\u9fff]", line)]
    assert len(lines) > 100
    for text in lines:
        assert to_simplified(text) == REFERENCE.convert(text), text
