"""One raw e-mail (RFC 5322 bytes, as IMAP hands it over) to what the channel
passes to ``receive()``: sender, subject, thread ids, the new text and the files.

Chinese mail is where decoding goes wrong: bodies and encoded headers labelled
``gb2312`` routinely hold GBK-only characters (the label is older than the
text), some clients send raw 8-bit GBK headers without any label, and a few
label nothing at all. So every GB label is decoded as GB18030 (their superset),
unlabelled 8-bit text is tried as UTF-8, then GB18030 (short Chinese strings,
such as a subject, fool statistical guessers: a GBK "退货 查询" reads as Korean to
them), then guessed (charset-normalizer, the guesser the KB import already uses), and nothing raises: a garbled character is
better than a lost mail.
"""

from __future__ import annotations

import codecs
import email
import email.policy
import hashlib
import re
from dataclasses import dataclass
from dataclasses import field
from email.header import decode_header
from email.message import Message
from email.utils import getaddresses
from email.utils import parsedate_to_datetime
from html.parser import HTMLParser
from typing import Any

from meiqia.channels.email.loops import automatic_reason
from meiqia.channels.email.quotes import strip_reply

#: Labels of the GB family, all read as GB18030 (a superset of each).
_GB_LABELS = {"gb2312", "gbk", "x-gbk", "gb_2312-80", "euc-cn", "x-euc-cn", "cp936",
              "ms936", "csgb2312", "chinese", "gb18030", "windows-936"}
_UNLABELLED = {"", "us-ascii", "ascii", "unknown-8bit", "x-unknown", "8bit", "default"}
_MSGID = re.compile(r"<[^<>\s]+>")
#: Longest Message-ID kept as is (the runtime's external ids hold 500 characters,
#: and a later part adds a suffix); a longer one is replaced by its hash.
MAX_ID = 400
#: The domain of the Message-IDs we make up for a mail that had none (or one longer
#: than ``MAX_ID``): an id only we know, never written into a reply's headers.
MADE_UP_DOMAIN = "meiqia.invalid"


@dataclass
class MailFile:
    """An attached (or inline) file of the mail."""

    filename: str
    content_type: str
    data: bytes


@dataclass
class InboundMail:
    """What one incoming mail says, decoded."""

    message_id: str
    sender: str  # the address, lower-cased
    display_name: str | None
    subject: str
    text: str  # what the sender wrote this time (quotes and signature cut)
    full_text: str
    #: In-Reply-To then References newest first: the mails this one answers.
    in_reply_to: list[str] = field(default_factory=list)
    files: list[MailFile] = field(default_factory=list)
    #: Why this mail is an auto-reply or bounce (None: a person wrote it).
    automatic: str | None = None
    date: Any = None


def decode_bytes(data: bytes, charset: str | None) -> str:
    """Text of ``data`` in ``charset``; never raises (see the module docstring)."""
    label = (charset or "").strip().strip('"').lower()
    if label in _GB_LABELS:
        label = "gb18030"
    if label and label not in _UNLABELLED:
        try:
            codecs.lookup(label)
            return data.decode(label)
        except LookupError:
            pass
        except UnicodeDecodeError:
            # A few bad bytes in a mail that says its charset (Dovecot hands out a NUL
            # as 0x80): those characters become U+FFFD, the rest stays. A guess here
            # turned the whole mail into another script.
            text = data.decode(label, errors="replace")
            if text.count("\ufffd") <= max(3, len(text) // 100):
                return text
    for guess in ("utf-8", "gb18030"):  # Chinese first: GB18030 before a statistical guess
        try:
            return data.decode(guess)
        except UnicodeDecodeError:
            pass
    try:
        from charset_normalizer import from_bytes

        best = from_bytes(data).best()
        if best is not None:
            return str(best)
    except Exception:  # noqa: BLE001 - a guess that fails is no reason to lose the mail
        pass
    return data.decode("gb18030", errors="replace")


def decode_header_text(value: Any) -> str:
    """A header's text: RFC 2047 encoded words in any charset, or raw 8-bit bytes."""
    if value is None:
        return ""
    raw = str(value)
    if any("\udc80" <= ch <= "\udcff" for ch in raw):  # raw 8-bit bytes, no label
        raw = decode_bytes(raw.encode("ascii", "surrogateescape"), None)
    parts = []
    try:
        chunks = decode_header(raw)
    except Exception:  # noqa: BLE001 - malformed encoded words: keep the text as sent
        return " ".join(raw.split())
    for chunk, charset in chunks:
        parts.append(decode_bytes(chunk, charset) if isinstance(chunk, bytes) else chunk)
    return " ".join("".join(parts).split())


def header(message: Message, name: str) -> str:
    """A header's decoded text. The value as stored (``raw_items``), because the
    parser's own view of raw 8-bit bytes is U+FFFD: unreadable for GBK."""
    wanted = name.lower()
    for key, value in message.raw_items():
        if key.lower() == wanted:
            return decode_header_text(value)
    return ""


def made_up(msgid: str | None) -> bool:
    """Whether ``msgid`` is one ``parse`` made up (the mail's own was missing or too
    long): no client knows it, so a reply cannot refer to it."""
    return bool(msgid) and str(msgid).rstrip(">").lower().endswith("@" + MADE_UP_DOMAIN)


def message_ids(value: Any) -> list[str]:
    """The ``<id>`` tokens of a Message-ID / In-Reply-To / References header."""
    return _MSGID.findall(str(value or ""))


class _HtmlText(HTMLParser):
    """Readable text of an HTML-only mail, without the quoted thread: blockquotes
    and the quote containers of Gmail, Yahoo, Outlook and QQ are left out."""

    _SKIP = {"script", "style", "head", "title", "blockquote"}
    _BLOCK = {"p", "div", "br", "tr", "li", "h1", "h2", "h3", "h4", "h5", "h6", "table",
              "hr", "section", "article", "pre"}
    _VOID = {"br", "img", "hr", "meta", "link", "input", "col", "area", "base", "wbr"}
    _QUOTE_MARKS = ("gmail_quote", "yahoo_quoted", "divrplyfwdmsg", "moz-cite-prefix",
                    "mail_quote", "qqmail_quote", "reference", "ntes-mailmaster-quote")

    #: Marks after which everything is the quoted mail: Outlook puts the quote's
    #: header in ``divRplyFwdMsg`` and the quoted text in the elements after it,
    #: not inside it.
    _CUT_MARKS = ("divrplyfwdmsg",)

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.stack: list[tuple[str, bool]] = []
        self.cut = False

    def _skipping(self) -> bool:
        return self.cut or any(skip for _, skip in self.stack)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._BLOCK and not self._skipping():
            self.out.append("\n")
        if tag in self._VOID:
            return
        marks = " ".join((v or "") for k, v in attrs if k in ("class", "id")).lower()
        if any(m in marks for m in self._CUT_MARKS):
            self.cut = True
        skip = tag in self._SKIP or any(m in marks for m in self._QUOTE_MARKS)
        self.stack.append((tag, skip))

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i][0] == tag:
                del self.stack[i:]
                break
        if tag in self._BLOCK and not self._skipping():
            self.out.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skipping():
            self.out.append(re.sub(r"[ \t\r\n]+", " ", data))


