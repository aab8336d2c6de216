"""Who is asking: agent sessions and API tokens, visitor tokens, CSRF.

Agents authenticate with the signed session cookie (plus the ``X-CSRF-Token``
header on writes) or an API token through the ``actor_from_request`` hook.
Visitors authenticate with their signed visitor token, in the
``X-Visitor-Token`` header or the ``token`` query parameter of websockets.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import logging
import re
import secrets
from typing import Any

from flask import Flask
from flask import current_app
from flask import request
from flask import session
from itsdangerous import BadSignature
from itsdangerous import SignatureExpired
from itsdangerous import URLSafeTimedSerializer

from meiqia.models import Agent
from meiqia.models import Visitor
from meiqia.models.base import utcnow
from meiqia.services import sessions
from meiqia.services.errors import Forbidden
from meiqia.services.errors import TokenExpired
from meiqia.services.errors import Unauthorized

log = logging.getLogger(__name__)
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
_MISSING = object()


def init_app(app: Flask) -> None:
    @app.context_processor
    def _inject() -> dict[str, Any]:
        return {"csrf_token": csrf_token, "current_agent": session_agent}

    @app.before_request
    def _websocket_origin() -> Any:
        # Before flask-sock's handler: it answers the handshake (101) as it starts.
        if request.path.startswith("/ws/") and request.path not in TOKEN_ONLY_SOCKETS:
            refused = check_socket_origin()
            if refused:
                log.warning("ws: handshake to %s refused: %s", request.path, refused)
                return "cross-origin websocket refused", 403
        return None


#: Sockets authenticated by a token the page must hold (the visitor token), never
#: by a cookie: another site's page cannot borrow them, so any Origin may open them
#: (the widget runs on the team's own sites). Every other socket is checked.
TOKEN_ONLY_SOCKETS = {"/ws/visitor"}


def own_host() -> str:
    """This instance's host[:port] as the browser sees it: the Host header, or
    X-Forwarded-Host when TRUST_FORWARDED_HOST says a proxy rewrites Host."""
    if current_app.config["TRUST_FORWARDED_HOST"]:
        forwarded = request.headers.get("X-Forwarded-Host", "").split(",")[0].strip()
        if forwarded:
            return forwarded.lower()
    return (request.host or "").lower()


def check_socket_origin() -> str | None:
    """Why this websocket handshake is refused (cross-site websocket hijacking), or None.

    A browser sends the session cookie with a websocket handshake from any page
    of the same *site* (a sibling subdomain, SameSite=Lax does not stop it) and
    the socket then speaks for the agent. Browsers always send Origin on a
    websocket handshake, so a handshake carrying our session cookie must come
    from our own origin (same host) or one of ALLOWED_ORIGINS. A handshake
    without the cookie authenticates by API token, which a foreign page cannot
    borrow: it is let through whatever its Origin. No Origin at all: not a
    browser (a script, an integration), nothing to hijack.
    """
    if not request.cookies.get(current_app.config["SESSION_COOKIE_NAME"]):
        return None
    origin = request.headers.get("Origin")
    if origin is None:
        return None
    origin = origin.strip().lower().rstrip("/")
    allowed = {o.strip().lower().rstrip("/") for o in current_app.config["ALLOWED_ORIGINS"]}
    if origin in allowed:
        return None
    scheme, _, host = origin.partition("://")
    if scheme in {"http", "https"} and host and host == own_host():
        return None
    return f"origin {origin!r} is not this instance's ({own_host()!r}) nor in ALLOWED_ORIGINS"


def csrf_token() -> str:
    """The session's CSRF token (created on first use)."""
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(24)
    return session["csrf"]


def same_secret(expected: str, given: str) -> bool:
    """Whether ``given`` is the secret ``expected``, in constant time. Compared as
    UTF-8 bytes: ``hmac.compare_digest`` refuses ``str`` with non-ASCII characters
    (a TypeError, so a 500), and what a client sends may hold any."""
    return hmac.compare_digest(expected.encode("utf-8", "surrogatepass"),
                               given.encode("utf-8", "surrogatepass"))


