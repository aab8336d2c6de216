"""The outgoing e-mail for one message the visitor should see.

Threading is what makes a reply land in the visitor's thread in every client:
``In-Reply-To`` names the visitor's latest mail, ``References`` the thread
(Gmail, Outlook and QQ Mail all group by these, Gmail also wants the subject
kept), and the subject is the thread's with one ``Re: ``. A thread without a
subject gets one in the customer's language (else the team's), never both. Ids
``parse`` made up for a mail that had no Message-ID are known to no client and
are left out (RFC 5322 §3.6.4: no ``In-Reply-To`` when the parent has no
Message-ID). Each reply gets a ``Message-ID`` of our own on the sending domain,
returned to the runtime and stored on the message, so a visitor answering *our*
mail threads back into the same conversation; its ``Date`` is the answer's time
and its sender the team's name (``services.mail``, which composes every mail).

Bot answers and system lines are automatic mail: they carry RFC 3834
``Auto-Submitted: auto-replied`` and Exchange's ``X-Auto-Response-Suppress``, so
the visitor's vacation responder does not answer them (and if it does, its
reply is recognised by ``loops.py``). An agent's answer is a person's mail and
carries neither.
"""

from __future__ import annotations

import email.policy
import re
from datetime import datetime
from email.headerregistry import HeaderRegistry
from email.headerregistry import UnstructuredHeader
from email.message import EmailMessage
from typing import Any

from meiqia.channels.email.parse import made_up
from meiqia.services import mail

#: Reply prefixes of English and Chinese clients (a subject keeps only one).
_REPLY_PREFIX = re.compile(r"^\s*((re|aw|sv|答复|回复|回覆)\s*[:：]\s*)+", re.I)
#: References kept at most (the first and the latest), as clients do for long threads.
MAX_REFERENCES = 20
#: The subject of a reply in a thread that has none, in one language (``Re: `` is the
#: RFC 5322 reply mark every client writes and threads on, whatever its language).
NO_SUBJECT = {"zh-CN": "在线客服", "en": "Customer support"}


def strip_reply_prefix(subject: str | None) -> str:
    """The subject without its ``Re:`` / ``回复：`` prefixes."""
    return _REPLY_PREFIX.sub("", subject or "").strip()


def reply_subject(subject: str | None, language: str = "zh-CN") -> str:
    """``Re: `` and the thread's subject, never ``Re: Re: ``; a thread without one
    gets ``NO_SUBJECT`` in ``language`` (the customer's, else the team's)."""
    base = strip_reply_prefix(subject)
    return f"Re: {base or NO_SUBJECT.get(language, NO_SUBJECT['zh-CN'])}"


def references(ids: list[str]) -> list[str]:
    """The thread's ids for ``References``, oldest first, first and latest kept,
    without the ids we made up (no client knows them)."""
    unique = list(dict.fromkeys(i for i in ids if i and not made_up(i)))
    if len(unique) > MAX_REFERENCES:
        unique = unique[:1] + unique[-(MAX_REFERENCES - 1):]
    return unique


class _MessageIds(UnstructuredHeader):
    """In-Reply-To and References: msg-ids, folded between ids and never encoded.

    The default policy takes them for unstructured text and writes an id longer
    than a line (Outlook's are ~90 characters, ours for a mail without a
    Message-ID too) as RFC 2047 encoded-words, which RFC 2047 forbids in a msg-id
    and no client decodes there: the answer fell out of the customer's thread."""

    max_count = 1

    def fold(self, *, policy: Any) -> str:
        head = f"{self.name}:"
        lines, line = [], head
        for msgid in str(self).split():
            if line != head and len(line) + 1 + len(msgid) > policy.max_line_length:
                lines.append(line)
                line = ""
            line += " " + msgid
        lines.append(line)
        return policy.linesep.join(lines) + policy.linesep


def _policy() -> Any:
    registry = HeaderRegistry()
    registry.map_to_type("in-reply-to", _MessageIds)
    registry.map_to_type("references", _MessageIds)
    return email.policy.default.clone(header_factory=registry)


#: The replies' policy: the default one, with msg-id lists that stay msg-ids.
POLICY = _policy()


def build_reply(*, from_address: str, from_name: str, to_address: str, to_name: str | None,
                subject: str | None, body: str, kind: str, sender_name: str | None,
                in_reply_to: str | None, thread: list[str], created_at: datetime | None,
                files: list[Any] = (), language: str = "zh-CN") -> EmailMessage:
    """One reply; ``files`` are attachments with ``filename``, ``content_type`` and
    ``data`` (or only a ``url``, then the link is written under the text);
    ``language`` the customer's (else the team's), for a thread without a subject.
    ``In-Reply-To`` is left out when the customer's mail had no Message-ID of its
    own, ``References`` when no mail of the thread had one."""
    if made_up(in_reply_to):
        in_reply_to = None
    display = f"{sender_name} · {from_name}" if sender_name and kind == "agent" else from_name
    links = [f.url for f in files if not getattr(f, "data", None) and getattr(f, "url", None)]
    text = body.rstrip() + ("\n\n" + "\n".join(links) if links else "") + "\n"
    message = mail.compose(
        from_address=from_address, from_name=display, to_address=to_address, to_name=to_name,
        subject=reply_subject(subject, language), text=text, when=created_at,
        in_reply_to=in_reply_to,
        # The mail answered comes last (RFC 5322 §3.6.4: the parent's References, then
        # the parent), also when the thread holds later mails of ours: a second line
        # the bot sent to the same mail listed our first answer after it.
        references=references([i for i in thread if i != in_reply_to]
                              + ([in_reply_to] if in_reply_to else [])),
        policy=POLICY)
    if kind != "agent":
        message["Auto-Submitted"] = "auto-replied"
        message["X-Auto-Response-Suppress"] = "All"
    for f in files:
        data = getattr(f, "data", None)
        if not data:
            continue
        maintype, _, subtype = (f.content_type or "application/octet-stream").partition("/")
        message.add_attachment(data, maintype=maintype, subtype=subtype or "octet-stream",
                               filename=f.filename)
    return message
