"""Accounts: registering a team, agents and groups, logins, API tokens.

``check_*`` functions validate untrusted input; ``do_*``-style functions write in
one transaction, so a refused request leaves nothing half-created.
"""

from __future__ import annotations

import datetime
import hashlib
import re
import secrets
import unicodedata
from typing import Any

from flask import current_app
from werkzeug.security import check_password_hash
from werkzeug.security import generate_password_hash

from meiqia.db import database
from meiqia.models import Agent
from meiqia.models import AgentGroup
from meiqia.models import ApiToken
from meiqia.models import AuditLog
from meiqia.models import ConversationRule
from meiqia.models import Group
from meiqia.models import PasswordReset
from meiqia.models import ScopeGrant
from meiqia.models import Team
from meiqia.models.accounts import ROLES
from meiqia.models.accounts import SCOPES
from meiqia.models.accounts import STATUSES
from meiqia.models.accounts import TOKEN_SCOPES
from meiqia.models.base import utcnow
from meiqia.services import presence
from meiqia.services.dates import check_timezone
from meiqia.services.errors import Conflict
from meiqia.services.errors import Forbidden
from meiqia.services.errors import NotFound
from meiqia.services.errors import Unauthorized
from meiqia.services.errors import ValidationError
from meiqia.services.names import INVISIBLE
from meiqia.services.names import extends
from meiqia.services.names import name_key
from meiqia.services.validation import check

#: Passwords people pick first; refused whatever their length.
COMMON_PASSWORDS = {
    "password", "password1", "12345678", "123456789", "1234567890", "qwerty123",
    "11111111", "88888888", "iloveyou", "admin123", "abc12345", "a1234567",
    "woaini1314", "qwertyuiop", "00000000", "meiqia123",
}

NAME = {"type": "string", "minLength": 1, "maxLength": 80}
EMAIL = {"type": "string", "format": "email", "maxLength": 254, "minLength": 3}
PASSWORD = {"type": "string", "maxLength": 200}

REGISTER_SCHEMA = {
    "type": "object",
    "required": ["team_name", "name", "email", "password"],
    "additionalProperties": False,
    "properties": {
        "team_name": {"type": "string", "minLength": 1, "maxLength": 120},
        "name": NAME,
        "email": EMAIL,
        "password": PASSWORD,
        "timezone": {"type": "string", "maxLength": 64},
        "language": {"type": "string", "enum": ["zh-CN", "en"]},
    },
}

AGENT_FIELDS = {
    "name": NAME,
    "nickname": {"type": "string", "maxLength": 80},
    "email": EMAIL,
    "password": PASSWORD,
    "role": {"type": "string", "enum": list(ROLES)},
    "scope": {"type": "string", "enum": list(SCOPES)},
    "scope_agents": {"type": "array", "items": {"type": "integer"}, "maxItems": 500},
    "scope_groups": {"type": "array", "items": {"type": "integer"}, "maxItems": 500},
    "groups": {"type": "array", "items": {"type": "integer"}, "maxItems": 100},
    "max_concurrent": {"type": "integer", "minimum": 0, "maximum": 1000},
    "status": {"type": "string", "enum": list(STATUSES)},
    "active": {"type": "boolean"},
}
AGENT_CREATE_SCHEMA = {
    "type": "object",
    "required": ["name", "email", "password"],
    "additionalProperties": False,
    "properties": AGENT_FIELDS,
}
AGENT_UPDATE_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        **AGENT_FIELDS,
        #: Required to change one's own password or email.
        "current_password": PASSWORD,
        #: With a password change: revoke every API token of the agent too.
        "revoke_tokens": {"type": "boolean"},
    },
}
GROUP_SCHEMA = {
    "type": "object",
    "required": ["name"],
    "additionalProperties": False,
    "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 80}},
}
TOKEN_SCHEMA = {
    "type": "object",
    "required": ["name"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 80},
        "scope": {"type": "string", "enum": list(TOKEN_SCOPES),
                  "description": "read (default), conversations or admin: see docs/security.md"},
        "expires_in_days": {"type": ["integer", "null"], "minimum": 1, "maximum": 3650,
                            "description": "days until the token stops working; null: never"},
    },
}