def check_csrf(value: str | None) -> None:
    expected = session.get("csrf")
    if not expected or not isinstance(value, str) or not value \
            or not same_secret(expected, value):
        raise Forbidden("CSRF token missing or wrong: reload the page")


def login(agent: Agent) -> None:
    """Start a server-side session (``services.sessions``) and name it in the cookie.

    The cookie holds the random session id and the CSRF token, nothing derived
    from the password; a fresh id on every login (no session fixation).
    """
    end_session = session.get("sid")
    session.clear()
    if end_session:
        sessions.end(end_session)
    session["sid"] = sessions.start(agent, client_ip(),
                                    request.headers.get("User-Agent", ""))
    session.permanent = True
    request.environ.pop("meiqia.session_agent", None)
    csrf_token()


def rotate_session(agent: Agent) -> None:
    """Give this browser a fresh session id after its password changed (every
    old id, including a copy of this cookie, is already ended); the CSRF token
    stays, so the open page keeps working."""
    csrf = session.get("csrf")
    login(agent)
    if csrf:
        session["csrf"] = csrf


def logout() -> None:
    """End this session on the server (the cookie stops working everywhere, and
    the agent sockets it opened close)."""
    agent = session_agent()
    sessions.end(session.get("sid"))
    session.clear()
    request.environ.pop("meiqia.session_agent", None)
    if agent is not None:
        sessions.credentials_changed(agent.id)


def session_key() -> str | None:
    """The session id of this request's cookie (to keep it in ``end_all``)."""
    value = session.get("sid")
    return value if isinstance(value, str) else None


def session_agent() -> Agent | None:
    """The agent of the session cookie, if its server-side session is live."""
    # Cached on the request, not on ``g``: an app context (and its ``g``) may
    # outlive one request, e.g. in tests or CLI code that makes requests.
    cached = request.environ.get("meiqia.session_agent", _MISSING)
    if cached is not _MISSING:
        return cached
    found = sessions.agent_of(session_key())
    agent = found[0] if found else None
    request.environ["meiqia.session_agent"] = agent
    return agent


def client_ip() -> str:
    """The client's address, through TRUSTED_PROXIES reverse proxies."""
    from meiqia.services.visit_info import client_ip as resolve

    return resolve(request.remote_addr, request.headers.get("X-Forwarded-For"),
                   current_app.config["TRUSTED_PROXIES"]) or ""


def current_actor(check_writes: bool = True) -> Agent:
    """The agent making this request, or raise Unauthorized.

    Session requests that change something must carry the CSRF header; token
    requests need none (a token is not sent by browsers on their own).
    """
    agent = session_agent()
    if agent is not None:
        if check_writes and request.method not in SAFE_METHODS:
            check_csrf(request.headers.get("X-CSRF-Token"))
        return agent
    pm = current_app.extensions["meiqia.plugins"]
    plugin, agent = pm.call_first_named("actor_from_request", request=request,
                                        check=not_an_actor)
    if agent is None:
        raise Unauthorized("log in or send an API token")
    request.environ["meiqia.token_scope"] = token_scope_of(agent)
    request.environ["meiqia.token_agent"] = agent  # his language for error messages
    # What vouched for him, for the refusals of his scope: an API token, or a plugin.
    request.environ["meiqia.credential"] = (
        "token" if getattr(agent, "api_token", None) is not None else f"plugin {plugin}")
    return agent


def not_an_actor(answer: Any) -> str | None:
    """The runtime's ``check`` of an ``actor_from_request`` answer: None, or an active
    agent row (``meiqia.models.Agent``) whose ``token_scope``, if set, is one of
    ``read``, ``conversations``, ``admin``. Anything else (an email, a
    ``PluginAgent``, a deactivated agent) is a failure of the plugin, counted, logged
    and held against the breaker like raising, and the next implementation (the
    built-in API tokens) decides: it would otherwise become the request's actor and
    fail every request with a 500 (docs/plugins.md, "Authentication")."""
    from meiqia.web.api import TOKEN_SCOPE_ORDER

    if answer is None:
        return None
    if not isinstance(answer, Agent) or not isinstance(answer.id, int):
        return f"expected an agent (meiqia.models.Agent) or None, got {type(answer).__name__}"
    if not answer.active:
        return "the agent returned is deactivated"
    scope = getattr(answer, "token_scope", "admin")
    if scope not in TOKEN_SCOPE_ORDER:
        return "token_scope: expected read, conversations or admin"
    return None


