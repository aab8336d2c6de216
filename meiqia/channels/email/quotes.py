"""Cut what a reply quotes and the sender's signature, so only what the visitor
wrote this time becomes the chat message.

Mail clients quote the whole thread under (or above) the new text. Left in, every
reply would repeat the conversation, the bot would answer the quoted question
again, and "人工" would drown in the quote. Each client marks the quote its own
way; these are the ones seen from Chinese and English clients:

* Gmail (en/zh), Apple Mail, Thunderbird: ``On Fri, Dec 4, 2026 at 10:00 AM 张三
  <a@b.com> wrote:`` / ``在 2026年12月4日周五 10:00，张三 <a@b.com> 写道：`` (the
  line may be wrapped in two);
* 163/126 (网易): ``在 2026-12-04 10:00:00，"张三" <a@163.com> 写道：``;
* QQ Mail, Foxmail: ``------------------ 原始邮件 ------------------`` then a
  ``发件人:``/``From:`` block;
* Outlook, Exchange: ``-----Original Message-----``, a ``_____`` rule, or a header
  block ``From:``/``发件人:`` followed by ``Sent:``/``发送时间:``/``Date:``;
* ``> `` quoted lines anywhere (inline answers keep the answers);
* signatures after ``-- `` (RFC 3676) and the phone clients' one-liners
  (``Sent from my iPhone``, ``发自我的iPhone``, ``发自网易邮箱大师``...).

If cutting leaves nothing (a bare forward, a reply typed inside the quote) the
text is kept whole: losing what a customer sent is worse than a long message.
"""

from __future__ import annotations

import re

#: A line that starts the quoted original, alone.
_QUOTE_HEADER = [
    re.compile(r"^\s*On\s.{4,300}\swrote:\s*$", re.I | re.S),
    re.compile(r"^\s*在\s*.{4,300}写道\s*[:：]\s*$", re.S),
    re.compile(r"^\s*于\s*.{4,300}写道\s*[:：]\s*$", re.S),
    re.compile(r"^\s*-{2,}\s*(原始邮件|原始郵件|Original Message|Original|回复的邮件|转发的邮件|"
               r"Forwarded message|Forwarded Message)\s*-{2,}\s*$", re.I),
    re.compile(r"^\s*_{10,}\s*$"),  # Outlook's rule above the header block
    re.compile(r"^\s*={10,}\s*$"),
]
#: First and later lines of an Outlook/Foxmail header block of the original.
_BLOCK_FROM = re.compile(r"^\s*\*?(From|发件人|寄件者)\s*\*?\s*[:：]", re.I)
_BLOCK_NEXT = re.compile(r"^\s*\*?(Sent|Date|发送时间|日期|时间|寄件日期|To|收件人|Subject|主题)"
                         r"\s*\*?\s*[:：]", re.I)
#: Where the signature starts.
_SIGNATURE = re.compile(r"^(-- ?|--)$")
_MOBILE_SIGNATURE = re.compile(
    r"^\s*(Sent from my \S.*|Sent from (Mail|Outlook) for .*|Get Outlook for .*|"
    r"Sent from Yahoo Mail.*|发自我的\s*\S.*|从我的\s*\S.*发送|发自网易邮箱.*|"
    r"来自网易邮箱.*|发自\s*(QQ|qq)\s*邮箱.*|发自我的\s*QQ\s*邮箱.*|发自\s*Foxmail.*|"
    r"来自\s*(QQ|Foxmail).*)\s*$")


def _starts_quote(lines: list[str], i: int) -> bool:
    line = lines[i]
    if any(p.match(line) for p in _QUOTE_HEADER):
        return True
    # Gmail wraps a long "On ... wrote:" / "在 ... 写道：" line in two (or three).
    for span in (2, 3):
        joined = " ".join(s.strip() for s in lines[i:i + span])
        if len(lines) >= i + span and re.match(r"^\s*(On|在|于)\s", line, re.I) and any(
                p.match(joined) for p in _QUOTE_HEADER[:3]):
            return True
    if _BLOCK_FROM.match(line):
        # Two more header lines, so "From: Beijing" in a customer's text is not one.
        following = [s for s in lines[i + 1:i + 6] if s.strip()][:4]
        return sum(1 for s in following if _BLOCK_NEXT.match(s)) >= 2
    return False


def strip_reply(text: str) -> str:
    """What the sender wrote this time, without the quoted thread and signature."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    kept: list[str] = []
    for i, line in enumerate(lines):
        if _starts_quote(lines, i) or _SIGNATURE.match(line.rstrip("\n")):
            break
        if _MOBILE_SIGNATURE.match(line) and kept:
            break
        if line.lstrip().startswith(">"):
            continue
        kept.append(line.rstrip())
    result = "\n".join(kept).strip()
    if not result:
        return "\n".join(s.rstrip() for s in lines).strip()
    return re.sub(r"\n{3,}", "\n\n", result)