def check_password(password: str, field: str = "password") -> str:
    """Refuse weak passwords with a message saying why."""
    minimum = current_app.config["PASSWORD_MIN_LENGTH"] if current_app else 8
    if len(password) < minimum:
        raise ValidationError(f"{field}: at least {minimum} characters", field)
    classes = sum(
        bool(re.search(pattern, password))
        for pattern in (r"[A-Za-z]", r"\d", r"[^A-Za-z\d]")
    )
    if classes < 2:
        raise ValidationError(
            f"{field}: mix at least two of letters, digits and symbols", field
        )
    if password.lower() in COMMON_PASSWORDS:
        raise ValidationError(f"{field}: this password is too common", field)
    return password


def _normal_email(email: str) -> str:
    return email.strip().lower()


def _check_email_free(email: str, except_id: int | None = None) -> None:
    query = Agent.select().where(Agent.email == email)
    if except_id is not None:
        query = query.where(Agent.id != except_id)
    if query.exists():
        raise Conflict("email: an account with this email already exists", "email")


def _check_names_free(team_id: int, names: dict[str, str], except_id: int | None = None
                      ) -> None:
    """Refuse a name or nickname another active agent of the team already goes by
    (either of his two), as ``names.name_key`` folds them: case, full-width forms
    and spaces ignored (``ＡｇｅｎｔＴｗｏ``, ``Agent Two`` and ``agenttwo`` are one name).

    @mentions find agents by these names, with the same fold
    (``messages.mentioned_agents``): an agent who renamed himself to a colleague's
    name, or its full-width form, received that colleague's mentions, and with them
    conversations outside his scope (docs-only attackers found both).
    ``names``: field → the new value, as stored."""
    wanted = {field: value for field, value in names.items() if value}
    if not wanted:
        return
    query = Agent.select(Agent.name, Agent.nickname).where(
        Agent.team == team_id, Agent.active == True)  # noqa: E712 - peewee expression
    if except_id is not None:
        query = query.where(Agent.id != except_id)
    taken = [n for row in query.tuples() for n in row if n and n.strip()]
    taken_keys = {name_key(n) for n in taken}
    for field, value in wanted.items():
        if any(unicodedata.category(c) in INVISIBLE for c in value):
            raise ValidationError(f"{field}: must not contain invisible characters", field)
        if name_key(value) in taken_keys:
            raise Conflict(f"{field}: another agent of the team already goes by this name",
                           field)
        if any(extends(value, other) for other in taken):
            raise Conflict(f"{field}: this name begins with another agent's name, so an "
                           "@mention could not tell the two apart", field)


def registration_open() -> bool:
    """The first account may always register; later teams only if configured."""
    return not Team.select().exists() or bool(
        current_app.config.get("OPEN_REGISTRATION")
    )


def register_team(data: dict[str, Any], ip: str | None = None) -> Agent:
    """Create a team and its first admin in one transaction. ``ip``: the client
    of a web registration, throttled (``login_throttle.registration``); the CLI
    passes none."""
    check(data, REGISTER_SCHEMA)
    if not registration_open():
        raise Forbidden("registration is closed: ask an admin to create your account")
    if ip is not None:
        from meiqia.services import login_throttle

        login_throttle.registration(ip)
    email = _normal_email(data["email"])
    check_password(data["password"])
    if data.get("timezone"):
        check_timezone(data["timezone"])
    _check_email_free(email)
    with database.atomic():
        team = Team.create(
            name=data["team_name"].strip(),
            timezone=data.get("timezone") or current_app.config["TIMEZONE"],
            language=data.get("language") or current_app.config["LANGUAGE"],
        )
        ConversationRule.create(team=team, grades=DEFAULT_GRADES)
        agent = Agent.create(
            team=team,
            email=email,
            name=data["name"].strip(),
            password_hash=generate_password_hash(data["password"]),
            role="admin",
            scope="all",
        )
        audit(agent, "team.register", "team", team.id)
    return agent


#: Grades by message count until an admin sets the conversation rules.
DEFAULT_GRADES = [
    {"grade": "A", "min_messages": 20},
    {"grade": "B", "min_messages": 10},
    {"grade": "C", "min_messages": 3},
    {"grade": "D", "min_messages": 0},
]


def require_admin(actor: Agent) -> None:
    if not actor.is_admin:
        raise Forbidden("only admins may do this")


def _team_ids(model: Any, team: Team, ids: list[int], field: str) -> list[int]:
    ids = sorted(set(ids))
    found = {row.id for row in model.select(model.id).where(model.team == team, model.id.in_(ids))}
    missing = [i for i in ids if i not in found]
    if missing:
        raise ValidationError(f"{field}: no such id in this team: {missing[0]}", field)
    return ids


