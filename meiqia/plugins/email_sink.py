"""Built-in ticket sink: email over SMTP.

A readable plain-text message with the ticket, its public replies and the public
transcript of its conversation, in the team's language only (``Team.language``:
an English team read "工单 Ticket #1 — 新工单 new", 9 mails of 9). Its words are the
ticket pages' (``static/i18n``: the statuses, sources, priorities and labels the
team reads there), its times on the team's clock. Internal notes are never
in it: the payload it is built from has none. Plain text, so nothing a
customer typed can run or render as HTML in a mail client. The same SMTP
settings email public replies to customers who left an email
(``services.tickets.reply_email_job``). The SMTP connection goes through the SSRF
gate (``services.outbound``), like every outbound connection. Both kinds of mail
are put together by ``services.mail`` (Date, Message-ID on the sending domain, the
team's name as the sender).
"""

from __future__ import annotations

import smtplib
import ssl
from datetime import datetime
from email.message import EmailMessage
from typing import Any

from meiqia.hookspecs import hookimpl
from meiqia.services import mail
from meiqia.services import outbound

TIMEOUT = 15

def send_plain(config: dict[str, Any], to: str, subject: str, text: str, *,
               from_name: str, key: str | None = None, when: datetime | None = None,
               in_reply_to: str | None = None, references: list[str] | None = None) -> str:
    """Send one plain-text email with a sink's SMTP settings, from ``from_name`` (the
    team's name); ``key``: a stable Message-ID ``<key@from-domain>``, the same on every
    attempt so a mail system can drop a repeat. Returns the Message-ID."""
    message = mail.compose(from_address=config["from"], from_name=from_name, to_address=to,
                           subject=subject, text=text, when=when, key=key,
                           in_reply_to=in_reply_to, references=references or ())
    _deliver(config, message)
    return str(message["Message-ID"])


def _deliver(config: dict[str, Any], message: EmailMessage) -> None:
    """Through the SSRF gate (``services.outbound``): the SMTP host must be a public
    address unless the operator allows private networks; a server that cannot be
    reached fails with the same words however it failed (no port scanning)."""
    with outbound.smtp(config["host"], config["port"], timeout=TIMEOUT) as smtp:
        try:
            if config.get("starttls"):  # with the server's certificate checked
                smtp.starttls(context=ssl.create_default_context())
            if config.get("user"):
                smtp.login(config["user"], config.get("password", ""))
        except smtplib.SMTPAuthenticationError:
            raise RuntimeError("the SMTP server refused the user name or password") from None
        except (OSError, smtplib.SMTPException):
            raise RuntimeError(f"the SMTP server at {config['host']}:{config['port']} broke "
                               "off during STARTTLS or login") from None
        smtp.send_message(message)


def _team(payload: dict[str, Any]) -> Any:
    """The ticket's team (None once it is gone: the mail still goes, in Chinese)."""
    from meiqia.models import Team

    return Team.get_or_none(Team.id == payload["ticket"].get("team_id"))


def _language(team: Any) -> str:
    """The language the team reads its notifications in (zh-CN unless it chose en)."""
    return "en" if team is not None and team.language == "en" else "zh-CN"


def _team_name(payload: dict[str, Any]) -> str:
    """The sender of the team's notifications: its name (else a label in its language)."""
    team = _team(payload)
    return mail.sender_name(team.name if team is not None else None, _language(team))


def _named(field: str, raw: Any, team_id: Any, t: Any) -> str:
    """An assignee's or a group's id (as a change records it) → the name the ticket
    pages show: an agent's display name (his nickname, else his name), a group's
    name; one removed since (or not of the team): "deleted agent" / "deleted group"
    in the team's language, never the bare id."""
    from meiqia.models import Agent
    from meiqia.models import Group

    model = Agent if field == "assignee" else Group
    try:
        row = model.get_or_none(model.id == int(raw), model.team == team_id)
    except (TypeError, ValueError):
        row = None
    if row is None:
        return t(f"tk.mail.deleted_{'agent' if field == 'assignee' else 'group'}")
    return row.display_name if field == "assignee" else row.name


