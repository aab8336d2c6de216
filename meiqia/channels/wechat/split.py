"""A reply longer than one WeChat text message, in pieces that read well.

WeChat takes at most 2048 bytes of UTF-8 in a customer-service text
(``api.MAX_TEXT_BYTES`` keeps under it). A longer reply goes out as several
messages, each cut at the best boundary in the second half of what fits:

1. a paragraph (an empty line),
2. a line end,
3. a sentence end: Chinese 。！？… (with the closing quotes and brackets after
   it), English ``.`` ``!`` ``?`` before a space,
4. a clause: Chinese ，、；：, English ``,`` ``;`` ``:`` before a space, or a space,
5. beside a Chinese character (Chinese has no spaces: between two characters is
   where a line may break), never inside an English word or a number,
6. only when none of those is there, a hard cut.

No cut falls inside a character (the text is cut as characters, measured in
bytes), inside an emoji of several code points (a skin tone, a ZWJ family, a
flag, a keycap) or before a combining mark. The whitespace at a cut is dropped
(the line break, the space, the indent that follows); nothing else is.

The cut only looks at the second half of what fits, so a reply needs few
messages (WeChat allows five replies per message of the user).
"""

from __future__ import annotations

import re
import unicodedata

#: Where a piece may end, best first: (pattern, whether the match is dropped).
#: A kept match (a sentence's or clause's punctuation) ends the piece; a dropped
#: one (whitespace) is between the pieces.
_LEVELS: tuple[tuple[re.Pattern[str], bool], ...] = (
    (re.compile(r"[ \t\u3000]*\n[ \t\u3000]*\n\s*"), True),                   # paragraph
    (re.compile(r"[ \t\u3000]*\n\s*"), True),                                 # line end
    (re.compile(r"(?:[。！？…]+|[.!?]+(?=[\"')\]]*\s))[”’」』）)\]\"'》]*"), False),  # sentence
    (re.compile(r"(?:[，、；：]|[,;:](?=\s))[”’」』）)\]\"']*"), False),         # clause
    (re.compile(r"\s+"), True),                                               # space
)

_ZWJ = "\u200d"
_RI = range(0x1F1E6, 0x1F200)  # regional indicators: two make a flag


def _fits(text: str, limit: int) -> int:
    """How many characters of ``text`` fit in ``limit`` bytes of UTF-8."""
    size = 0
    for index, char in enumerate(text):
        size += len(char.encode("utf-8", "surrogatepass"))
        if size > limit:
            return index
    return len(text)


def _extends(char: str) -> bool:
    """A code point that belongs to the character before it."""
    code = ord(char)
    return (unicodedata.category(char) in ("Mn", "Me", "Mc") or char == _ZWJ
            or 0xFE00 <= code <= 0xFE0F or 0xE0100 <= code <= 0xE01EF  # variation selectors
            or 0x1F3FB <= code <= 0x1F3FF  # skin tones
            or 0xE0020 <= code <= 0xE007F)  # tags (the flags of England, Scotland…)


def _safe(text: str, index: int) -> bool:
    """Whether a cut before ``text[index]`` keeps every character whole."""
    if index <= 0 or index >= len(text):
        return index > 0
    before, after = text[index - 1], text[index]
    if _extends(after) or before == _ZWJ or (before == "\r" and after == "\n"):
        return False
    if 0xD800 <= ord(before) <= 0xDBFF:  # a high surrogate (text decoded by hand)
        return False
    if ord(after) in _RI and ord(before) in _RI:
        run = 0
        while index - 1 - run >= 0 and ord(text[index - 1 - run]) in _RI:
            run += 1
        return run % 2 == 0  # an odd run: the cut would split a flag
    return True


def _wide(char: str) -> bool:
    return unicodedata.east_asian_width(char) in ("W", "F")


def _word(char: str) -> bool:
    """A letter or digit of a word or number (not a Chinese character: those are
    words of their own)."""
    return char.isalnum() and not (_wide(char) and unicodedata.category(char) == "Lo")


def _cut(text: str, limit: int) -> tuple[int, int]:
    """Where the first piece of ``text`` ends and the rest starts."""
    fits = _fits(text, limit)
    low = max(1, fits // 2)
    window = text[:fits + 1]  # one more: a boundary may look at what follows
    for pattern, dropped in _LEVELS:
        best = None
        for match in pattern.finditer(window):
            end = match.start() if dropped else match.end()
            if low <= end <= fits and _safe(text, end):
                best = (end, match.end())
        if best is not None:
            return best
    for end in range(fits, low - 1, -1):  # beside a Chinese character, a word kept whole
        if _safe(text, end) and (_wide(text[end - 1]) or _wide(text[end])) \
                and not (_word(text[end - 1]) and _word(text[end])):
            return end, end
    for end in range(fits, 0, -1):  # a hard cut, between whole characters
        if _safe(text, end):
            return end, end
    return max(1, fits), max(1, fits)


def split_text(text: str, limit: int) -> list[str]:
    """``text`` in pieces of at most ``limit`` UTF-8 bytes, cut at the best
    boundary (the module docstring); one piece when it fits."""
    pieces: list[str] = []
    rest = text
    while len(rest.encode("utf-8", "surrogatepass")) > limit:
        end, start = _cut(rest, limit)
        piece = rest[:end].rstrip()
        if piece:
            pieces.append(piece)
        rest = rest[start:].lstrip()
    if rest or not pieces:
        pieces.append(rest)
    return pieces
