"""Normalise questions so that the way a visitor types does not change the match.

Chinese first: NFKC folds full-width letters, digits and punctuation to their
half-width forms; traditional characters are folded to simplified (OpenCC's
tables); case is folded; punctuation, symbols and filler words (请问, 您好,
please…) are removed; digits are kept because they carry meaning (7天, 99元).
Words are never assumed to be separated by spaces.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

#: Longest question the bot reads; longer ones are cut and the visitor is told.
#: A pasted page (an error log, an order list) cost 20 ms of CPU in n-grams,
#: rapidfuzz and word weights in the worker serving the chat, and no FAQ
#: question is that long: the longest of the development sets has 433
#: characters (BANKING77; CLINC150 136, zh_faq 36), so their figures do not move
#: (docs/bot.md, "Long questions"). The index cuts there too (``index.query``).
MAX_QUESTION_CHARS = 500

#: Fillers that carry no meaning wherever they stand (longest first).
ZH_FILLERS = (
    "请问一下", "想问一下", "麻烦问一下", "麻烦问下", "问一下", "请问", "打扰一下", "打扰了",
    "你好", "您好", "哈喽", "嗨", "在吗", "在不在", "谢谢", "多谢", "一下",
)
#: Fillers only at the start: "亲" opens a question on Taobao but is part of 亲子,
#: "麻烦" is polite at the start but means "troublesome" in 退货太麻烦.
#: (Regular expressions; "亲" only as a word of its own.)
ZH_LEADING = ("麻烦您", "麻烦你", "麻烦", "亲爱的", "亲(?= |$)")
#: Sentence-final particles, removed only at the end of the question.
ZH_FINAL_PARTICLES = "吗呢吧啊呀哦嘛啦哈么"
EN_FILLERS = (
    "please", "pls", "plz", "hi", "hello", "hey", "thanks", "thank you", "thx",
    "excuse me", "sorry",
)
#: Politeness that opens an English question ("can you tell me..."): removed
#: only at the start, because "what can you do" needs its words.
EN_LEADING = (
    "can you", "could you", "would you", "will you", "can u", "i want to know",
    "i would like to know", "i d like to know", "i wanna know", "do you know",
)
_EN_FILLER_RE = re.compile(r"\b(?:" + "|".join(re.escape(w) for w in EN_FILLERS) + r")\b")
_EN_LEADING_RE = re.compile(r"^(?:(?:" + "|".join(re.escape(w) for w in EN_LEADING) + r")\b ?)+")
_ZH_FILLER_RE = re.compile("|".join(re.escape(w) for w in ZH_FILLERS))
_ZH_LEADING_RE = re.compile("^(?:(?:" + "|".join(ZH_LEADING) + ") ?)+")
_FINAL_RE = re.compile(f"(?:\\s*[{ZH_FINAL_PARTICLES}])+$")
_CJK_CLASS = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002a6df"
_HAS_CJK_RE = re.compile(f"[{_CJK_CLASS}]")
_HAS_LATIN_RE = re.compile("[a-z]")
#: Everything that is not a letter, a digit or a CJK character (and "_").
_DROP_RE = re.compile(f"(?:[^\\w{_CJK_CLASS}]|_)+")


#: Words of thanks among the fillers: a message of fillers only that has one of
#: these is thanks ("谢谢", "thank you"), any other is a greeting ("你好", "在吗",
#: "hi", "请问"); see ``small_talk``.
THANKS_WORDS = ("谢谢", "多谢", "感谢", "thanks", "thank you", "thx")
#: Words that may stand beside greetings and thanks without making a question
#: ("谢谢你", "好的，谢谢", "thank you very much", "hi there"): only ever removed
#: from a message that is small talk otherwise, never from a question.
SMALL_TALK_EXTRA = ("你们", "你", "您", "大家", "好的", "好", "了", "啦", "非常", "十分",
                    "ok", "okay", "you", "there", "very much", "so much", "a lot", "all",
                    "again")
_THANKS_RE = re.compile("|".join(re.escape(w) for w in THANKS_WORDS))
_FILLER_ANY_RE = re.compile("|".join(re.escape(w) for w in sorted(
    (*ZH_FILLERS, *EN_FILLERS, *THANKS_WORDS), key=lambda w: (-len(w), w))))
_SMALL_TALK_REST_RE = re.compile(
    "(?:" + "|".join(re.escape(w) for w in sorted(SMALL_TALK_EXTRA, key=lambda w: (-len(w), w)))
    + f"|[{ZH_FINAL_PARTICLES}]|\\s)*")


class QuestionError(ValueError):
    """The question cannot be answered at all (empty, only emoji, binary)."""


@lru_cache(maxsize=1)
def _t2s():  # noqa: ANN202 - OpenCC converter
    from opencc import OpenCC

    converter = OpenCC("t2s")
    converter.convert("")  # loads its dictionaries
    return converter


@lru_cache(maxsize=1)
def _t2s_chars() -> frozenset[str] | None:
    """The characters without which OpenCC's t2s conversion changes nothing.

    A dictionary changes a text only where one of its keys occurs, and a key that
    maps to itself changes nothing. So: every character the character table
    changes (about 4,100), and the characters of a phrase that changes without
    holding one of those (none in this version; phrases such as 一目瞭然 hold
    瞭). A text with none of them is its own conversion. Most of what our
    visitors write is simplified already, and OpenCC, pure Python, cost about a
    tenth of a message's CPU on the agent's suggestions. None (convert every
    text) if OpenCC keeps its dictionaries otherwise than this version does."""
    try:
        tables = [table for group in _t2s()._dict_chain_data for _, _, table in group]
        changed = {key for table in tables for key, value in table.items()
                   if len(key) == 1 and value != key}
        for table in tables:
            for key, value in table.items():
                if len(key) > 1 and value != key and changed.isdisjoint(key):
                    changed.update(key)
        return frozenset(changed)
    except (AttributeError, TypeError, ValueError):
        return None


def to_simplified(text: str) -> str:
    """OpenCC's t2s conversion of ``text``, skipped when nothing in it could change."""
    chars = _t2s_chars()
    if chars is not None and chars.isdisjoint(text):
        return text
    return _t2s().convert(text)


