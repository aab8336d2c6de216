"""Agents' names as people type them: the one fold that decides both whether two
names are the same (``accounts._check_names_free``) and which agent an @mention
names (``messages.mentioned_agents``).

Why one fold: the uniqueness check folded case only, while a name typed in a
Chinese IME's full-width mode (``ＡｇｅｎｔＴｗｏ``) is the same name to every reader.
An agent renamed himself so, was accepted beside his colleague ``AgentTwo``, and a
supervisor's note "@ＡｇｅｎｔＴｗｏ 请看一下" handed him the colleague's
conversation (a docs-only attacker found it). Now a name's *key* is its NFKC form
(full-width Latin and digits, compatibility forms), case folded, with white space
and invisible characters removed: ``ＡｇｅｎｔＴｗｏ``, ``agenttwo`` and ``Agent Two``
have one key, so a team holds only one of them, and a mention of any of them finds
that one (two older accounts sharing a key: neither, docs/security.md §1).
"""

from __future__ import annotations

import bisect
import re
import unicodedata

#: Unicode categories of characters that show nothing (zero-width space, joiners,
#: direction marks): a name with one looks like a colleague's and is another.
INVISIBLE = frozenset({"Cf", "Cc", "Co", "Cn"})

#: A character that continues a Latin word or a number (after folding): it may not
#: come right before a mention's ``@`` ("a@b.com" is an address) nor right after a
#: name that ends in one ("@Li Weiming" is not "Li Wei").
_WORD = re.compile(r"[a-z0-9_]")


#: Characters NFKC keeps apart that read as another in a name: kana and CJK strokes
#: drawn like a Chinese character (客服ー and 客服ニ beside 客服一 and 客服二 were
#: accepted: an outside check), and Cyrillic and Greek letters drawn like Latin ones
#: (AgеntTwo with a Cyrillic е). Each maps to the character it is taken for; the
#: uppercase forms are covered by the case fold that comes first.
LOOKALIKES = str.maketrans({
    # katakana, CJK strokes and Hangzhou numerals → the Chinese character they look like
    "ー": "一", "㇐": "一", "─": "一", "━": "一", "〡": "丨", "㇑": "丨",
    "ニ": "二", "ロ": "口", "エ": "工", "カ": "力", "タ": "夕", "ト": "卜", "ハ": "八",
    "〇": "○", "ヒ": "匕", "ム": "厶", "メ": "乂", "ネ": "礻", "チ": "千",
    # Cyrillic → Latin
    "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o",
    "р": "p", "с": "c", "т": "t", "у": "y", "х": "x", "і": "i", "ј": "j", "ѕ": "s",
    "ԁ": "d", "ԛ": "q", "ԝ": "w", "ү": "y", "һ": "h",
    # Greek → Latin
    "α": "a", "β": "b", "ε": "e", "η": "n", "ι": "i", "κ": "k", "ν": "v", "ο": "o",
    "ρ": "p", "τ": "t", "υ": "u", "χ": "x", "ζ": "z",
})


def _fold_char(char: str) -> str:
    """One character folded: NFKC, case folded (NFKC again: folding can undo it),
    a look-alike taken for what it looks like (``LOOKALIKES``); any white space is
    one space; an invisible character is nothing."""
    if char.isspace():
        return " "
    if unicodedata.category(char) in INVISIBLE:
        return ""
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", char).casefold())
    return "".join(" " if c.isspace() else c for c in folded.translate(LOOKALIKES))


def _folded(text: str, spaces: bool) -> tuple[str, list[int]]:
    """``text`` (NFC first, so a letter and its combining accent are one character)
    folded character by character, and for each folded character the index of the
    character of the NFC text it came from. ``spaces``: runs of white space are one
    space, else none."""
    source = unicodedata.normalize("NFC", text or "")
    out: list[str] = []
    where: list[int] = []
    for index, char in enumerate(source):
        for piece in _fold_char(char):
            if piece == " " and (not spaces or not out or out[-1] == " "):
                continue
            out.append(piece)
            where.append(index)
    return "".join(out), where


def spelled(name: str) -> str:
    """A name as written, folded: NFKC, case folded, white space one space, trimmed
    (``Li  Wei`` → ``li wei``)."""
    return _folded(name, spaces=True)[0].strip()


def name_key(name: str) -> str:
    """What makes two names the same: the folded name without any white space
    (``ＡｇｅｎｔＴｗｏ``, ``Agent Two`` and ``agenttwo`` → ``agenttwo``)."""
    return _folded(name, spaces=False)[0]


