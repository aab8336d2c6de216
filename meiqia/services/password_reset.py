"""Getting back in after a forgotten password (issue 17, item 3).

Two ways, both written to the audit log:

* the console: ``meiqia agent passwd EMAIL`` (``set_from_console``), for whoever
  runs the server, e.g. the only admin;
* an admin's one-time link (``create_link``): a random secret shown to the admin
  once, of which only the SHA-256 is stored. It works once, for
  ``PASSWORD_RESET_HOURS``; a newer link for the same agent revokes the older
  ones. Using it (``use_link``) sets the password with the same rules as
  everywhere (``accounts.check_password``) and ends every session of the agent,
  so a browser left signed in elsewhere is out too. Spending the link is one
  conditional UPDATE, so two submissions racing for it cannot both succeed.
"""

from __future__ import annotations

import datetime
import hashlib
import secrets
from typing import Any

from flask import current_app
from werkzeug.security import generate_password_hash

from meiqia.db import database
from meiqia.models import Agent
from meiqia.models import AuditLog
from meiqia.models import PasswordReset
from meiqia.models.base import utcnow
from meiqia.services import sessions
from meiqia.services.accounts import audit
from meiqia.services.accounts import check_password
from meiqia.services.accounts import get_agent
from meiqia.services.accounts import iso
from meiqia.services.accounts import require_admin
from meiqia.services.accounts import revoke_reset_links
from meiqia.services.errors import NotFound
from meiqia.services.errors import ValidationError

USE_SCHEMA = {
    "type": "object",
    "required": ["token", "password"],
    "additionalProperties": False,
    "properties": {
        "token": {"type": "string", "minLength": 1, "maxLength": 200},
        "password": {"type": "string", "maxLength": 200},
    },
}

#: The one answer for a link that is unknown, used, revoked or expired: which of
#: them it was is nobody's business who only holds the link.
DEAD_LINK = "this password reset link is invalid, used or expired: ask an admin for a new one"


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _lifetime() -> datetime.timedelta:
    return datetime.timedelta(hours=current_app.config.get("PASSWORD_RESET_HOURS", 24))


def create_link(actor: Agent, agent_id: int, ip: str = "") -> tuple[PasswordReset, str]:
    """An admin makes a one-time reset link for an agent of his team.

    Returns the row and the secret (only now; the caller builds the URL).
    """
    require_admin(actor)
    agent = get_agent(actor, agent_id)
    if not agent.active:
        raise ValidationError("agent: the account is deactivated: activate it first", "agent")
    token = secrets.token_urlsafe(32)
    now = utcnow()
    with database.atomic():
        revoke_reset_links(agent.id)  # a newer link revokes the older ones
        row = PasswordReset.create(agent=agent.id, created_by=actor.id, token_hash=_hash(token),
                                   created_at=now, expires_at=now + _lifetime())
        audit(actor, "agent.password_reset_link", "agent", agent.id,
              {"expires_at": iso(row.expires_at)}, ip=ip)
    return row, token


def _live(token: Any) -> PasswordReset | None:
    if not isinstance(token, str) or not token or len(token) > 200:
        return None
    row = PasswordReset.get_or_none(PasswordReset.token_hash == _hash(token))
    if (row is None or row.used_at is not None or row.revoked_at is not None
            or row.expires_at <= utcnow()):
        return None
    return row


def agent_of_link(token: Any) -> Agent:
    """The active agent a live link is for, or NotFound (``DEAD_LINK``)."""
    row = _live(token)
    agent = Agent.get_or_none(Agent.id == row.agent_id) if row is not None else None
    if agent is None or not agent.active:
        raise NotFound(DEAD_LINK)
    return agent


def use_link(token: Any, password: Any, ip: str = "") -> Agent:
    """Set the agent's password through a live link, spending it; sign him out
    everywhere. The password is checked before the link is spent, so a refused
    password leaves the link usable."""
    agent = agent_of_link(token)
    if not isinstance(password, str):
        raise ValidationError("password: required", "password")
    check_password(password)
    now = utcnow()
    with database.atomic():
        spent = PasswordReset.update(used_at=now).where(
            PasswordReset.token_hash == _hash(token), PasswordReset.used_at.is_null(),
            PasswordReset.revoked_at.is_null(), PasswordReset.expires_at > now).execute()
        if spent != 1:  # another submission took it first, or it just expired
            raise NotFound(DEAD_LINK)
        Agent.update(password_hash=generate_password_hash(password)).where(
            Agent.id == agent.id).execute()
        revoke_reset_links(agent.id)
        ended = sessions.end_all(agent.id)
        audit(agent, "agent.password_reset", "agent", agent.id,
              {"via": "link", "sessions_ended": ended}, ip=ip)
    sessions.credentials_changed(agent.id)  # committed: his open sockets close now
    return agent


def set_from_console(email: str, password: str, end_sessions: bool = True) -> tuple[Agent, int]:
    """``meiqia agent passwd``: set a password by email; returns the agent and how
    many of his sessions were ended."""
    agent = Agent.get_or_none(Agent.email == (email or "").strip().lower())
    if agent is None:
        raise NotFound(f"no agent with the email {email}")
    check_password(password)
    with database.atomic():
        Agent.update(password_hash=generate_password_hash(password)).where(
            Agent.id == agent.id).execute()
        # Unused links must not outlive a password set another way.
        revoke_reset_links(agent.id)
        ended = sessions.end_all(agent.id) if end_sessions else 0
        # No actor (the console), so the team is named here, not taken from him.
        AuditLog.create(team=agent.team_id, actor=None, action="agent.password_reset",
                        target_type="agent", target_id=str(agent.id),
                        details={"via": "console", "sessions_ended": ended})
    if end_sessions:
        sessions.credentials_changed(agent.id)
    return agent, ended