def has_cjk(text: str) -> bool:
    """Whether ``text`` has a Chinese character anywhere."""
    return _HAS_CJK_RE.search(text) is not None


def is_cjk(char: str) -> bool:
    code = ord(char)
    return (
        0x4E00 <= code <= 0x9FFF
        or 0x3400 <= code <= 0x4DBF
        or 0x20000 <= code <= 0x2A6DF
        or 0xF900 <= code <= 0xFAFF
    )


def normalize(text: str) -> str:
    """Return the matching form of ``text`` (never raises for any str)."""
    text = unicodedata.normalize("NFKC", text)
    if _HAS_CJK_RE.search(text):  # OpenCC is pure Python: skip it for Latin text
        text = to_simplified(text)
    text = text.casefold()
    text = _DROP_RE.sub(" ", text)
    # Removing one filler can expose another ("hi吗" → "hi"): repeat until
    # nothing changes, so that normalize(normalize(x)) == normalize(x).
    while True:
        stripped = _strip_fillers(text)
        if stripped == text:
            return text
        text = stripped


@lru_cache(maxsize=512)
def normalize_asked(text: str) -> str:
    """``normalize`` for a question being asked: the same text is normalised
    two or three times on its way (``check_question``, the human-words check,
    the index), and OpenCC is pure Python, so the last few hundred are kept.
    A knowledge base's build uses ``normalize``, not this: it would only churn."""
    return normalize(text)


def _strip_fillers(text: str) -> str:
    # The Chinese patterns need a CJK character and the English ones a Latin
    # letter: skipping the ones that cannot match halves the cost of
    # normalising a large KB (100,000 questions at every build).
    cjk = _HAS_CJK_RE.search(text) is not None
    latin = _HAS_LATIN_RE.search(text) is not None
    if cjk:
        text = _ZH_FILLER_RE.sub(" ", text)
    if latin:
        text = _EN_FILLER_RE.sub(" ", text)
    text = " ".join(text.split())
    if latin:
        text = _EN_LEADING_RE.sub("", text).strip() or text
    if cjk:
        text = _ZH_LEADING_RE.sub("", text).strip() or text
        # "吗" alone, or "好吧", should not vanish entirely.
        text = _FINAL_RE.sub("", text).strip() or text
    return text


def truncate_question(text: str, limit: int = MAX_QUESTION_CHARS) -> tuple[str, bool]:
    """Cut a question to ``limit`` characters; say whether it was cut."""
    if len(text) <= limit:
        return text, False
    return text[:limit], True


def small_talk(text: str) -> str | None:
    """``"thanks"`` or ``"greeting"`` when a message has words but every one of
    them is a filler ("你好", "在吗", "谢谢", "hello", "hi", "thanks", "请问"…), so
    that nothing is left to look up; else None.

    Such a message is no question the knowledge base could answer, and no
    failure of the bot either: the bot greets back or says "不客气" instead of
    looking it up (``services.bot.ask``). A message of emoji or punctuation only
    is not small talk (``check_question`` refuses it), nor is one with a word
    that is not a filler ("你好，退款多久到账" is a question).
    """
    if not isinstance(text, str) or not text.strip():
        return None
    if normalize_asked(text) and not _SMALL_TALK_REST_RE.fullmatch(normalize_asked(text)):
        return None
    folded = unicodedata.normalize("NFKC", text)
    if _HAS_CJK_RE.search(folded):
        folded = _t2s().convert(folded)
    folded = " ".join(_DROP_RE.sub(" ", folded.casefold()).split())
    if not _FILLER_ANY_RE.search(folded):
        return None  # "吗", "你": not a greeting, an (odd) question
    return "thanks" if _THANKS_RE.search(folded) else "greeting"


def check_question(text: str) -> str:
    """Refuse questions the bot cannot read at all, with a reason to show.

    Returns the question with surrounding white space removed.
    """
    if not isinstance(text, str):
        raise QuestionError("the question must be text")
    stripped = text.strip()
    if not stripped:
        raise QuestionError("the question is empty")
    controls = sum(
        1 for c in stripped if unicodedata.category(c) in {"Cc", "Cs", "Co", "Cn"}
        and c not in "\n\t\r"
    )
    if controls and controls * 10 >= len(stripped):
        raise QuestionError("the question looks like binary data, not text")
    # Fillers alone ("你好", "thanks") normalise to nothing too, but they are words:
    # small talk, which the bot answers as such (``small_talk``).
    if not normalize_asked(stripped) and small_talk(stripped) is None:
        raise QuestionError("the question has no words (only emoji or punctuation)")
    return stripped
