"""Built-in ticket sink: email over SMTP.

A readable plain-text message in Chinese and English with the ticket, its public
replies and the public transcript of its conversation. Internal notes are never
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
SOURCE_NAMES = {
    "no_agent_online": "无客服在线 / no agent online",
    "all_busy": "客服忙 / all agents busy",
    "after_end": "对话结束后 / after the chat",
    "bot_unrecognised": "机器人未识别 / the bot did not understand",
    "queue_leave": "排队时留言 / left the queue",
    "agent_created": "客服创建 / created by an agent",
}
STATUS_NAMES = {"open": "待处理 open", "pending": "处理中 pending", "solved": "已解决 solved",
                "closed": "已关闭 closed"}
PRIORITY_NAMES = {"low": "低 low", "normal": "普通 normal", "high": "高 high",
                  "urgent": "紧急 urgent"}


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


def _created(ticket: dict[str, Any]) -> str:
    """The ticket's creation on the team's clock, naming the zone (the payload says UTC)."""
    from meiqia.models import Team
    from meiqia.services.dates import team_clock

    team = Team.get_or_none(Team.id == ticket.get("team_id"))
    zone = team.timezone if team is not None else "UTC"
    return f"{team_clock(ticket['created_at'], zone)} ({zone})"


def _team_name(payload: dict[str, Any]) -> str:
    """The sender of the team's notifications: its name (else a label in its language)."""
    from meiqia.models import Team

    team = Team.get_or_none(Team.id == payload["ticket"].get("team_id"))
    language = "en" if team is not None and team.language == "en" else "zh-CN"
    return mail.sender_name(team.name if team is not None else None, language)


def render(payload: dict[str, Any], verb: str) -> tuple[str, str]:
    """Subject and body of the email for one ticket event."""
    ticket = payload["ticket"]
    contact = ticket["contact"]
    subject = f"[工单 #{ticket['id']}] {verb}: {ticket['subject']}"
    lines = [
        f"工单 Ticket #{ticket['id']} — {verb}",
        "",
        f"来源 Source:    {SOURCE_NAMES.get(ticket['source'], ticket['source'])}",
        f"状态 Status:    {STATUS_NAMES.get(ticket['status'], ticket['status'])}",
        f"优先级 Priority: {PRIORITY_NAMES.get(ticket['priority'], ticket['priority'])}",
        f"联系人 Contact:  {contact['name'] or '-'}",
        f"电话 Phone:     {contact['phone'] or '-'}",
        f"邮箱 Email:     {contact['email'] or '-'}",
        f"创建 Created:   {_created(ticket)}",
    ]
    if ticket.get("tags"):
        lines.append(f"标签 Tags:     {', '.join(ticket['tags'])}")
    changes = {k: v for k, v in (payload.get("changes") or {}).items() if k != "reply"}
    if changes:
        lines += ["", "变更 Changes:"] + [f"  {k}: {old or '-'} → {new or '-'}"
                                          for k, (old, new) in changes.items()]
    lines += ["", "留言内容 Message:", ticket["content"]]
    if ticket["public_replies"]:
        lines += ["", "回复 Replies:"] + [f"- {r}" for r in ticket["public_replies"]]
    if ticket["transcript"]:
        lines += ["", "对话记录 Transcript:", ticket["transcript"]]
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
                "host": {"type": "string", "title": "SMTP 服务器 host", "minLength": 1,
                         "maxLength": 200},
                "port": {"type": "integer", "title": "端口 port", "minimum": 1,
                         "maximum": 65535},
                "user": {"type": "string", "title": "用户名 user", "maxLength": 200},
                "password": {"type": "string", "title": "密码 password", "maxLength": 200},
                "starttls": {"type": "boolean", "title": "STARTTLS"},
                "from": {"type": "string", "title": "发件人 from", "format": "email",
                         "maxLength": 254},
                "to": {"type": "string", "title": "收件人 to", "format": "email",
                       "maxLength": 254},
            },
            "secret": ["password"],
        }

    @staticmethod
    def validate_config(config: dict[str, Any]) -> None:
        """The SMTP host must pass the SSRF gate (checked again on every send)."""
        from meiqia.services.errors import ValidationError

        try:
            outbound.check_host(config["host"], config["port"])
        except outbound.OutboundRefused as exc:
            raise ValidationError(f"config.host: {exc}", "config.host") from exc

    def _send(self, payload: dict[str, Any], config: dict[str, Any], verb: str) -> None:
        subject, body = render(payload, verb)
        send_plain(config, config["to"], subject, body, from_name=_team_name(payload),
                   key=payload.get("idempotency_key"))

    def create_ticket(self, ticket: dict[str, Any], config: dict[str, Any]) -> None:
        self._send(ticket, config, "新工单 new")

    def update_ticket(self, ticket: dict[str, Any], config: dict[str, Any],
                      changes: dict[str, Any]) -> None:
        self._send(ticket, config, "更新 updated")


@hookimpl
def register_ticket_sinks(app: Any) -> list[type]:
    return [EmailSink]