def extends(name: str, other: str) -> bool:
    """Whether ``name`` is ``other`` (by key) run on by a space, a sign or a letter of
    a script without word breaks (``x2 please`` after ``x2``, ``李客服看一下`` after
    ``李客服``, ``Agent Two please`` after ``AgentTwo``): an @mention of ``other``
    followed by those words could go to ``name``, the longer match. A Latin letter or
    a digit does not count: ``@Lis`` never meant ``Li``, and ``李客服2`` beside
    ``李客服`` is a numbered colleague (docs/protocol.md)."""
    key, short = name_key(name), name_key(other)
    if not short or len(key) <= len(short) or not key.startswith(short):
        return False
    written = spelled(name)
    seen = 0
    for index, char in enumerate(written):
        if char == " ":
            continue
        if seen == len(short):
            return written[index - 1] == " " or not _WORD.match(char)
        seen += 1
    return False


#: The characters NFKC folds to ``@``: the ASCII one, the full-width ``＠`` (U+FF20)
#: a Chinese IME types in full-width mode, and the small ``﹫`` (U+FE6B). Each
#: starts a mention as ``@`` does (the fold below makes it one). Written out, not
#: computed at import (half a second); tests/security/test_name_lookalikes.py checks
#: it is every character NFKC folds to ``@``.
AT_SIGNS = frozenset("@\uff20\ufe6b")


def has_at_sign(body: str | None) -> bool:
    """Whether ``body`` holds an at-sign of any width: whether it may mention anyone.
    The one test before the costlier fold (a note with only ``＠`` mentioned nobody
    when the caller looked for the ASCII sign alone)."""
    return not AT_SIGNS.isdisjoint(body or "")


def mentioned(body: str, agents: list[tuple[int, str, str]]) -> list[int]:
    """Ids of the agents ``body`` @-mentions, by name or nickname, in order
    (``messages.mentioned_agents`` says the rules)."""
    if not has_at_sign(body):
        return []
    owners: dict[str, set[int]] = {}
    written: dict[str, str] = {}  # a spelling → its key
    for agent_id, name, nick in agents:
        for n in {name or "", nick or ""}:
            key = name_key(n)
            if key:
                owners.setdefault(key, set()).add(agent_id)
                written.setdefault(spelled(n), key)
    spellings = sorted(written.items(), key=lambda pair: -len(pair[0]))
    keys = sorted(owners, key=len, reverse=True)
    text, where = _folded(body, spaces=True)
    squeezed, squeezed_where = _folded(body, spaces=False)
    found: list[int] = []

    def add(key: str) -> None:
        ids = owners[key]
        if len(ids) == 1:
            (agent_id,) = ids
            if agent_id not in found:
                found.append(agent_id)

    at = text.find("@")
    while at != -1:
        if at == 0 or not _WORD.match(text[at - 1]):
            key = _as_written(text, where, at + 1, spellings)
            if key is None and text[at + 1:at + 2] not in ("", " "):
                start = bisect.bisect_right(squeezed_where, where[at])
                key = _spaced_differently(squeezed, squeezed_where, start, keys)
            if key is not None:
                add(key)
        at = text.find("@", at + 1)
    return found


def _ends_cleanly(text: str, where: list[int], end: int, name: str) -> bool:
    """A match of ``name`` ending at ``end`` of ``text`` ends at a character's edge,
    and not inside a Latin word or a number (``@Li`` is not in ``@Lisa``); white
    space the fold took out of ``text`` ends a word."""
    if end >= len(text):
        return True
    if where[end] == where[end - 1]:  # inside one character's fold (``ß`` → ``ss``)
        return False
    if where[end] > where[end - 1] + 1:  # white space (or an invisible one) between
        return True
    return not (_WORD.match(name[-1]) and _WORD.match(text[end]))


def _as_written(text: str, where: list[int], start: int,
                spellings: list[tuple[str, str]]) -> str | None:
    """The key of the longest name written here as the agent writes it (spaces where
    his name has them): ``@李客服2号`` is 李客服2, ``@李客服 2号桌`` is 李客服."""
    for spelling, key in spellings:
        if text.startswith(spelling, start) and _ends_cleanly(
                text, where, start + len(spelling), spelling):
            return key
    return None


def _spaced_differently(squeezed: str, where: list[int], start: int,
                        keys: list[str]) -> str | None:
    """The one name written here with other spaces (``@Agent Two`` for AgentTwo), if
    exactly one fits: two that fit (``@Agent Two please`` with AgentTwo and
    AgentTwoplease) mention neither, rather than guess."""
    fits = [key for key in keys if squeezed.startswith(key, start)
            and _ends_cleanly(squeezed, where, start + len(key), key)]
    return fits[0] if len(fits) == 1 else None
