"""Untrusted JSON text → Python values, bounded before it is parsed.

Every JSON a client sends (API request bodies, websocket frames) is read here,
so one set of rules holds everywhere (docs/security.md, "Bad input"):

- **Size** is checked by the caller before the text is even read whole (a
  request body's Content-Length, a frame's length) and again here.
- **Nesting depth** is measured by a cheap scan of the raw text *before*
  ``json.loads``: the standard parser recurses once per level, so a
  20,000-deep ``[[[[…`` raised RecursionError inside the parser (a 500, and a
  socket closed with 1011). The scan skips string contents and counts
  brackets; it costs a regular expression pass and a C-level running sum.
- **Text** must be text: JSON may spell a lone UTF-16 surrogate (``"\\ud800"``),
  which Python keeps in a ``str`` that no database driver or encoder accepts
  (UnicodeEncodeError deep inside a service), and ``"\\u0000"``, which
  PostgreSQL refuses in any text column. Both are refused with the path of the
  field that holds them. Paired surrogates (emoji) are fine: the parser joins them.
- **Numbers** must be finite: ``NaN``, ``Infinity`` and ``1e400`` are not JSON
  a client means, and ``inf`` breaks every comparison after it.

A refusal is a ``ServiceError`` whose message has a zh-CN template in
``web/error_text.py``; nothing of the parser's own exception reaches the client.
"""

from __future__ import annotations

import itertools
import json
import re
from typing import Any

from meiqia.services.errors import ServiceError
from meiqia.services.errors import TooDeep
from meiqia.services.errors import TooLarge
from meiqia.services.errors import ValidationError

#: Deepest nesting accepted (objects and arrays together). Our deepest schema is
#: four levels (``settings.widget.color``); 32 leaves room for clients' own
#: ``custom`` data and is far below the parser's recursion limit (~1,000).
MAX_DEPTH = 32

#: A JSON string (possessive, so it never backtracks; an unterminated one runs
#: to the end of the text, so every character is looked at once) or a bracket.
_TOKENS = re.compile(r'"(?:[^"\\]|\\.?)*+(?:"|\Z)|[\[\]{}]', re.DOTALL)
_DELTA = {"[": 1, "{": 1, "]": -1, "}": -1}
#: Escapes that may spell a surrogate or NUL; only text that has one is walked.
_SUSPECT = re.compile(r"\\u(?:[dD][89a-fA-F][0-9a-fA-F]{2}|0000)")


def nesting_depth(text: str) -> int:
    """The deepest bracket nesting of ``text``, string contents ignored.

    Unbalanced brackets are the parser's business (it says "not valid JSON");
    this only has to see how deep the text would make it recurse.
    """
    brackets = (token for token in _TOKENS.findall(text) if token[0] != '"')
    deltas = map(_DELTA.__getitem__, brackets)
    return max(itertools.accumulate(deltas, initial=0))


def _not_finite(text: str) -> float:
    raise ValueError(f"{text} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"{text} is too large")
    return value


def not_text(value: str) -> bool:
    """True if ``value`` holds a NUL or a lone surrogate (not storable text)."""
    if "\x00" in value:
        return True
    if value.isascii():
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def check_text(value: Any, path: str = "", root: str = "body") -> None:
    """Refuse a NUL or lone surrogate anywhere in ``value`` (keys included),
    naming the field that holds it (``questions[2]``, ``custom.vip``); a bad key
    is named by the object it is a key of. ``root`` names ``value`` itself: the
    request's ``body``, a socket frame's ``data`` or the ``frame`` (its envelope);
    fields below it are named without it, as the API names them."""
    label = path or root
    if isinstance(value, str):
        if not_text(value):
            raise ValidationError(f"{label}: contains a NUL character or a lone "
                                  "surrogate, which is not text", path or None)
    elif isinstance(value, dict):
        for key, item in value.items():
            sub = f"{path}.{key}" if path else str(key)
            if not_text(key):
                raise ValidationError(f"{label}: a key contains a NUL character or "
                                      "a lone surrogate, which is not text", path or None)
            check_text(item, sub, root)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_text(item, f"{path}[{index}]", root)


def suspect(text: str) -> bool:
    """Whether ``text`` spells an escape that may be a NUL or a surrogate (only
    then is the parsed value worth walking with ``check_text``)."""
    return _SUSPECT.search(text) is not None


def loads(text: str, max_depth: int = MAX_DEPTH, text_check: bool = True) -> Any:
    """Parse untrusted JSON ``text`` (already within its size limit).

    Raises ``TooDeep`` past ``max_depth``, ``ServiceError`` for text that is
    not JSON, ``ValidationError`` for a NUL or a lone surrogate. With
    ``text_check=False`` the caller runs ``check_text`` itself once it knows
    more (a socket frame's ``ref``); it must, before using any string.
    """
    if nesting_depth(text) > max_depth:
        raise TooDeep(f"the JSON nests deeper than {max_depth} levels")
    try:
        value = json.loads(text, parse_constant=_not_finite, parse_float=_finite_float)
    except (ValueError, RecursionError):
        raise ServiceError("not valid JSON") from None
    if text_check and suspect(text):
        check_text(value)
    return value


def loads_body(raw: bytes, max_bytes: int, max_depth: int = MAX_DEPTH) -> Any:
    """A request body (bytes) → value: size, UTF-8, then ``loads``."""
    if len(raw) > max_bytes:
        raise TooLarge(f"the JSON body may be at most {max_bytes} bytes")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ServiceError("the body is not valid UTF-8 text") from None
    try:
        return loads(text, max_depth)
    except ServiceError as exc:
        if type(exc) is ServiceError:  # say "body" like the API's other refusals
            raise ServiceError("the body is not valid JSON") from None
        raise
