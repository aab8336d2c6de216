"""The e-mail channel: a support mailbox read over IMAP, answered over SMTP.

Built on nothing but the public channel API (``meiqia.channels``): each new
mail of the mailbox is decoded (``parse.py``), auto-replies and bounces are
dropped (``loops.py``), and the rest goes to ``receive()`` with its Message-ID
as the external id (stored once) and its In-Reply-To/References as the thread
it answers, so a reply continues its conversation. Each message the visitor
should see comes back through ``deliver()``, which sends a threaded reply
(``compose.py``) and returns its Message-ID for the next reply to thread on.

Beyond ``meiqia.channels`` it touches three modules, each on purpose: the SSRF
gate ``services.outbound`` (IMAP and SMTP are sockets, not HTTP, so
``host.outbound_http`` cannot carry them; the gate's ``connect`` is what every
gated connection uses), ``services.errors`` (what the contract says ``receive``
raises), and ``db.connection`` for the poller thread's units of work (the
channel state store needs a database connection on a thread that has none, and
it must go back to the pool after each unit).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from typing import Any

from meiqia.channels import Attachment
from meiqia.channels import Channel
from meiqia.channels import ChannelConversation
from meiqia.channels import ChannelMessage
from meiqia.channels import DeliveryError
from meiqia.channels import receive
from meiqia.channels.email import compose
from meiqia.channels.email import transport
from meiqia.channels.email.parse import InboundMail
from meiqia.channels.email.parse import parse
from meiqia.channels.email.poller import Poller

#: The drop-down's words for ``transport.SECURITY`` (ssl, starttls, none), each in the
#: admin's language (``enumNames``, docs/plugins.md).
SECURITY_NAMES = [{"zh-CN": "SSL/TLS（993/465）", "en": "SSL/TLS (993/465)"},
                  {"zh-CN": "STARTTLS（143/587）", "en": "STARTTLS (143/587)"},
                  {"zh-CN": "不加密", "en": "None (unencrypted)"}]


def _server_props(prefix: str, port: int) -> dict[str, Any]:
    kind = prefix.upper()
    return {
        f"{prefix}_host": {"type": "string", "minLength": 1, "maxLength": 200,
                           "title": {"zh-CN": f"{kind} 服务器", "en": f"{kind} host"}},
        f"{prefix}_port": {"type": "integer", "default": port, "minimum": 1, "maximum": 65535,
                           "title": {"zh-CN": f"{kind} 端口", "en": f"{kind} port"}},
        f"{prefix}_security": {"type": "string", "enum": list(transport.SECURITY),
                               "enumNames": SECURITY_NAMES, "default": "ssl",
                               "title": {"zh-CN": f"{kind} 加密方式", "en": f"{kind} security"}},
        f"{prefix}_user": {"type": "string", "maxLength": 254,
                           "title": {"zh-CN": f"{kind} 用户名", "en": f"{kind} user"}},
        f"{prefix}_password": {"type": "string", "maxLength": 500,
                               "title": {"zh-CN": f"{kind} 密码/授权码",
                                         "en": f"{kind} password (or app password)"}},
    }


def _mail_id(external_id: str | None) -> str | None:
    """The Message-ID of an external id (a mail's later parts were once stored
    as "<id> part-N")."""
    return external_id.split(" ", 1)[0] if external_id else None


class EmailChannel(Channel):
    """A team's support mailbox (see the module docstring and docs/channels-email.md)."""

    type = "email"
    name = {"zh-CN": "邮件", "en": "E-mail"}
    #: Mail carries files; it has no typing preview, read receipts or rating prompt.
    capabilities = frozenset({"attachments"})
    #: No welcome line: the team's greeting is for a chat window. A customer who
    #: writes a mail gets one mail back, the answer, not a greeting mail before it.
    welcome_line = False

    @staticmethod
    def configuration_schema() -> dict[str, Any]:
        properties: dict[str, Any] = {}
        properties.update(_server_props("imap", 993))
        properties["imap_folder"] = {"type": "string", "default": "INBOX", "minLength": 1,
                                     "maxLength": 200,
                                     "title": {"zh-CN": "收件文件夹", "en": "Folder"}}
        properties["imap_idle"] = {"type": "boolean", "default": True,
                                   "title": {"zh-CN": "使用 IMAP IDLE（服务器支持时）",
                                             "en": "Use IMAP IDLE (when the server supports it)"},
                                   "description": {"zh-CN": "关闭：按间隔检查",
                                                   "en": "Off: look every poll interval"}}
        properties.update(_server_props("smtp", 465))
        properties["smtp_user"]["description"] = {"zh-CN": "空：同 IMAP 用户名",
                                                  "en": "Empty: the IMAP user"}
        properties["smtp_password"]["description"] = {"zh-CN": "空：同 IMAP 密码",
                                                      "en": "Empty: the IMAP password"}
        properties.update({
            "from_address": {"type": "string", "format": "email", "maxLength": 254,
                             "title": {"zh-CN": "发件地址", "en": "From address"}},
            "from_name": {"type": "string", "maxLength": 100,
                          "title": {"zh-CN": "发件人名称", "en": "From name"},
                          "description": {"zh-CN": "空：团队名称",
                                          "en": "Empty: the team's name"}},
            "poll_interval": {"type": "integer", "minimum": 5, "maximum": 3600, "default": 60,
                              "title": {"zh-CN": "检查新邮件间隔（秒）",
                                        "en": "Poll interval (seconds)"},
                              "description": {"zh-CN": "服务器支持 IDLE 时新邮件即时到达",
                                              "en": "With IMAP IDLE new mail arrives at once"}},
        })
        return {
            "type": "object",
            "required": ["imap_host", "imap_user", "imap_password", "smtp_host",
                         "from_address"],
            "additionalProperties": False,
            "properties": properties,
            "secret": ["imap_password", "smtp_password"],
        }

    @staticmethod
    def validate_config(config: dict[str, Any]) -> None:
        """Both hosts must pass the SSRF gate (checked again on every connection)."""
        from meiqia.services import outbound
        from meiqia.services.errors import ValidationError
        from meiqia.services.validation import host_name

        for prefix, port in (("imap", 993), ("smtp", 465)):
            host = config.get(f"{prefix}_host")
            if host:
                host_name(host, f"config.{prefix}_host")  # the one host check, as a URL's
                try:
                    outbound.check_host(host, int(config.get(f"{prefix}_port") or port))
                except outbound.OutboundRefused as exc:
                    raise ValidationError(f"config.{prefix}_host: {exc}",
                                          f"config.{prefix}_host") from exc

    def __init__(self, config: dict[str, Any], host: Any) -> None:
        super().__init__(config, host)
        self.poller: Poller | None = None

    # --- settings ----------------------------------------------------------------

    def _get(self, name: str, default: Any = None) -> Any:
        value = self.config.get(name)
        return default if value in (None, "") else value

    @property
    def imap(self) -> transport.Server:
        return transport.Server(
            host=self._get("imap_host", ""), port=int(self._get("imap_port", 993)),
            security=self._get("imap_security", "ssl"), user=self._get("imap_user", ""),
            password=self._get("imap_password", ""))

    @property
    def smtp(self) -> transport.Server:
        return transport.Server(
            host=self._get("smtp_host", ""), port=int(self._get("smtp_port", 465)),
            security=self._get("smtp_security", "ssl"),
            user=self._get("smtp_user", self._get("imap_user", "")),
            password=self._get("smtp_password", self._get("imap_password", "")))

    @property
    def from_address(self) -> str:
        return str(self._get("from_address", self._get("imap_user", ""))).strip()

    @property
    def own_addresses(self) -> set[str]:
        """Addresses whose mail is ours: never answered (no loops)."""
        own = {self.from_address.lower()}
        for user in (self._get("imap_user"), self._get("smtp_user")):
            if user and "@" in str(user):
                own.add(str(user).strip().lower())
        return own

    # --- inbound -----------------------------------------------------------------

    def start(self) -> None:
        if self.poller is None:
            self.poller = Poller(self.imap, self._get("imap_folder", "INBOX"),
                                 float(self._get("poll_interval", 60)), self.handle_mail,
                                 self.host.state, self._unit, self.host.log,
                                 use_idle=bool(self.config.get("imap_idle", True)),
                                 app_context=self.host.app.app_context)
        self.poller.start()

    def stop(self) -> None:
        if self.poller is not None:
            self.poller.stop()
            self.poller = None

    @contextlib.contextmanager
    def _unit(self) -> Iterator[None]:
        """The app and a database connection, for the poller thread's work."""
        from flask import has_app_context

        from meiqia.db import connection

        if has_app_context():
            with connection():
                yield
            return
        with self.host.app.app_context(), connection():
            yield

    def handle_mail(self, raw: bytes) -> Any:
        """One raw mail from the mailbox: dropped when automatic or empty, else
        received (the ``ReceiveResult``)."""
        mail = parse(raw, self.own_addresses)
        if mail.automatic:
            self.host.log.info("e-mail: %s from %s not answered: %s", mail.message_id,
                               mail.sender or "?", mail.automatic)
            return None
        if not mail.sender or "@" not in mail.sender:
            self.host.log.info("e-mail: %s has no sender address; not answered",
                               mail.message_id)
            return None
        if not mail.text.strip() and not mail.files:
            if not mail.subject.strip():
                self.host.log.info("e-mail: %s from %s is empty; not answered",
                                   mail.message_id, mail.sender)
                return None
            # Everything in the subject line ("发货快吗？" and no body): that is the message.
            mail = dataclasses.replace(mail, text=compose.strip_reply_prefix(mail.subject))
        return self._receive(mail)

    def _receive(self, mail: InboundMail) -> Any:
        """The whole mail in one ``receive``: the text, then each file as a message
        of its own, then the bot's answer (or the handover) after all of them. A
        file the upload checks refuse (type, size, the team's quota) becomes a line
        saying so in its place (``note_refused``) instead of losing the mail. The
        Message-ID is the external id (a mail fetched twice is stored once; one
        whose handling broke off half way stores each part once when read again).

        Each part used to be a ``receive`` of its own: the text's answer was
        stored, and mailed, before the files came in after it."""
        return receive(
            self.host, mail.sender, mail.text if mail.text.strip() else "",
            [Attachment(filename=f.filename, content_type=f.content_type, data=f.data)
             for f in mail.files],
            metadata={"email": {"message_id": mail.message_id, "subject": mail.subject,
                                "from": mail.sender}},
            external_message_id=mail.message_id, in_reply_to=mail.in_reply_to[:50],
            display_name=mail.display_name, subject=mail.subject or None,
            note_refused=True, email=mail.sender)

    # --- how reading goes (the Channels page) --------------------------------------

    @staticmethod
    def reader_status(config: dict[str, Any], state: Any, lang: str = "zh-CN"
                      ) -> dict[str, Any]:
        """How the team's mailbox reader is doing, for the admin (``GET
        /api/v1/channels/email`` ``reader``, the Channels page): ``state`` ok,
        failing (its last round failed), stale (no round for longer than a
        reader's claim lasts: no process is reading) or waiting (not read yet);
        ``read_at`` the last round that read the mailbox, ``error`` the last
        failure in ``lang`` with ``error_at`` and ``failures`` in a row; and
        ``message``, one line in ``lang``. A mail server that was down showed
        nowhere: the page said "on" while the reader failed every few seconds.

        Stale wins over what the reader last said: a reader killed while failing
        left "failing" on the page for ever. It is due again after a round (the
        poll interval, or IDLE's wait), or after a failure after its pause
        (doubling from the interval, ``MAX_BACKOFF`` at most) and an attempt
        (the connection timeout); nothing written for longer than that and its
        slack is no reader."""
        import calendar
        import time

        from meiqia.channels.email.poller import MAX_BACKOFF
        from meiqia.channels.email.poller import MAX_IDLE
        from meiqia.channels.email.poller import STATUS_KEY

        en = lang != "zh-CN"
        status = state.get(STATUS_KEY) or {}
        error = status.get("error") or None
        words = (error.get("en") if en else error.get("zh")) if isinstance(error, dict) \
            else None
        failures = int(status.get("failures") or 0)
        read_at = status.get("read_at")
        interval = max(float(config.get("poll_interval") or 60), 1.0)
        failing = bool(failures and words)
        if failing:
            # Its pause after this failure, an attempt (the connection's timeout)
            # and 30 s: a reader that failed writes again within that, or died.
            pause = min(interval * 2 ** min(failures - 1, 30), MAX_BACKOFF)
            stale_after = pause + transport.TIMEOUT + 30
        else:
            # Longer than a claim (two rounds and 30 s) and a round more: nobody reads.
            stale_after = 3 * min(interval, MAX_IDLE) + 30
        last = max(filter(None, [read_at, status.get("error_at")]), default=None)
        age = None
        if last:  # written by the poller as time.gmtime()
            age = time.time() - calendar.timegm(time.strptime(last, "%Y-%m-%dT%H:%M:%SZ"))
        if last is None:
            state_name = "waiting"
            message = "The mailbox has not been read yet" if en else "尚未读取邮箱"
        elif age is not None and age > stale_after:
            state_name = "stale"
            minutes = max(1, int(age // 60))
            message = (f"The mailbox has not been read for {minutes} min: no web process "
                       "is reading it" if en else
                       f"已 {minutes} 分钟未读取邮箱：没有进程在读取")
        elif failing:
            state_name = "failing"
            message = (f"Reading the mailbox failed ({failures} in a row): {words}" if en
                       else f"读取邮箱失败（连续 {failures} 次）：{words}")
        else:
            state_name = "ok"
            message = "Reading the mailbox" if en else "正在读取邮箱"
        return {"state": state_name, "message": message, "read_at": read_at,
                "error": words, "error_at": status.get("error_at") if words else None,
                "failures": failures}

    # --- outbound ----------------------------------------------------------------

    def from_name(self, conversation: ChannelConversation) -> str:
        """The sender's name: ``from_name`` as the admin set it, else the team's name
        (``services.mail``). The old default "客服 Support", two languages in one, is
        taken as unset."""
        from meiqia.services import mail

        name = " ".join(str(self._get("from_name", "")).split())
        if name and name != mail.OLD_DEFAULT_NAME:
            return name
        return mail.team_sender_name(conversation.team_id, conversation.language)

    def deliver(self, conversation: ChannelConversation, message: ChannelMessage) -> str | None:
        to = (conversation.visitor_external_id or "").strip()
        if "@" not in to:
            raise DeliveryError(f"访客没有邮件地址 · not an e-mail address: {to!r}",
                                retry=False)
        meta = (conversation.metadata or {}).get("email") or {}
        reply = compose.build_reply(
            from_address=self.from_address, from_name=self.from_name(conversation),
            to_address=to, to_name=conversation.visitor_name or None,
            subject=conversation.subject or meta.get("subject"), body=message.body or "",
            kind=message.kind, sender_name=message.sender_name or None,
            in_reply_to=_mail_id(message.in_reply_to_external_id),
            thread=[_mail_id(ref) for ref in message.references],
            created_at=message.created_at, files=list(message.attachments or []),
            language=conversation.language)
        try:
            transport.send(self.smtp, reply)
        except transport.MailError as exc:
            raise DeliveryError(exc.reason, retry=exc.retry) from None
        return reply["Message-ID"]

    def test_connection(self) -> dict[str, str]:
        """Each language's words alone: the admin who pressed the button reads his."""
        try:
            client = transport.open_imap(self.imap)
        except transport.MailError as exc:
            raise DeliveryError({"zh-CN": exc.zh, "en": exc.en}) from None
        folder = self._get("imap_folder", "INBOX")
        try:
            info = client.select_folder(folder, readonly=True)
            count = int(info.get(b"EXISTS", 0))
            idle = client.has_capability("IDLE")
        except Exception as exc:  # noqa: BLE001 - the admin reads why
            raise DeliveryError({"zh-CN": f"无法打开 IMAP 文件夹 {folder}（{exc}）",
                                 "en": f"IMAP: cannot open the folder {folder!r}: {exc}"}
                                ) from None
        finally:
            with contextlib.suppress(Exception):
                client.logout()
        try:
            transport.check_smtp(self.smtp)
        except transport.MailError as exc:
            raise DeliveryError({"zh-CN": exc.zh, "en": exc.en}) from None
        every = self._get("poll_interval", 60)
        smtp = f"{self.smtp.host}:{self.smtp.port}"
        return {"zh-CN": f"IMAP 已登录：{folder}（{count} 封邮件，"
                         f"{'IDLE' if idle else f'每 {every} 秒读取一次'}）· SMTP 已登录：{smtp}",
                "en": f"IMAP logged in: {folder} ({count} messages, "
                      f"{'IDLE' if idle else f'read every {every} s'}) · SMTP logged in: {smtp}"}