def create_agent(actor: Agent, data: dict[str, Any]) -> Agent:
    """An admin creates an agent of his team."""
    require_admin(actor)
    check(data, AGENT_CREATE_SCHEMA)
    email = _normal_email(data["email"])
    check_password(data["password"])
    _check_email_free(email)
    _check_names_free(actor.team_id, {"name": data["name"].strip(),
                                      "nickname": data.get("nickname", "").strip()})
    group_ids = _team_ids(Group, actor.team, data.get("groups", []), "groups")
    with database.atomic():
        agent = Agent.create(
            team=actor.team,
            email=email,
            name=data["name"].strip(),
            nickname=data.get("nickname", "").strip(),
            password_hash=generate_password_hash(data["password"]),
            role=data.get("role", "agent"),
            scope=data.get("scope", "self"),
            max_concurrent=data.get("max_concurrent", 5),
            status=data.get("status", "offline"),
        )
        for gid in group_ids:
            AgentGroup.create(agent=agent, group=gid)
        _set_grants(actor, agent, data)
        audit(actor, "agent.create", "agent", agent.id, {"email": email})
    return agent


def _set_grants(actor: Agent, agent: Agent, data: dict[str, Any]) -> None:
    if "scope_agents" not in data and "scope_groups" not in data:
        return
    agents = _team_ids(Agent, actor.team, data.get("scope_agents", []), "scope_agents")
    groups = _team_ids(Group, actor.team, data.get("scope_groups", []), "scope_groups")
    ScopeGrant.delete().where(ScopeGrant.agent == agent).execute()
    for aid in agents:
        ScopeGrant.create(agent=agent, target_agent=aid)
    for gid in groups:
        ScopeGrant.create(agent=agent, target_group=gid)


def get_agent(actor: Agent, agent_id: int) -> Agent:
    agent = Agent.get_or_none(Agent.id == agent_id, Agent.team == actor.team)
    if agent is None:
        raise NotFound("no such agent")
    return agent


def _keep_an_admin(agent: Agent, data: dict[str, Any]) -> None:
    """The team's last active admin stays one: neither demoted (``role``) nor
    deactivated (``active``), by himself or anyone; without him nobody could
    administer the team."""
    if agent.role != "admin" or not agent.active:
        return
    for field, losing in (("role", "role" in data and data["role"] != "admin"),
                          ("active", data.get("active") is False)):
        if not losing:
            continue
        others = Agent.select().where(
            Agent.team == agent.team_id, Agent.role == "admin", Agent.id != agent.id,
            Agent.active == True,  # noqa: E712 - peewee expression
        )
        if not others.exists():
            raise ValidationError(f"{field}: the team needs at least one admin", field)


def update_agent(actor: Agent, agent_id: int, data: dict[str, Any]) -> Agent:
    """Admins change anything; an agent may change his own name, password, status.

    Changing one's own password or email needs ``current_password``. A new
    password ends every session of the agent (the web layer gives the asking
    browser a fresh one) and, with ``revoke_tokens``, his API tokens;
    deactivation ends all his sessions and his tokens stop working.
    """
    check(data, AGENT_UPDATE_SCHEMA)
    agent = get_agent(actor, agent_id)
    data = dict(data)
    current = data.pop("current_password", None)
    revoke_tokens = data.pop("revoke_tokens", False)
    own = {"name", "nickname", "password", "status"}
    if not actor.is_admin and (agent.id != actor.id or set(data) - own):
        raise Forbidden("only admins may change this")
    if agent.id == actor.id and ("password" in data or "email" in data):
        verify_password(agent, current)
    if "password" in data:
        check_password(data["password"])
    if "email" in data:
        data["email"] = _normal_email(data["email"])
        _check_email_free(data["email"], except_id=agent.id)
    _check_names_free(agent.team_id, {k: data[k].strip() for k in ("name", "nickname")
                                      if isinstance(data.get(k), str)}, except_id=agent.id)
    _keep_an_admin(agent, data)
    group_ids = (
        _team_ids(Group, actor.team, data["groups"], "groups") if "groups" in data else None
    )
    old_limit, old_status = agent.max_concurrent, agent.status
    with database.atomic():
        for key in ("name", "nickname", "email", "role", "scope", "max_concurrent",
                    "status", "active"):
            if key in data:
                value = data[key].strip() if isinstance(data[key], str) and key in {"name", "nickname"} else data[key]
                setattr(agent, key, value)
        if "password" in data:
            agent.password_hash = generate_password_hash(data["password"])
        agent.save()
        if "password" in data or data.get("active") is False:
            from meiqia.services import sessions

            sessions.end_all(agent.id)
            revoke_reset_links(agent.id)
        if "password" in data and revoke_tokens:
            revoke_all_tokens(agent)
        if group_ids is not None:
            AgentGroup.delete().where(AgentGroup.agent == agent).execute()
            for gid in group_ids:
                AgentGroup.create(agent=agent, group=gid)
        _set_grants(actor, agent, data)
        audit(actor, "agent.update", "agent", agent.id,
              {**{k: v for k, v in data.items() if k != "password"},
               **({"password": "changed", "revoke_tokens": revoke_tokens}
                  if "password" in data else {})})
    if "password" in data or data.get("active") is False or revoke_tokens:
        from meiqia.services import sessions

        sessions.credentials_changed(agent.id)  # committed: his sockets check now
    if agent.max_concurrent > old_limit or (agent.status == "online" and old_status != "online"):
        _capacity_freed(agent)
    if old_status == "online" and (agent.status != "online" or not agent.active):
        # He may have been the last one: the queue must not wait for nobody.
        from meiqia.services import routing

        routing.tell_if_nobody_left(agent.team_id)
    return agent