def render(payload: dict[str, Any], event: str) -> tuple[str, str]:
    """Subject and body of the team's email for one ticket event (``created`` or
    ``updated``), in the team's language only: labels, status, source, priority and
    changes as the ticket pages name them (an assignee or group by name, never its id);
    what people wrote stays as written."""
    from meiqia.services.dates import team_clock
    from meiqia.web import i18n

    ticket = payload["ticket"]
    contact = ticket["contact"]
    team = _team(payload)
    lang = _language(team)
    zone = team.timezone if team is not None else "UTC"

    def t(key: str, **values: Any) -> str:
        return i18n.text_in(lang, key, **values)

    def coded(prefix: str, code: Any) -> str:
        """A code (status, source, field…) in the pages' words; unknown: the code."""
        key = f"{prefix}.{code}"
        text = t(key)
        return str(code or "-") if text == key else text

    def line(label_key: str, value: Any) -> str:
        return t("tk.mail.line", label=t(label_key), value=value or "-")

    verb = t(f"tk.mail.{event}")
    subject = t("tk.mail.subject", id=ticket["id"], event=verb, subject=ticket["subject"])
    lines = [
        t("tk.mail.heading", id=ticket["id"], event=verb),
        "",
        line("tk.source", coded("tk.source", ticket["source"])),
        line("tk.status", coded("tstatus", ticket["status"])),
        line("tickets.priority", coded("priority", ticket["priority"])),
        line("card.name", contact["name"]),
        line("card.phone", contact["phone"]),
        line("card.email", contact["email"]),
        line("tk.created", f"{team_clock(ticket['created_at'], zone)} ({zone})"),
    ]
    if ticket.get("tags"):
        lines.append(line("tk.tags", ", ".join(ticket["tags"])))
    changes = {k: v for k, v in (payload.get("changes") or {}).items() if k != "reply"}
    if changes:
        codes = {"status": "tstatus", "priority": "priority"}

        def value(field: str, raw: Any) -> str:
            """A change's value as the ticket pages' history shows it: statuses and
            priorities in words, agents and groups by name, nothing as (none)."""
            if raw in (None, ""):
                return t("tk.nothing")
            if field in codes:
                return coded(codes[field], raw)
            if field in ("assignee", "group"):
                return _named(field, raw, ticket.get("team_id"), t)
            return str(raw)

        lines += ["", t("tk.mail.section", label=t("tk.mail.changes"))]
        for field, (old, new) in changes.items():
            lines.append("  " + t("tk.ev.changed", field=coded("tk.field", field),
                                  old=value(field, old), new=value(field, new)))
    lines += ["", t("tk.mail.section", label=t("tickets.content")), ticket["content"]]
    if ticket["public_replies"]:
        lines += ["", t("tk.mail.section", label=t("tk.mail.replies"))]
        lines += [f"- {r}" for r in ticket["public_replies"]]
    if ticket["transcript"]:
        lines += ["", t("tk.mail.section", label=t("tk.transcript")), ticket["transcript"]]
    return subject, "\n".join(lines) + "\n"


class EmailSink:
    type = "email"
    name = {"zh-CN": "邮件（SMTP）", "en": "Email (SMTP)"}

    @staticmethod
    def configuration_schema() -> dict[str, Any]:
        return {
            "type": "object",
            "required": ["host", "port", "from", "to"],
            "additionalProperties": False,
            "properties": {
                "host": {"type": "string", "minLength": 1, "maxLength": 200,
                         "title": {"zh-CN": "SMTP 服务器", "en": "SMTP server"}},
                "port": {"type": "integer", "minimum": 1, "maximum": 65535,
                         "title": {"zh-CN": "端口", "en": "Port"}},
                "user": {"type": "string", "maxLength": 200,
                         "title": {"zh-CN": "用户名", "en": "User name"}},
                "password": {"type": "string", "maxLength": 200,
                             "title": {"zh-CN": "密码", "en": "Password"}},
                "starttls": {"type": "boolean", "title": "STARTTLS"},
                "from": {"type": "string", "format": "email", "maxLength": 254,
                         "title": {"zh-CN": "发件人", "en": "From"}},
                "to": {"type": "string", "format": "email", "maxLength": 254,
                       "title": {"zh-CN": "收件人", "en": "To"}},
            },
            "secret": ["password"],
        }

    @staticmethod
    def validate_config(config: dict[str, Any]) -> None:
        """The SMTP host must pass the SSRF gate (checked again on every send)."""
        from meiqia.services.errors import ValidationError
        from meiqia.services.validation import host_name

        host_name(config["host"], "config.host")  # the one host check, as a URL's
        try:
            outbound.check_host(config["host"], config["port"])
        except outbound.OutboundRefused as exc:
            raise ValidationError(f"config.host: {exc}", "config.host") from exc

    def _send(self, payload: dict[str, Any], config: dict[str, Any], event: str) -> None:
        subject, body = render(payload, event)
        send_plain(config, config["to"], subject, body, from_name=_team_name(payload),
                   key=payload.get("idempotency_key"))

    def create_ticket(self, ticket: dict[str, Any], config: dict[str, Any]) -> None:
        self._send(ticket, config, "created")

    def update_ticket(self, ticket: dict[str, Any], config: dict[str, Any],
                      changes: dict[str, Any]) -> None:
        self._send(ticket, config, "updated")


@hookimpl
def register_ticket_sinks(app: Any) -> list[type]:
    return [EmailSink]
