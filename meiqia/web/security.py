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
    session.clear()
    session["agent_id"] = agent.id
    session["pw"] = agent.password_hash[-12:]
    session.permanent = True
    csrf_token()


def logout() -> None:
    session.clear()


def session_agent() -> Agent | None:
    """The agent of the session cookie, if still active and password unchanged."""
    # Cached on the request, not on ``g``: an app context (and its ``g``) may
    # outlive one request, e.g. in tests or CLI code that makes requests.
    cached = request.environ.get("meiqia.session_agent", _MISSING)
    if cached is not _MISSING:
        return cached
    agent = None
    agent_id = session.get("agent_id")
    if agent_id is not None:
        agent = Agent.get_or_none(Agent.id == agent_id, Agent.active == True)  # noqa: E712
        if agent is not None and agent.password_hash[-12:] != session.get("pw"):
            agent = None
    request.environ["meiqia.session_agent"] = agent
    return agent


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
    return agent


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