def _capacity_freed(agent: Agent) -> None:
    """Tell routing a place may have freed (limit raised, agent came online)."""
    from meiqia.services import events

    events.capacity_changed(agent.team_id)


def create_group(actor: Agent, data: dict[str, Any]) -> Group:
    require_admin(actor)
    check(data, GROUP_SCHEMA)
    name = data["name"].strip()
    if Group.select().where(Group.team == actor.team, Group.name == name).exists():
        raise Conflict("name: a group with this name exists", "name")
    group = Group.create(team=actor.team, name=name)
    audit(actor, "group.create", "group", group.id, {"name": name})
    return group


def get_group(actor: Agent, group_id: int) -> Group:
    group = Group.get_or_none(Group.id == group_id, Group.team == actor.team)
    if group is None:
        raise NotFound("no such group")
    return group


def update_group(actor: Agent, group_id: int, data: dict[str, Any]) -> Group:
    require_admin(actor)
    check(data, GROUP_SCHEMA)
    group = get_group(actor, group_id)
    name = data["name"].strip()
    clash = Group.select().where(
        Group.team == actor.team, Group.name == name, Group.id != group.id
    )
    if clash.exists():
        raise Conflict("name: a group with this name exists", "name")
    group.name = name
    group.save()
    return group


def delete_group(actor: Agent, group_id: int) -> None:
    require_admin(actor)
    group = get_group(actor, group_id)
    with database.atomic():
        group.delete_instance()
        audit(actor, "group.delete", "group", group_id)


def group_ids_of(agent: Agent) -> list[int]:
    return [m.group_id for m in AgentGroup.select().where(AgentGroup.agent == agent)]


def agent_to_dict(agent: Agent, full: bool = True) -> dict[str, Any]:
    """An agent as colleagues see him; ``full`` adds what admins manage."""
    data = {
        "id": agent.id,
        "name": agent.name,
        "nickname": agent.nickname,
        "display_name": agent.display_name,
        "status": agent.status,
        # What colleagues see (the transfer list): online only with a workspace open.
        "presence": presence.agent_presence(agent),
        "role": agent.role,
    }
    if full:
        grants = list(ScopeGrant.select().where(ScopeGrant.agent == agent))
        data.update(
            email=agent.email,
            scope=agent.scope,
            scope_agents=[g.target_agent_id for g in grants if g.target_agent_id],
            scope_groups=[g.target_group_id for g in grants if g.target_group_id],
            groups=group_ids_of(agent),
            max_concurrent=agent.max_concurrent,
            active=agent.active,
            created_at=iso(agent.created_at),
        )
    return data


def iso(value: datetime.datetime | None) -> str | None:
    """A stored (naive UTC) time as ISO 8601 with its Z."""
    return value.isoformat(timespec="seconds") + "Z" if value else None


_DUMMY_HASH: list[str] = []


def _dummy_hash() -> str:
    """A hash to check unknown emails against, made like real ones (same cost)."""
    if not _DUMMY_HASH:
        _DUMMY_HASH.append(generate_password_hash(secrets.token_urlsafe(16)))
    return _DUMMY_HASH[0]


