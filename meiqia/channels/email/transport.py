"""IMAP and SMTP connections of the e-mail channel, through the SSRF gate.

Every connection the server opens to a host an admin typed goes through
``services.outbound`` (docs/security.md §6): the host is resolved once, each
address checked, and the socket opened to the checked address. IMAPClient and
smtplib open their own sockets, so their socket factories are replaced here by
the gate's ``connect`` (plain, STARTTLS or implicit TLS on top of it, with the
server's certificate checked against the host name).
"""

from __future__ import annotations

import smtplib
import socket
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from imapclient import IMAPClient
from imapclient import imap4
from imapclient import tls
from imapclient.exceptions import LoginError

from meiqia.services import outbound

#: Seconds to connect and for each read of a command's answer.
TIMEOUT = 20.0
SECURITY = ("ssl", "starttls", "none")


class MailError(RuntimeError):
    """A mail server could not be used; ``retry`` says whether trying again later
    may help (a server down) or not (a refused address, a wrong password).

    ``reason`` is what agents (beside an undelivered message) and admins (the
    "test connection" button) read: a short Chinese lead and the English detail,
    since it is stored once and read by people of either language."""

    def __init__(self, zh: str, en: str, retry: bool = True) -> None:
        reason = f"{zh} · {en}"
        super().__init__(reason)
        self.reason = reason
        self.retry = retry
        #: Each language's words alone (the Channels page shows the reader's).
        self.zh = zh
        self.en = en


@dataclass
class Server:
    host: str
    port: int
    security: str  # "ssl" | "starttls" | "none"
    user: str
    password: str


class _GatedIMAP4(imap4.IMAP4WithTimeout):
    def _create_socket(self, timeout: float | None = None) -> socket.socket:
        return outbound.connect(self.host, self.port, timeout or self._timeout or TIMEOUT,
                                "an IMAP server")


class _GatedIMAP4TLS(tls.IMAP4_TLS):
    def _create_socket(self, timeout: float | None = None) -> socket.socket:
        raw = outbound.connect(self.host, self.port, timeout or self._timeout or TIMEOUT,
                               "an IMAP server")
        return self.ssl_context.wrap_socket(raw, server_hostname=self.host)


class GatedIMAPClient(IMAPClient):
    """IMAPClient whose socket goes through the gate."""

    def _create_IMAP4(self) -> Any:  # noqa: N802 - IMAPClient's name
        connect_timeout = getattr(self._timeout, "connect", None)
        if self.ssl:
            return _GatedIMAP4TLS(self.host, self.port, self.ssl_context, connect_timeout)
        return _GatedIMAP4(self.host, self.port, connect_timeout)


def open_imap(server: Server, timeout: float = TIMEOUT) -> GatedIMAPClient:
    """A logged-in IMAP session (the caller selects the folder and logs out)."""
    context = ssl.create_default_context()
    try:
        client = GatedIMAPClient(server.host, port=server.port, ssl=server.security == "ssl",
                                 ssl_context=context, timeout=timeout)
    except outbound.OutboundRefused as exc:
        raise MailError(_refused_lead("IMAP", exc), f"IMAP: {exc}", retry=False) from None
    except outbound.OutboundFailed as exc:
        raise MailError("无法连接 IMAP 服务器", f"IMAP: {exc}") from None
    except (OSError, ssl.SSLError, IMAPClient.Error):
        # No IMAP greeting (a timeout, a TLS handshake with something else, another
        # protocol's banner): the gate's one text, as for SMTP, so the answer tells a
        # port scan nothing about what listens there.
        failed = outbound.failed(server.host, server.port, "an IMAP server")
        raise MailError("无法连接 IMAP 服务器", f"IMAP: {failed}") from None
    try:
        if server.security == "starttls":
            client.starttls(context)
        _login(client, server)
        _identify(client)
    except LoginError:
        _close(client)
        raise MailError("IMAP 登录被拒绝：用户名或密码（授权码）错误",
                        "IMAP: the server refused the user name or password",
                        retry=False) from None
    except IMAPClient.Error as exc:
        _close(client)
        raise MailError("IMAP 服务器报错", f"IMAP {server.host}:{server.port}: {exc}"
                        ) from None
    except (OSError, ssl.SSLError) as exc:
        _close(client)
        raise MailError("IMAP 加密握手或登录时连接中断",
                        f"IMAP {server.host}:{server.port} broke off during STARTTLS or "
                        f"login: {type(exc).__name__}") from None
    return client


def _refused_lead(protocol: str, exc: Exception) -> str:
    """The Chinese lead of a refusal by the SSRF gate: a name that does not
    resolve is not an address "not allowed"."""
    if str(exc).startswith("cannot resolve"):
        return f"无法解析 {protocol} 服务器地址"
    return f"{protocol} 服务器地址不允许连接"


