"""Files sent to a browser or a script: one helper names every download.

``Content-Disposition`` carries the real name in ``filename*`` (RFC 6266, UTF-8:
``历史记录-12.xlsx``, a visitor's ``身份证.txt``) and an ASCII one in ``filename=``
for the clients that read only that (``curl -OJ``, ``wget --content-disposition``,
some mail gateways). Werkzeug's fallback dropped every character outside ASCII,
which left ``-12.xlsx`` (read as an option) and ``.txt`` (a hidden file). Here the
fallback is the name folded to ASCII when nothing but accents is lost
(``café.pdf`` → ``cafe.pdf``), else a neutral name the caller gives (``attachment``,
the English name of an export) with the real extension; it never starts with a dot
or a dash and is never empty.
"""

from __future__ import annotations

import os
import re
import unicodedata
from typing import Any
from urllib.parse import quote

from flask import send_file
from werkzeug.http import dump_options_header

__all__ = ["ascii_name", "content_disposition", "send_download"]

#: Characters kept in the ASCII name; any other becomes ``_``.
_UNSAFE = re.compile(r"[^A-Za-z0-9 ._()+-]")
#: What a name may not start or end with (a hidden file, an option, a stray space).
_EDGES = " ._-"
#: An extension worth keeping: a dot and a few ASCII letters or digits.
_EXTENSION = re.compile(r"\.[A-Za-z0-9]{1,10}")


def _fold(text: str) -> tuple[str, bool]:
    """``text`` in ASCII, and whether a letter or digit was lost on the way
    (a Chinese character, not an accent: ``é`` folds to ``e``)."""
    lost = False
    out = []
    for char in text:
        folded = unicodedata.normalize("NFKD", char).encode("ascii", "ignore").decode()
        if not folded and char.isalnum():
            lost = True
        out.append(folded)
    return "".join(out), lost


def _clean(text: str) -> str:
    text = _UNSAFE.sub("_", text)
    text = re.sub(r"_+", "_", re.sub(r"\s+", " ", text))
    return text.strip(_EDGES)


def ascii_name(name: str, fallback: str) -> str:
    """The ``filename=`` of ``name``: ASCII, non-empty, not starting with a dot or a
    dash. ``fallback`` (ASCII, e.g. ``attachment`` or ``history-12``) stands for a
    name whose letters are not Latin; the real extension is kept."""
    stem, extension = os.path.splitext(name)
    if not _EXTENSION.fullmatch(extension):
        stem, extension = name, ""
    folded, lost = _fold(stem)
    stem_ascii = "" if lost else _clean(folded)
    if not re.search(r"[A-Za-z0-9]", stem_ascii):
        stem_ascii = _clean(fallback) or "download"
    return stem_ascii + extension


def content_disposition(name: str, fallback: str, inline: bool = False) -> str:
    """The header's value: ``attachment; filename=…`` plus ``filename*=UTF-8''…``
    whenever the ASCII name is not the real one."""
    plain = ascii_name(name, fallback)
    options: dict[str, str] = {"filename": plain}
    if plain != name:
        options["filename*"] = "UTF-8''" + quote(name, safe="!#$&+-.^_`|~")
    return dump_options_header("inline" if inline else "attachment", options)


def send_download(path: str, name: str, fallback: str, *, inline: bool = False,
                  **kwargs: Any) -> Any:
    """``flask.send_file`` of ``path`` as ``name`` (its type guessed from the name
    unless ``mimetype=`` says it), named by ``content_disposition``."""
    response = send_file(path, as_attachment=not inline, download_name=name, **kwargs)
    response.headers["Content-Disposition"] = content_disposition(name, fallback, inline)
    return response
