"""``services.safe_json``: the depth scan agrees with the parser, text checks
find every NUL and lone surrogate and nothing else."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from meiqia.services import safe_json
from meiqia.services.errors import ServiceError
from meiqia.services.errors import TooDeep
from meiqia.services.errors import TooLarge
from meiqia.services.errors import ValidationError

#: Strings full of what confuses a scanner: brackets, quotes, backslashes, CJK, emoji.
TEXT = st.text(alphabet=st.sampled_from(list('[]{}"\\ ,:a退货😀\n')), max_size=12)
VALUES = st.recursive(st.none() | st.booleans() | st.integers() | TEXT,
                      lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(TEXT, inner, max_size=3), max_leaves=30)


def depth(value: object) -> int:
    if isinstance(value, list):
        return 1 + max((depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((depth(v) for v in value.values()), default=0)
    return 0


@settings(max_examples=300, deadline=None)
@given(value=VALUES, ascii_only=st.booleans())
def test_the_scan_measures_the_depth_the_parser_would_build(value, ascii_only):
    text = json.dumps(value, ensure_ascii=ascii_only)
    assert safe_json.nesting_depth(text) == depth(value)
    assert safe_json.loads(text, max_depth=max(depth(value), 1)) == value


def test_deep_text_is_refused_before_the_parser_recurses():
    for text in ("[" * 20_000 + "]" * 20_000, '{"a":' * 5_000 + "1" + "}" * 5_000,
                 "[" * 100_000):  # unbalanced: still refused by depth, not parsed
        with pytest.raises(TooDeep) as caught:
            safe_json.loads(text)
        assert caught.value.message == "the JSON nests deeper than 32 levels"
    assert depth(safe_json.loads("[" * 32 + "]" * 32)) == 32  # the limit itself is read


def test_brackets_inside_strings_and_pathological_quotes_do_not_count():
    assert safe_json.nesting_depth('["[[[[{{{{", "\\"[[[", "\\\\"]') == 1
    # Unterminated strings and runs of escaped quotes: one linear pass, no backtracking.
    for text in ('x\\"' * 30_000, '"' + '\\"' * 30_000, '"\\' * 30_000, '"' * 60_001):
        assert safe_json.nesting_depth(text) == 0
        with pytest.raises(ServiceError):
            safe_json.loads(text)


@pytest.mark.parametrize("raw", [
    '"\\ud800"', '"\\uDFFF"', '["ok", "a\\u0000"]', '{"k": {"\\udbff": 1}}', '"x\\udc00y"'])
def test_nul_and_lone_surrogates_are_refused(raw):
    with pytest.raises(ValidationError) as caught:
        safe_json.loads(raw)
    assert "which is not text" in caught.value.message


@pytest.mark.parametrize("raw", [
    '"\\ud83d\\ude00"', '"😀"', '"\\\\ud800"', '"\\\\u0000"', '"\\u4f60\\u597d"', '"\\u0001"'])
def test_pairs_escaped_backslashes_and_other_controls_are_text(raw):
    assert isinstance(safe_json.loads(raw), str)


@pytest.mark.parametrize("raw", ["NaN", "-Infinity", "[1e400]", '{"a": -1e999}', "", "{",
                                 "1" * 5000])
def test_what_is_not_json_says_so(raw):
    with pytest.raises(ServiceError) as caught:
        safe_json.loads(raw)
    assert caught.value.message == "not valid JSON"


def test_bodies_are_sized_then_decoded():
    with pytest.raises(TooLarge):
        safe_json.loads_body(b"[" + b"1," * 600 + b"1]", 1000)
    with pytest.raises(ServiceError) as caught:
        safe_json.loads_body(b'"\xed\xa0\x80"', 1000)
    assert caught.value.message == "the body is not valid UTF-8 text"
    with pytest.raises(ServiceError) as caught:
        safe_json.loads_body(b"{nope", 1000)
    assert caught.value.message == "the body is not valid JSON"
    assert safe_json.loads_body('\ufeff{"问题": "退货"}'.encode(), 1000) == {"问题": "退货"}
