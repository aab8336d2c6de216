"""Every e-mail the product writes is put together here, one way (RFC 5322 §3.6).

Who sends mail: the email ticket sink (the team's notifications,
``plugins/email_sink.py``), public replies on tickets to the customer (with that
sink's SMTP settings, ``services.tickets.reply_email_job``) and the e-mail
channel's answers (``channels/email/compose.py``). Nothing else mails: a password
reset link is handed to the admin, who passes it on (``services/password_reset.py``).

Each mail gets:

- ``Date``: the time of what it says (a reply's, an answer's), else now; in UTC.
  RFC 5322 requires it; without it relays stamp their own or mark the mail as spam.
- ``Message-ID``: ``<…@domain>`` with the domain of the From address (Gmail refuses
  mail without a valid one). A caller with a stable key (the same on every attempt)
  gets ``<key@domain>``, so a mail system drops a repeat; else a fresh one.
- ``From``: the team's name with the sending address (RFC 2047 encoded-words when the
  name is not ASCII, written by the policy); a team without a name is "客服" or
  "Customer support" in the recipient's language. Never both languages in one name.
- ``In-Reply-To``/``References``: only when the caller has mails that were sent to
  refer to.
"""

from __future__ import annotations

import email.policy
from collections.abc import Sequence
from datetime import UTC
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime
from email.utils import formataddr
from email.utils import make_msgid
from typing import Any

#: The sender's name when the team has none, in the recipient's language.
SENDER_LABEL = {"zh-CN": "客服", "en": "Customer support"}
#: The e-mail channel's old default sender name, two languages in one: read as unset.
OLD_DEFAULT_NAME = "客服 Support"
#: A From address without a domain (never valid ones) still gets a syntactically valid id.
FALLBACK_DOMAIN = "meiqia.invalid"


def sending_domain(from_address: str) -> str:
    """The domain of the From address, as it goes into a Message-ID (ASCII: an
    internationalised domain in its IDNA form)."""
    domain = (from_address or "").strip().rstrip(">").rpartition("@")[2].strip().lower()
    if not domain:
        return FALLBACK_DOMAIN
    try:
        return domain.encode("idna").decode("ascii")
    except UnicodeError:
        return FALLBACK_DOMAIN


def message_id(from_address: str, key: str | None = None) -> str:
    """``<key@domain>`` for a stable ``key``, else a fresh id, with the sending domain."""
    domain = sending_domain(from_address)
    return f"<{key}@{domain}>" if key else make_msgid(domain=domain)


def sender_name(name: str | None, language: str = "zh-CN") -> str:
    """``name`` on one line, or the label in ``language`` when there is none."""
    clean = " ".join((name or "").split())
    return clean or SENDER_LABEL.get(language, SENDER_LABEL["zh-CN"])


def team_sender_name(team_id: int | None, language: str = "zh-CN") -> str:
    """The team's name as the sender of its mail (``sender_name``)."""
    from meiqia.models import Team

    team = Team.get_or_none(Team.id == team_id) if team_id is not None else None
    return sender_name(team.name if team is not None else None, language)


def mail_date(when: datetime | None = None) -> str:
    """RFC 5322 ``Date`` of ``when`` (a naive time is UTC, as every stored time), else now."""
    when = when or datetime.now(UTC)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return format_datetime(when.astimezone(UTC))


def compose(*, from_address: str, from_name: str, to_address: str, to_name: str | None = None,
            subject: str, text: str, when: datetime | None = None, key: str | None = None,
            in_reply_to: str | None = None, references: Sequence[str] = (),
            policy: Any = email.policy.default) -> EmailMessage:
    """One plain-text mail with every header a mail needs (the module docstring);
    the caller adds attachments or more headers to what it returns."""
    message = EmailMessage(policy=policy)
    message["Message-ID"] = message_id(from_address, key)
    message["Date"] = mail_date(when)
    message["From"] = formataddr((sender_name(from_name), from_address))
    message["To"] = formataddr((" ".join((to_name or "").split()), to_address))
    message["Subject"] = subject
    if in_reply_to:
        message["In-Reply-To"] = in_reply_to
    chain = [ref for ref in dict.fromkeys(references) if ref]
    if chain:
        message["References"] = " ".join(chain)
    message.set_content(text)
    return message
