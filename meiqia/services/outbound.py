"""The one gate for every connection the server opens to an address it was told
(SSRF guard): webhooks, the email sink's SMTP server, and plugins' HTTP.

Why: a team admin (or a plugin's settings) names a host; without this gate the
server would connect wherever it is told: its own loopback services (Redis,
PostgreSQL, the admin port of something), the cloud metadata address
(169.254.169.254), the office network behind it. So the host is resolved once,
every address it has is checked (no loopback, private, link-local, reserved,
multicast, unspecified or otherwise non-public address), and the connection goes
to exactly the checked address, so a second DNS answer (DNS rebinding) cannot
send it elsewhere. HTTP redirects are not followed.

Private addresses are an *instance* decision, never a team's: the operator sets
``OUTBOUND_ALLOW_PRIVATE`` (loopback and private networks: RFC 1918, IPv6 unique
local) or ``OUTBOUND_ALLOWED_NETWORKS`` (only these networks, e.g.
``["10.1.2.0/24"]`` for the office mail relay) in ``instance/config.py`` or
``MEIQIA_*`` variables (docs/security.md §6). Link-local addresses and the cloud
metadata endpoints (``METADATA``) are never opened by ``OUTBOUND_ALLOW_PRIVATE``:
with it on, a team admin's channel ``api_base_url=http://169.254.169.254`` reached
the instance's cloud credentials. Only a network the operator names opens them.

Errors say what to fix without telling a port scanner anything: a refused
address names the rule; a connection that fails in any way (refused, timed out,
reset, not the expected protocol) is one and the same ``OutboundFailed``.
"""

from __future__ import annotations

import http.client
import ipaddress
import smtplib
import socket
from typing import Any
from urllib.parse import urlparse

#: Seconds for connecting and for each read, unless the caller says otherwise.
TIMEOUT = 10.0
#: An HTTP answer is read only this far.
MAX_RESPONSE = 64 * 1024


#: What ``OUTBOUND_ALLOW_PRIVATE`` opens (``refused_reason``'s names): loopback and
#: private networks, nothing else (not link-local, multicast, reserved, shared…).
ALLOW_PRIVATE_OPENS = frozenset({"loopback", "private"})
#: Cloud metadata endpoints outside link-local (Alibaba Cloud's, AWS's over IPv6):
#: refused as link-local, so only ``OUTBOUND_ALLOWED_NETWORKS`` naming them opens them.
METADATA = (ipaddress.ip_network("100.100.100.200/32"),
            ipaddress.ip_network("fd00:ec2::254/128"))


class OutboundRefused(ValueError):
    """The destination is not one the server may connect to."""


class OutboundUnresolved(OutboundRefused):
    """The host has no address now (no such name, or DNS did not answer): unlike a
    refused address, this may change, so settings are saved and deliveries retried."""