def plugin_of_request() -> str | None:
    """The ``actor_from_request`` plugin that signed this request in (single sign-on,
    say), or None: an API token, a session, a visitor, nobody. Refusals of the
    request's scope name what authenticated it, not an API token it never sent."""
    credential = request.environ.get("meiqia.credential") or ""
    return credential.removeprefix("plugin ") if credential.startswith("plugin ") else None


def token_scope_of(agent: Agent) -> str:
    """The scope of the token an agent came with: the built-in token plugin sets
    ``agent.api_token``; an actor from another ``actor_from_request`` plugin
    without one has ``agent.token_scope`` if the plugin set it, else ``admin``
    (everything the agent may do, still never token or password management)."""
    row = getattr(agent, "api_token", None)
    if row is not None:
        return row.scope
    return getattr(agent, "token_scope", "admin")


def token_scope_of_request() -> str | None:
    """The scope of this request's API token, or None if it came without one."""
    return request.environ.get("meiqia.token_scope")


def require_session_for_credentials() -> None:
    """Refuse API-token requests (403): only a signed-in person, who knows the
    password, may change a password or an email."""
    if token_scope_of_request() is not None:
        plugin = plugin_of_request()
        if plugin is not None:
            raise Forbidden(f"a request signed in by plugin {plugin} may not change "
                            "passwords or emails: sign in with your password")
        raise Forbidden("API tokens may not change passwords or emails: "
                        "sign in with your password")


#: A new salt since tokens carry their issue time (m0011's release): the untimed
#: tokens of before are refused, as they may sit in access logs forever.
VISITOR_TOKEN_SALT = "meiqia.visitor.v2"


def _visitor_serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=VISITOR_TOKEN_SALT)


def visitor_token_lifetime() -> datetime.timedelta:
    return datetime.timedelta(days=current_app.config["VISITOR_TOKEN_DAYS"])


def visitor_token(visitor: Visitor) -> str:
    """A signed token naming the visitor and his team, with its issue time (kept by
    the widget, valid VISITOR_TOKEN_DAYS)."""
    return _visitor_serializer().dumps({"v": visitor.uid, "t": visitor.team_id})


def visitor_token_info(visitor: Visitor) -> dict[str, Any]:
    """What the widget keeps: a fresh token, when it expires, and the renewal key.
    Only for a caller who holds the key already or a new visitor: the key makes a
    token renewable for ever, so a token alone never gets it (``kept_token_info``)."""
    expires = utcnow() + visitor_token_lifetime()
    return {"token": visitor_token(visitor),
            "token_expires_at": expires.isoformat(timespec="seconds") + "Z",
            "renew_key": visitor_renew_key(visitor)}


def kept_token_info(token: str) -> dict[str, Any]:
    """The answer to a session resumed with a live token and no (right) renewal
    key: the same token, its own expiry, no key. Whoever read a token in a log
    gets no more than he came with (docs/security.md §11); the widget keeps the
    key it stored."""
    _, issued = _visitor_serializer().loads(token, return_timestamp=True)
    expires = issued.replace(tzinfo=None) + visitor_token_lifetime()
    return {"token": token, "token_expires_at": expires.isoformat(timespec="seconds") + "Z",
            "renew_key": None}


#: Part of what the renewal key is an HMAC of. v2 since a session resumed with a
#: token alone stopped answering the key: every key given out before (to anyone
#: who had read a token in a log, too) is void, as a fixed HMAC cannot be revoked
#: one by one.
RENEW_KEY_VERSION = "v2"


