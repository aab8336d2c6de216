"""Agent sessions kept on the server, so they can be ended (issue 15, item 3).

The session cookie is signed but lives 31 days in the browser; what it may do is
decided here, on every request: the cookie names a random session id whose
SHA-256 is a row of ``agent_session``. Ending a row (log out, password change,
deactivation, "sign out everywhere") refuses the cookie on the next request in
every process, since all processes read the same table. The cookie carries
nothing derived from the password.
"""

from __future__ import annotations

import datetime
import hashlib
import secrets

from flask import current_app

from meiqia.models import Agent
from meiqia.models import AgentSession
from meiqia.models.base import utcnow

#: A session's last_seen_at is written at most this often (not on every request).
TOUCH_EVERY = datetime.timedelta(minutes=5)


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def start(agent: Agent, ip: str = "", user_agent: str = "") -> str:
    """Record a new session of ``agent``; return its id for the cookie (only now)."""
    key = secrets.token_urlsafe(32)
    AgentSession.create(agent=agent, key_hash=_hash(key), ip=ip[:64],
                        user_agent=user_agent[:255])
    return key


def _lifetime() -> datetime.timedelta:
    value = current_app.config.get("PERMANENT_SESSION_LIFETIME", datetime.timedelta(days=31))
    return value if isinstance(value, datetime.timedelta) else datetime.timedelta(seconds=value)


def agent_of(key: str | None) -> tuple[Agent, AgentSession] | None:
    """The active agent of a live session id, or None (ended, expired, unknown)."""
    if not key or not isinstance(key, str):
        return None
    row = (
        AgentSession.select(AgentSession, Agent)
        .join(Agent)
        .where(AgentSession.key_hash == _hash(key), AgentSession.ended_at.is_null(),
               Agent.active == True)  # noqa: E712 - peewee expression
        .first()
    )
    now = utcnow()
    if row is None or row.created_at + _lifetime() < now:
        return None
    if now - row.last_seen_at > TOUCH_EVERY:
        AgentSession.update(last_seen_at=now).where(AgentSession.id == row.id).execute()
    return row.agent, row


def end(key: str | None) -> None:
    """End one session (log out)."""
    if key and isinstance(key, str):
        AgentSession.update(ended_at=utcnow()).where(
            AgentSession.key_hash == _hash(key), AgentSession.ended_at.is_null()).execute()


def end_all(agent_id: int, keep: str | None = None) -> int:
    """End every session of an agent but ``keep`` (the one asking); return how many."""
    query = AgentSession.update(ended_at=utcnow()).where(
        AgentSession.agent == agent_id, AgentSession.ended_at.is_null())
    if keep:
        query = query.where(AgentSession.key_hash != _hash(keep))
    return query.execute()


def live_count(agent_id: int) -> int:
    """How many sessions of the agent are live (the account page shows it)."""
    since = utcnow() - _lifetime()
    return AgentSession.select().where(
        AgentSession.agent == agent_id, AgentSession.ended_at.is_null(),
        AgentSession.created_at > since).count()


def credentials_changed(agent_id: int) -> None:
    """Tell the agent's open sockets, in every process, that a session or token of
    his has ended (logout, "sign out everywhere", password change, deactivation,
    token revoked): each checks what it was opened with and closes if that ended.
    Call it after the change is committed, so the socket's check sees it."""
    from meiqia.services.events import hub
    from meiqia.services.messages import agent_topic

    try:
        hub().publish(agent_topic(agent_id), {"type": CREDENTIALS_CHANGED, "data": {}})
    except Exception:  # noqa: BLE001 - the sockets' periodic check still ends them
        import logging

        logging.getLogger(__name__).warning("sessions: could not announce the change",
                                            exc_info=True)


#: The hub event of ``credentials_changed`` (internal: never sent to a client).
CREDENTIALS_CHANGED = "credentials.changed"