def refusal_in(exc: BaseException | None) -> OutboundRefused | None:
    """The gate's refusal that ``exc`` is, or was raised while handling (a plugin
    that wraps it in its own exception), else None."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, OutboundRefused):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def is_permanent(refusal: OutboundRefused) -> bool:
    """A refusal that trying again cannot change: every one but a name that does not
    resolve now (the operator's setting aside, which a retry by hand picks up)."""
    return not isinstance(refusal, OutboundUnresolved)


class OutboundFailed(RuntimeError):
    """The connection failed; deliberately the same words however it failed."""


def refused_reason(address: str) -> str | None:
    """Why the server may not connect to ``address`` (None: a public address)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if isinstance(ip, ipaddress.IPv6Address) and ip.sixtofour is not None:
        inner = refused_reason(str(ip.sixtofour))  # 6to4 wrapping a private IPv4
        if inner:
            return inner
    if any(ip.version == net.version and ip in net for net in METADATA):
        return "link-local"  # a metadata endpoint: what link-local is refused for
    for name in ("loopback", "link_local", "unspecified", "multicast", "reserved", "private"):
        if getattr(ip, f"is_{name}"):
            return name.replace("_", "-")
    if not ip.is_global:  # shared address space (100.64/10), documentation ranges…
        return "non-public"
    return None


def _allowance() -> tuple[bool, list[Any]]:
    """The instance's setting: all private addresses, or these networks (none
    outside a Flask app: the safe answer)."""
    try:
        from flask import current_app

        config = current_app.config
    except RuntimeError:
        return False, []
    networks = [ipaddress.ip_network(n, strict=False)
                for n in config.get("OUTBOUND_ALLOWED_NETWORKS") or []]
    return bool(config.get("OUTBOUND_ALLOW_PRIVATE")), networks


def check_address(host: str, address: str) -> None:
    """Raise OutboundRefused unless the server may connect to ``address``: a
    public address, one inside a network the operator named, or, with
    ``OUTBOUND_ALLOW_PRIVATE``, a loopback or private one (``ALLOW_PRIVATE_OPENS``)."""
    reason = refused_reason(address)
    if reason is None:
        return
    allow_private, networks = _allowance()
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if any(ip.version == n.version and ip in n for n in networks):
        return
    if allow_private and reason in ALLOW_PRIVATE_OPENS:
        return
    raise OutboundRefused(
        f"{host} resolves to {address}, a private address ({reason}): the server does "
        "not connect there (the operator may allow private networks for the whole "
        "instance with OUTBOUND_ALLOWED_NETWORKS)")


def literal(host: str) -> str:
    """``host`` as the resolver takes it: an IPv6 address in brackets (``[::1]``, as
    URLs and SMTP write it) without them. Brackets around anything but an IP address
    are refused: no resolver reads them, so no check could pass them either."""
    if host.startswith("[") and host.endswith("]"):
        inner = host[1:-1]
        try:
            ipaddress.ip_address(inner.split("%", 1)[0])
        except ValueError:
            raise OutboundRefused("the host name or IP address is not valid") from None
        return inner
    return host


def resolve(host: str, port: int) -> str:
    """The one address to connect to, after checking every address ``host`` has."""
    if not host:
        raise OutboundRefused("no host given")
    name = literal(host)
    try:
        address: str | None = str(ipaddress.ip_address(name.split("%", 1)[0]))
    except ValueError:
        address = None  # a name
    if address is not None:  # an address never "resolves later": checked as it is
        check_address(host, address)
    try:
        infos = socket.getaddrinfo(name, port, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError, OSError, ValueError):
        if address is not None:  # e.g. a link-local address on no such interface
            raise OutboundRefused("the host name or IP address is not valid") from None
        raise OutboundUnresolved(f"cannot resolve {host}: no such host") from None
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    if not addresses:
        raise OutboundUnresolved(f"{host} has no address")
    for address in addresses:
        check_address(host, address)
    return addresses[0]


def check_host(host: str, port: int) -> None:
    """For a settings form: refuse a host that is, or resolves to, an address the
    server may not reach (an IPv6 literal in brackets too). A name that does not
    resolve now is let through (DNS may be down or the name not yet published):
    ``connect`` checks again on every use, and a delivery it refuses then fails."""
    try:
        resolve(host, port)
    except OutboundUnresolved:
        return


def failed(host: str, port: int, what: str) -> OutboundFailed:
    """The one failure of a connection, however it failed (module docstring)."""
    return OutboundFailed(f"could not reach {what} at {host}:{port} (nothing answered in "
                          "time, the connection was refused or closed, or it is not "
                          f"{what}): check the host and port")


def connect(host: str, port: int, timeout: float = TIMEOUT, what: str = "the server"
            ) -> socket.socket:
    """A TCP connection to ``host``:``port`` through the gate (checked address)."""
    address = resolve(host, port)
    try:
        return socket.create_connection((address, port), timeout)
    except OSError:
        raise failed(host, port, what) from None


# --- HTTP ------------------------------------------------------------------------------


class _GatedHTTPConnection(http.client.HTTPConnection):
    def connect(self) -> None:
        self.sock = connect(self.host, self.port, self.timeout or TIMEOUT, "an HTTP server")


class _GatedHTTPSConnection(http.client.HTTPSConnection):
    def connect(self) -> None:
        raw = connect(self.host, self.port, self.timeout or TIMEOUT, "an HTTPS server")
        self.sock = self._context.wrap_socket(raw, server_hostname=self.host)


def check_url(url: str) -> tuple[str, str, int]:
    """Scheme, host and port of an http(s) URL whose host passes the gate, for a
    settings form: as ``check_host``, a name that does not resolve now is let
    through (``http_request`` resolves and checks again on every use).

    The URL itself is checked by the one URL check (``validation.http_url``: a bad
    port, host or bracket is refused in our words, never urllib's)."""
    scheme, host, port = _url_parts(url)
    check_host(host, port)
    return scheme, host, port


def _url_parts(url: str) -> tuple[str, str, int]:
    from meiqia.services.errors import ValidationError
    from meiqia.services.validation import http_url

    try:
        parsed = urlparse(http_url(url, "url"))
    except ValidationError as exc:
        raise OutboundRefused(exc.message) from None
    scheme = parsed.scheme.lower()
    port = parsed.port or (443 if scheme == "https" else 80)
    return scheme, parsed.hostname, port


def http_request(method: str, url: str, body: bytes | None = None,
                 headers: dict[str, str] | None = None, timeout: float = TIMEOUT,
                 max_response: int = MAX_RESPONSE) -> tuple[int, dict[str, str], bytes]:
    """One HTTP(S) request through the gate: ``(status, headers, first bytes of the
    body)``. Redirects are returned, never followed (their target was not checked).
    For webhooks, channels and plugins: none of them opens sockets of its own."""
    scheme, host, port = _url_parts(url)
    resolve(host, port)
    parsed = urlparse(url)
    conn_class = _GatedHTTPSConnection if scheme == "https" else _GatedHTTPConnection
    conn = conn_class(host, port, timeout=timeout)
    path = (parsed.path or "/") + (f"?{parsed.query}" if parsed.query else "")
    try:
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            data = response.read(max_response)
        except OutboundFailed:
            raise
        except (OSError, http.client.HTTPException):
            raise failed(host, port, "an HTTP server") from None
        return response.status, {k.lower(): v for k, v in response.getheaders()}, data
    finally:
        conn.close()


# --- SMTP ------------------------------------------------------------------------------


class GatedSMTP(smtplib.SMTP):
    """``smtplib.SMTP`` whose connection goes through the gate; every failure to
    get an SMTP greeting is the same ``OutboundFailed``."""

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        return connect(host, port, timeout, "an SMTP server")

    def connect(self, host: str = "localhost", port: int = 0,
                source_address: Any = None) -> tuple[int, bytes]:
        try:
            code, message = super().connect(host, port, source_address)
        except (OutboundFailed, OutboundRefused):
            raise
        except (OSError, smtplib.SMTPException):
            self.close()
            raise failed(host, port, "an SMTP server") from None
        if code != 220:
            self.close()
            raise failed(host, port, "an SMTP server")
        return code, message


def smtp(host: str, port: int, timeout: float = TIMEOUT) -> GatedSMTP:
    """A connected SMTP client for ``host``:``port``, through the gate."""
    return GatedSMTP(host, port, timeout=timeout)