def visitor_renew_key(visitor: Visitor) -> str:
    """A second secret of the visitor that never travels in a URL (only in JSON
    bodies), so it is in no access log: with it an expired token is renewed for
    the same visitor, conversation and all; without it, an expired token is dead."""
    message = (f"meiqia.visitor.renew.{RENEW_KEY_VERSION}:"
               f"{visitor.team_id}:{visitor.uid}").encode()
    return hmac.new(current_app.config["SECRET_KEY"].encode(), message,
                    hashlib.sha256).hexdigest()[:43]


def renew_key_matches(visitor: Visitor, renew_key: Any) -> bool:
    """Whether ``renew_key`` is the visitor's (compared in constant time)."""
    return isinstance(renew_key, str) and same_secret(visitor_renew_key(visitor), renew_key)


def _visitor_of(data: Any) -> Visitor:
    if not isinstance(data, dict):
        raise Unauthorized("invalid visitor token")
    visitor = Visitor.get_or_none(Visitor.uid == data.get("v"), Visitor.team == data.get("t"))
    if visitor is None:
        raise Unauthorized("invalid visitor token")
    return visitor


#: What a visitor token is made of (itsdangerous: URL-safe base64 parts and dots).
_TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_\-.]+")


def _exact(token: str) -> None:
    """Refuse a token with any other character: itsdangerous drops non-ASCII
    characters before it decodes a signature, so a genuine token with "令牌"
    appended was taken (found from outside). A token is exact or refused."""
    if not _TOKEN_SHAPE.fullmatch(token):
        raise Unauthorized("invalid visitor token")


def visitor_from_token(token: str | None) -> Visitor:
    """The visitor a live token names, or raise Unauthorized (TokenExpired, code
    ``token_expired``, for a genuine token past its lifetime)."""
    if not token or not isinstance(token, str):
        raise Unauthorized("visitor token required")
    _exact(token)
    serializer = _visitor_serializer()
    try:
        data = serializer.loads(token, max_age=visitor_token_lifetime().total_seconds())
    except SignatureExpired:
        raise TokenExpired(
            "the visitor token has expired: renew it or start a new session") from None
    except BadSignature:
        raise Unauthorized("invalid visitor token") from None
    return _visitor_of(data)


def visitor_for_renewal(token: Any, renew_key: Any) -> Visitor:
    """The visitor of a genuine token, expired or not, whose renewal key matches.
    A token that is not genuine (forged, spoiled, of no visitor) is refused naming
    the body's ``token`` field, a wrong key naming ``renew_key`` (docs/protocol.md):
    the client learns which of the two it sent is wrong."""
    if not isinstance(token, str) or not token:
        raise Unauthorized("visitor token required", "token")
    try:
        _exact(token)
        data = _visitor_serializer().loads(token)
        visitor = _visitor_of(data)
    except BadSignature:
        raise Unauthorized("invalid visitor token", "token") from None
    except Unauthorized as refused:
        raise Unauthorized(refused.message, "token") from None
    if not renew_key_matches(visitor, renew_key):
        raise Unauthorized("renew_key: wrong renewal key", "renew_key")
    return visitor


def current_visitor() -> Visitor:
    token = request.headers.get("X-Visitor-Token") or request.args.get("token")
    return visitor_from_token(token)


def socket_visitor_token() -> str | None:
    """A visitor socket's token: X-Visitor-Token (clients that can set headers),
    else ``?token=`` (browsers cannot; access logs redact it, ``log_redaction``)."""
    return request.headers.get("X-Visitor-Token") or request.args.get("token")


def socket_api_token() -> str | None:
    """An agent socket's API token: ``Authorization: Bearer`` (kept out of URLs and
    so out of access logs), else ``?api_token=`` (redacted in logs)."""
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.args.get("api_token")


def token_may_use_agent_socket(agent: Agent) -> bool:
    """An agent socket sends messages: a token needs scope ``conversations``."""
    from meiqia.web.api import token_allows

    return token_allows(token_scope_of(agent), "conversations")
