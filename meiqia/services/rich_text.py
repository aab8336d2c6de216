"""The widget's rich-text subset written out as plain text, for channels.

Answers (and agents' replies) may hold ``[label](url)``, ``![alt](url)`` and bare
addresses, which the widget draws as links and images (``static/js/rich-text.js``,
docs/bot.md "Rich answers"). A channel's ``deliver`` gets plain text
(docs/plugins.md): a WeChat follower was sent ``[退货指南](https://…)`` and
``![退货流程](/static/demo/return-steps.png)`` as they were written. Here a link
becomes its label and its address, an image its description and its address;
an address the widget would not follow (``javascript:``…) stays the text it was
written as, exactly as the widget leaves it. A site-relative address
(``/static/…``) means nothing outside the site, so only the label or the
description is kept; for the team's own readers (an export, a ticket's
transcript in its e-mail or webhook: ``paths=True``) the path stays, as they
can open it on their site.
"""

from __future__ import annotations

import re

# The same tokens as rich-text.js's TOKEN: a (possibly image) link, or a bare address.
_TOKEN = re.compile(
    r"(!?)\[([^\]\n]{0,500})\]\(\s*([^\s()]{1,2000})\s*\)"
    r"|\bhttps?://[^\s<>()\[\]{}\"'，。！？；：、（）]{1,2000}", re.IGNORECASE)
_UNSAFE = re.compile(r"[\x00-\x20\x7f-\x9f\\]")


def _safe(url: str) -> str | None:
    """rich-text.js's ``safeUrl``: the url when the widget would link or load it."""
    url = url.strip()
    if not url or _UNSAFE.search(url):
        return None
    if re.match(r"https?://[^/?#]+", url, re.IGNORECASE):
        return url
    if url.startswith("/") and not url.startswith("//"):
        return url
    return None


def _written_out(match: re.Match[str], lang: str, paths: bool) -> str:
    whole, bang, label, target = match.group(0), match.group(1), match.group(2), match.group(3)
    if target is None:
        return whole  # a bare address is plain text already
    url = _safe(target)
    if url is None:
        return whole  # the widget shows it as written; so do we
    label = label.strip()
    absolute = paths or not url.startswith("/")
    if bang:
        word = "image" if lang == "en" else "图片"
        if label:
            shown = f"[{word}: {label}]" if lang == "en" else f"[{word}：{label}]"
        else:
            shown = f"[{word}]"
        return f"{shown} {url}" if absolute else shown
    if not absolute:
        return label or whole
    if not label or label == url:
        return url
    return f"{label}（{url}）" if lang != "en" else f"{label} ({url})"


def plain_text(text: str, lang: str = "zh-CN", paths: bool = False) -> str:
    """``text`` with its links and images written out (module docstring); with
    ``paths``, site-relative addresses are written out too."""
    if "[" not in text:
        return text
    return _TOKEN.sub(lambda m: _written_out(m, lang, paths), text)