def html_to_text(html: str) -> str:
    parser = _HtmlText()
    try:
        parser.feed(html)
        parser.close()
    except Exception:  # noqa: BLE001 - broken HTML: what was read so far
        pass
    lines = [line.strip() for line in "".join(parser.out).split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _part_text(part: Message) -> str:
    payload = part.get_payload(decode=True) or b""
    return decode_bytes(payload, part.get_content_charset())


def _is_file(part: Message) -> bool:
    disposition = part.get_content_disposition()
    if disposition == "attachment":
        return True
    if part.get_content_maintype() in ("text", "multipart", "message"):
        return False
    return part.get_filename() is not None or disposition == "inline"


def _bodies_and_files(message: Message) -> tuple[list[str], list[str], list[MailFile]]:
    plain: list[str] = []
    html: list[str] = []
    files: list[MailFile] = []
    for part in message.walk():
        if part.is_multipart():
            continue
        if _is_file(part):
            data = part.get_payload(decode=True) or b""
            name = decode_header_text(part.get_filename() or "") or "attachment"
            files.append(MailFile(name, part.get_content_type(), data))
        elif part.get_content_type() == "text/plain" and part.get_content_disposition() != "attachment":
            plain.append(_part_text(part))
        elif part.get_content_type() == "text/html":
            html.append(_part_text(part))
    return plain, html, files


def parse(raw: bytes, own_addresses: set[str] | None = None) -> InboundMail:
    """Decode one mail; ``own_addresses`` (lower-cased) mark our own mail as a loop."""
    message = email.message_from_bytes(raw, policy=email.policy.compat32)
    name, sender = "", ""
    from_value = header(message, "Reply-To") or header(message, "From")
    found = getaddresses([from_value])
    if found:
        name, sender = found[0]
    sender = sender.strip().lower()
    from_name, from_address = (getaddresses([header(message, "From")])
                               or [("", "")])[0]
    subject = header(message, "Subject")
    ids = message_ids(message.get("Message-ID"))
    message_id = ids[0] if ids and len(ids[0]) <= MAX_ID else (
        f"<{hashlib.sha256(ids[0].encode() if ids else raw).hexdigest()}@{MADE_UP_DOMAIN}>")
    references = message_ids(message.get("References"))
    answers = list(dict.fromkeys(message_ids(message.get("In-Reply-To")) + references[::-1]))
    plain, html, files = _bodies_and_files(message)
    full_text = "\n".join(t.strip("\n") for t in plain) if plain else "\n".join(
        html_to_text(h) for h in html)
    own = own_addresses or set()
    automatic = automatic_reason(message, from_address.strip().lower() or sender, subject, own)
    if automatic is None and sender in own:
        automatic = "Reply-To is our own address (a loop)"
    try:
        date = parsedate_to_datetime(message.get("Date")) if message.get("Date") else None
    except (TypeError, ValueError):
        date = None
    return InboundMail(
        message_id=message_id, sender=sender, display_name=(name or from_name or None),
        subject=subject, text=strip_reply(full_text), full_text=full_text,
        in_reply_to=answers, files=files, automatic=automatic, date=date)
