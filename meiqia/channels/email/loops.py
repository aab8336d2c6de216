"""Which incoming mails are not a person writing, so no answer goes back.

An auto-reply answered by our bot is answered by their auto-responder again: a
mail loop that fills both mailboxes within minutes. A bounce answered is a
bounce to a bounce. So these are read (the mailbox keeps them) and never become
chat messages:

* RFC 3834 ``Auto-Submitted`` other than ``no`` (what we set on our own bot mail);
* ``X-Autoreply``, ``X-Autorespond``, ``X-Autoreply-From`` (QQ/163/Exchange
  vacation replies), ``X-Auto-Response-Suppress`` is *not* one (a request);
* ``Precedence: bulk | junk | list`` (vacation replies, newsletters, lists);
* delivery reports: ``Content-Type: multipart/report``, ``X-Failed-Recipients``,
  the null return path ``Return-Path: <>``, senders ``mailer-daemon@`` /
  ``postmaster@`` and subjects every mail server uses for them;
* mail from one of our own addresses (the channel's from-address and the
  mailbox's user): our own reply coming back through a forward or a list.
"""

from __future__ import annotations

import re
from email.message import Message

_DAEMONS = re.compile(r"^(mailer-daemon|postmaster|mail-daemon|maildaemon|no-?reply-?bounce)"
                      r"@", re.I)
_BOUNCE_SUBJECTS = re.compile(
    r"^\s*(Undeliver(ed|able)|Delivery Status Notification|Returned mail|"
    r"Mail delivery failed|Delivery failure|系统退信|退信|邮件投递失败|未送达|无法送达)", re.I)
_AUTO_SUBJECTS = re.compile(r"^\s*(Auto(matic)? ?reply|Out of (the )?office|自动回复|自動回覆)\s*[:：]",
                            re.I)


def automatic_reason(message: Message, sender: str, subject: str,
                     own_addresses: set[str]) -> str | None:
    """Why ``message`` must not be answered (a short English reason for the log),
    or None for mail a person wrote."""
    if sender in own_addresses:
        return "sent from our own address (a loop)"
    auto = (message.get("Auto-Submitted") or "").strip().lower()
    if auto and auto.split(";")[0].strip() != "no":
        return f"Auto-Submitted: {auto}"
    for name in ("X-Autoreply", "X-Autorespond", "X-Autoreply-From", "X-Mail-Autoreply"):
        if message.get(name) is not None:
            return f"{name} header"
    precedence = (message.get("Precedence") or "").strip().lower()
    if precedence in {"bulk", "junk", "list", "auto_reply"}:
        return f"Precedence: {precedence}"
    if message.get_content_type() == "multipart/report":
        return "a delivery report (multipart/report)"
    if message.get("X-Failed-Recipients") is not None:
        return "a bounce (X-Failed-Recipients)"
    if (message.get("Return-Path") or "").strip() == "<>":
        return "a bounce (null return path)"
    if not sender or _DAEMONS.match(sender):
        return f"sent by a mail system ({sender or 'no sender'})"
    if _BOUNCE_SUBJECTS.match(subject):
        return "a bounce (subject)"
    if _AUTO_SUBJECTS.match(subject):
        return "an auto-reply (subject)"
    return None