def authenticate(email: str, password: str, ip: str = "") -> Agent:
    """Check a login, answering alike for unknown and known emails.

    Throttled by client and by email+client (``login_throttle``), never by
    account alone, so nobody can lock another agent out. An unknown email or a
    deactivated account checks the password against a dummy hash, so the answer
    takes as long as for a known one, and says the same words.
    """
    from meiqia.services import login_throttle

    if not isinstance(email, str) or not isinstance(password, str):
        raise ValidationError("email and password are required")
    normal = _normal_email(email)
    login_throttle.attempt(normal, ip)
    agent = Agent.get_or_none(Agent.email == normal)
    known = agent is not None and agent.active
    right = check_password_hash(agent.password_hash if known else _dummy_hash(), password)
    if not (known and right):
        # Written for unknown emails too: the same work either way.
        audit(agent if known else None, "login.failed", "agent", agent.id if known else "",
              ip=ip)
        raise Unauthorized("wrong email or password")
    login_throttle.succeeded(normal, ip)
    Agent.update(last_seen_at=utcnow()).where(Agent.id == agent.id).execute()
    return agent


def verify_password(agent: Agent, password: Any) -> None:
    """Refuse (403) unless ``password`` is the agent's current password."""
    if not isinstance(password, str) or not check_password_hash(agent.password_hash, password):
        raise Forbidden("current_password: the current password is wrong", "current_password")


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(actor: Agent, data: dict[str, Any]) -> tuple[ApiToken, str]:
    """Create an API token for the actor; the plain token is returned only now."""
    check(data, TOKEN_SCHEMA)
    expires_at = None
    if data.get("expires_in_days") is not None:
        expires_at = utcnow() + datetime.timedelta(days=data["expires_in_days"])
    token = "mq_" + secrets.token_urlsafe(32)
    row = ApiToken.create(
        agent=actor, name=data["name"].strip(), token_hash=_hash_token(token),
        prefix=token[:10], scope=data.get("scope", "read"), expires_at=expires_at,
    )
    audit(actor, "token.create", "api_token", row.id,
          {"scope": row.scope, "expires_at": iso(expires_at)})
    return row, token


def revoke_token(actor: Agent, token_id: int) -> None:
    row = ApiToken.get_or_none(ApiToken.id == token_id, ApiToken.agent == actor)
    if row is None:
        raise NotFound("no such token")
    row.revoked_at = utcnow()
    row.save()
    audit(actor, "token.revoke", "api_token", row.id)
    from meiqia.services import sessions

    sessions.credentials_changed(actor.id)


def revoke_reset_links(agent_id: int) -> int:
    """Revoke the agent's unused password-reset links (docs/security.md §8): a
    password set any way (his own change, an admin's, the console, another link)
    and a deactivation. The one place that does it; returns how many."""
    return PasswordReset.update(revoked_at=utcnow()).where(
        PasswordReset.agent == agent_id, PasswordReset.used_at.is_null(),
        PasswordReset.revoked_at.is_null()).execute()


def revoke_all_tokens(agent: Agent) -> int:
    """Revoke every live token of an agent; return how many."""
    return ApiToken.update(revoked_at=utcnow()).where(
        ApiToken.agent == agent, ApiToken.revoked_at.is_null()).execute()


def agent_for_token(token: str) -> Agent | None:
    """The active agent of a live (not revoked, not expired) token, or None.

    The agent carries ``api_token`` (the row), so the route layer can check the
    token's scope (``meiqia.web.api.token_allows``).
    """
    if not isinstance(token, str) or not token:
        return None
    row = (
        ApiToken.select(ApiToken, Agent)
        .join(Agent)
        .where(ApiToken.token_hash == _hash_token(token), ApiToken.revoked_at.is_null())
        .first()
    )
    now = utcnow()
    if row is None or not row.agent.active or (row.expires_at and row.expires_at <= now):
        return None
    ApiToken.update(last_used_at=now).where(ApiToken.id == row.id).execute()
    agent = row.agent
    agent.api_token = row
    return agent


def audit(
    actor: Agent | None,
    action: str,
    target_type: str = "",
    target_id: Any = "",
    details: dict | None = None,
    ip: str = "",
) -> None:
    AuditLog.create(
        team=actor.team_id if actor else None,
        actor=actor,
        action=action,
        target_type=target_type,
        target_id=str(target_id),
        details=details or {},
        ip=ip,
    )
