"""Who is asking: agent sessions and API tokens, visitor tokens, CSRF.

Agents authenticate with the signed session cookie (plus the ``X-CSRF-Token``
header on writes) or an API token through the ``actor_from_request`` hook.
Visitors authenticate with their signed visitor token, in the
``X-Visitor-Token`` header or the ``token`` query parameter of websockets.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any

from flask import Flask
from flask import current_app
from flask import request
from flask import session
from itsdangerous import BadSignature
from itsdangerous import URLSafeSerializer

from meiqia.models import Agent
from meiqia.models import Visitor
from meiqia.services import sessions
from meiqia.services.errors import Forbidden
from meiqia.services.errors import Unauthorized

SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
_MISSING = object()


def init_app(app: Flask) -> None:
    @app.context_processor
    def _inject() -> dict[str, Any]:
        return {"csrf_token": csrf_token, "current_agent": session_agent}


def csrf_token() -> str:
    """The session's CSRF token (created on first use)."""
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(24)
    return session["csrf"]


def check_csrf(value: str | None) -> None:
    expected = session.get("csrf")
    if not expected or not value or not hmac.compare_digest(expected, value):
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
    """End this session on the server (the cookie stops working everywhere)."""
    sessions.end(session.get("sid"))
    session.clear()
    request.environ.pop("meiqia.session_agent", None)


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
    agent = pm.call_first("actor_from_request", request=request)
    if agent is None:
        raise Unauthorized("log in or send an API token")
    request.environ["meiqia.token_scope"] = token_scope_of(agent)
    return agent


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
        raise Forbidden("API tokens may not change passwords or emails: "
                        "sign in with your password")


def _visitor_serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt="meiqia.visitor")


def visitor_token(visitor: Visitor) -> str:
    """A signed token naming the visitor and his team (kept by the widget)."""
    return _visitor_serializer().dumps({"v": visitor.uid, "t": visitor.team_id})


def visitor_from_token(token: str | None) -> Visitor:
    """The visitor a token names, or raise Unauthorized."""
    if not token:
        raise Unauthorized("visitor token required")
    try:
        data = _visitor_serializer().loads(token)
    except BadSignature:
        raise Unauthorized("invalid visitor token") from None
    visitor = Visitor.get_or_none(Visitor.uid == data.get("v"), Visitor.team == data.get("t"))
    if visitor is None:
        raise Unauthorized("invalid visitor token")
    return visitor


def current_visitor() -> Visitor:
    token = request.headers.get("X-Visitor-Token") or request.args.get("token")
    return visitor_from_token(token)