def _login(client: IMAPClient, server: Server) -> None:
    """LOGIN carries ASCII only; a user name or password with other characters
    goes by AUTHENTICATE PLAIN, which is UTF-8 (RFC 4616)."""
    if (server.user + server.password).isascii():
        client.login(server.user, server.password)
    else:
        client.plain_login(server.user, server.password)


def _identify(client: IMAPClient) -> None:
    """Say who we are (IMAP ID, RFC 2971) where the server asks: NetEase (163, 126,
    yeah.net) refuses SELECT with "Unsafe Login" to clients that do not."""
    if client.has_capability("ID"):
        try:
            client.id_({"name": "meiqia", "vendor": "meiqia"})
        except IMAPClient.Error:
            pass  # a server that offers ID but fails it still serves the mailbox


def _close(client: IMAPClient) -> None:
    try:
        client.shutdown()
    except Exception:  # noqa: BLE001 - closing a broken connection
        pass


class _GatedSMTPSSL(outbound.GatedSMTP):
    """SMTP over implicit TLS (port 465) on a gated socket."""

    def __init__(self, host: str, port: int, timeout: float, context: ssl.SSLContext) -> None:
        self._context = context
        super().__init__(host, port, timeout=timeout)

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        raw = outbound.connect(host, port, timeout, "an SMTP server")
        return self._context.wrap_socket(raw, server_hostname=host)


def _smtp(server: Server, timeout: float) -> outbound.GatedSMTP:
    context = ssl.create_default_context()
    try:
        if server.security == "ssl":
            smtp = _GatedSMTPSSL(server.host, server.port, timeout, context)
        else:
            smtp = outbound.smtp(server.host, server.port, timeout=timeout)
    except outbound.OutboundRefused as exc:
        raise MailError(_refused_lead("SMTP", exc), f"SMTP: {exc}", retry=False) from None
    except outbound.OutboundFailed as exc:
        raise MailError("无法连接 SMTP 服务器", f"SMTP: {exc}") from None
    except (OSError, ssl.SSLError, smtplib.SMTPException) as exc:
        raise MailError("无法连接 SMTP 服务器",
                        f"SMTP {server.host}:{server.port}: {type(exc).__name__}") from None
    try:
        if server.security == "starttls":
            smtp.starttls(context=context)
        smtp.ehlo_or_helo_if_needed()
        # A relay that offers no AUTH (an office relay that trusts the server's
        # address) is used without logging in.
        if server.user and smtp.has_extn("auth"):
            smtp.login(server.user, server.password)
    except smtplib.SMTPAuthenticationError:
        smtp.close()
        raise MailError("SMTP 登录被拒绝：用户名或密码（授权码）错误",
                        "SMTP: the server refused the user name or password",
                        retry=False) from None
    except (OSError, smtplib.SMTPException) as exc:
        smtp.close()
        raise MailError("SMTP 加密握手或登录时连接中断",
                        f"SMTP {server.host}:{server.port} broke off during STARTTLS or "
                        f"login: {type(exc).__name__}") from None
    return smtp


def check_smtp(server: Server, timeout: float = TIMEOUT) -> None:
    """Connect and log in, send nothing (the admin's "test connection")."""
    smtp = _smtp(server, timeout)
    try:
        smtp.quit()
    except (OSError, smtplib.SMTPException):
        smtp.close()


def send(server: Server, message: EmailMessage, timeout: float = TIMEOUT) -> None:
    """Send one message; MailError says why not and whether a retry may help (a 4xx
    answer or a dropped connection: yes; a 5xx refusal: no)."""
    smtp = _smtp(server, timeout)
    try:
        smtp.send_message(message)
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [code for code, _ in exc.recipients.values()]
        raise MailError("SMTP 服务器拒绝了收件人",
                        f"SMTP refused the recipient ({codes[0] if codes else '?'}): "
                        f"{', '.join(exc.recipients)}",
                        retry=all(400 <= c < 500 for c in codes)) from None
    except (smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as exc:
        raise MailError("SMTP 服务器拒收这封邮件", f"SMTP refused the mail ({exc.smtp_code}): "
                        f"{_text(exc.smtp_error)}", retry=400 <= exc.smtp_code < 500) from None
    except (OSError, smtplib.SMTPException) as exc:
        raise MailError("发送时 SMTP 连接中断", f"SMTP {server.host}:{server.port} broke off "
                        f"while sending: {type(exc).__name__}") from None
    finally:
        try:
            smtp.quit()
        except (OSError, smtplib.SMTPException):
            smtp.close()


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")[:200]
    return str(value)[:200]
