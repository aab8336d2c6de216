"""A team's synonym groups and product words: merged when they overlap, refused
when the bot could not use them (bot/lexicon.py)."""

from __future__ import annotations

import pytest

from meiqia.bot.lexicon import Lexicon
from meiqia.bot.lexicon import check_words
from meiqia.bot.lexicon import merge_groups


def test_overlapping_groups_are_one_group():
    assert merge_groups([["退款", "退钱"], ["退钱", "还钱"]]) == [("退款", "退钱", "还钱")]
    # A later group can join two earlier ones; the first word of the first stays canonical.
    assert merge_groups([["a", "b"], ["c", "d"], ["d", "b"], ["x"]]) == [("a", "b", "c", "d")]
    chained = Lexicon([["退款", "退钱"], ["退钱", "还钱"]])
    one = Lexicon([["退款", "退钱", "还钱"]])
    assert chained.key == one.key and chained.folds == {"退钱": "退款", "还钱": "退款"}
    assert chained.fold("还钱要几天") == "退款要几天"


@pytest.mark.parametrize(("synonyms", "words", "field", "message"), [
    ([["退款", "退钱"], ["退款", " "]], [], "settings.bot_synonyms",
     "settings.bot_synonyms: line 2 (退款 =  ): a word is blank"),
    ([["退款", "退款"]], [], "settings.bot_synonyms",
     'settings.bot_synonyms: line 1 (退款 = 退款): "退款" is there twice'),
    ([["退款", "退款！"]], [], "settings.bot_synonyms",
     'settings.bot_synonyms: line 1 (退款 = 退款！): "退款" and "退款！" are the same word'),
    ([["😀", "🙂"]], [], "settings.bot_synonyms",
     'settings.bot_synonyms: line 1 (😀 = 🙂): "😀" has no word the bot reads '
     "(only emoji, punctuation or filler words)"),
    ([], ["小米 手环"], "settings.bot_user_words",
     'settings.bot_user_words: "小米 手环" has a space (a product word is one word; '
     "separate words are separate product words)"),
    ([], ["  "], "settings.bot_user_words", "settings.bot_user_words: a word is blank"),
])
def test_unusable_words_are_named(synonyms, words, field, message):
    assert check_words(synonyms, words) == (field, message)


def test_good_words_pass():
    assert check_words([["退款", "退钱"], ["退钱", "还钱"], ["refund", "money back"]],
                       ["小米手环8", "闪电退款"]) is None
