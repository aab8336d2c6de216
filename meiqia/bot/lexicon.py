"""A team's words: synonyms the bot treats as one, product words it never splits.

Chinese has no spaces, and paraphrases differ in words more than in characters
(退款 / 退钱, 快递 / 物流): character n-grams alone miss them. The index adds a
block of *words* from jieba's segmenter (``segment``) and folds each group of
synonyms into its first member before anything is counted (``fold``), in the
knowledge base and in the visitor's question alike.

jieba's own dictionary is shared by the process (one copy, loaded once, about
40 MB). A team's product words ("美洽", "闪电退款") are not added to it, which
would leak them into every other team's index: ``segment`` cuts the text at the
team's words first and lets jieba segment only what lies between them, so a
product word always stays one word and each team's index sees only its own.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable
from functools import lru_cache

from meiqia.bot.normalize import normalize

#: Limits of the team settings (also in the settings schema).
MAX_SYNONYM_GROUPS = 500
MAX_USER_WORDS = 2000

_jieba_lock = threading.Lock()


@lru_cache(maxsize=1)
def _tokenizer():  # noqa: ANN202 - jieba.Tokenizer
    """jieba's default tokenizer, initialised once (its dictionary takes ~0.5 s)."""
    import jieba

    jieba.setLogLevel(logging.WARNING)
    with _jieba_lock:
        jieba.dt.initialize()
    return jieba.dt


@lru_cache(maxsize=200_000)
def _jieba_words(run: str) -> tuple[str, ...]:
    """jieba's words of one CJK run (precise mode, no HMM for unknown words:
    the HMM invents words from single characters, which splits paraphrases
    differently; the character n-grams cover unknown words anyway)."""
    return tuple(w for w in _tokenizer().cut(run, HMM=False) if w.strip())


def merge_groups(groups: Iterable[Iterable[str]]) -> list[tuple[str, ...]]:
    """Synonym groups that share a word are one group: [退款, 退钱] and [退钱, 还钱]
    make [退款, 退钱, 还钱] (a word is the synonym of its synonyms' synonyms). The
    merged group keeps its words in the order first seen, so its canonical word
    is the first word of the first of the groups it was made of; groups of fewer
    than two words are dropped."""
    merged: list[list[str] | None] = []
    owner: dict[str, int] = {}  # word -> its group's index in ``merged``
    for group in groups:
        words = list(dict.fromkeys(group))
        joined = sorted({owner[w] for w in words if w in owner})
        if joined:  # fold every group it touches into the earliest one
            target = merged[joined[0]]
            assert target is not None
            for other in joined[1:]:
                for word in merged[other] or []:
                    if word not in target:
                        target.append(word)
                    owner[word] = joined[0]
                merged[other] = None
        else:
            target = []
            merged.append(target)
            joined = [len(merged) - 1]
        for word in words:
            if word not in target:
                target.append(word)
            owner[word] = joined[0]
    return [tuple(g) for g in merged if g is not None and len(g) >= 2]


def check_words(synonyms: list[list[str]], words: list[str]) -> tuple[str, str] | None:
    """The first problem of a team's synonym groups and product words, as
    ``(field, message)``, or None. Refused: a blank word, a word the bot
    cannot read (emoji or punctuation only, or only filler words such as 谢谢:
    normalisation removes it), a word twice in one group (or two words that
    are one to the bot, 退款 and 退款！), and a product word with a space (the
    segmenter keeps a product word whole: two words are two product words).
    A group is named by its line (1-based, as the KB page shows one group a
    line) and its words."""
    for n, group in enumerate(synonyms, 1):
        shown = " = ".join(group)
        seen: dict[str, str] = {}
        for word in group:
            where = f"settings.bot_synonyms: line {n} ({shown})"
            if not word.strip():
                return "settings.bot_synonyms", f"{where}: a word is blank"
            norm = normalize(word)
            if not norm:
                return "settings.bot_synonyms", (
                    f"{where}: \"{word}\" has no word the bot reads "
                    "(only emoji, punctuation or filler words)")
            if norm in seen:
                return "settings.bot_synonyms", (
                    f"{where}: \"{seen[norm]}\" and \"{word}\" are the same word"
                    if seen[norm] != word else f"{where}: \"{word}\" is there twice")
            seen[norm] = word
    for word in words:
        if not word.strip():
            return "settings.bot_user_words", "settings.bot_user_words: a word is blank"
        if any(c.isspace() for c in word.strip()):
            return "settings.bot_user_words", (
                f"settings.bot_user_words: \"{word}\" has a space "
                "(a product word is one word; separate words are separate product words)")
        if not normalize(word):
            return "settings.bot_user_words", (
                f"settings.bot_user_words: \"{word}\" has no word the bot reads "
                "(only emoji, punctuation or filler words)")
    return None


class Lexicon:
    """Synonym groups and user words of one team, in normalised form.

    Immutable after construction; ``key`` identifies its content (an index
    built with another lexicon must be rebuilt).
    """

    def __init__(self, synonyms: Iterable[Iterable[str]] = (),
                 words: Iterable[str] = ()) -> None:
        folds: dict[str, str] = {}
        groups = merge_groups(
            [m for m in dict.fromkeys(normalize(str(w)) for w in group) if m]
            for group in synonyms)
        for members in groups:
            for member in members[1:]:
                folds[member] = members[0]
        self.groups = tuple(groups)
        self.folds = folds
        self.words = tuple(sorted({w for w in (normalize(str(w)) for w in words) if w},
                                  key=lambda w: (-len(w), w)))
        #: Canonical synonyms are words too: 退钱 folded to 退款 stays one word.
        protected = sorted({*self.words, *(g[0] for g in groups)}, key=lambda w: (-len(w), w))
        self._fold_re = (re.compile("|".join(re.escape(m) for m in
                                             sorted(folds, key=lambda w: (-len(w), w))))
                         if folds else None)
        self._word_re = (re.compile("|".join(re.escape(w) for w in protected))
                         if protected else None)
        self.key = (self.groups, self.words)
        self._cache: dict[str, tuple[str, ...]] = {}

    def __bool__(self) -> bool:
        return bool(self.groups or self.words)

    def fold(self, text: str) -> str:
        """``text`` (normalised) with every synonym replaced by its group's first."""
        if self._fold_re is None:
            return text
        return self._fold_re.sub(lambda m: self.folds[m.group(0)], text)

    def segment(self, run: str) -> tuple[str, ...]:
        """The words of one CJK run: the team's words whole, jieba's between them."""
        if self._word_re is None:
            return _jieba_words(run)
        cached = self._cache.get(run)
        if cached is not None:
            return cached
        words: list[str] = []
        at = 0
        for match in self._word_re.finditer(run):
            if match.start() > at:
                words.extend(_jieba_words(run[at:match.start()]))
            words.append(match.group(0))
            at = match.end()
        if at < len(run):
            words.extend(_jieba_words(run[at:]))
        result = tuple(words)
        if len(self._cache) < 200_000:
            self._cache[run] = result
        return result


#: The lexicon of a team that has set nothing.
EMPTY = Lexicon()
