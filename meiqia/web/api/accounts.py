"""Accounts API: register, log in and out, agents, groups, API tokens, team."""

from __future__ import annotations

from typing import Any

from flask import g

from meiqia.models import Agent
from meiqia.models import ApiToken
from meiqia.models import Group
from meiqia.services import accounts
from meiqia.services import teams
from meiqia.web import security
from meiqia.web.api import json_body
from meiqia.web.api import route

LOGIN_SCHEMA = {
    "type": "object",
    "required": ["email", "password"],
    "additionalProperties": False,
    "properties": {
        "email": {"type": "string", "maxLength": 254},
        "password": {"type": "string", "maxLength": 200},
    },
}


def _session_payload(agent: Agent) -> dict[str, Any]:
    return {
        "agent": accounts.agent_to_dict(agent),
        "team": teams.team_to_dict(agent.team),
        "csrf_token": security.csrf_token(),
    }


@route(
    "/auth/register", ("POST",), summary="Register a team and its first admin",
    auth="none", body=accounts.REGISTER_SCHEMA, status=201, tags=["auth"],
    description="403 when registration is closed; 409 when the email has an account. "
    "Past the registrations allowed from this client (REGISTER_RATE_PER_CLIENT, accepted "
    "or refused alike), 429 `rate_limited` with `Retry-After` (docs/security.md §4).",
)
def register(body: dict) -> dict:
    agent = accounts.register_team(body, security.client_ip())
    security.login(agent)
    return _session_payload(agent)


@route(
    "/auth/login", ("POST",), summary="Log in with email and password",
    auth="none", body=LOGIN_SCHEMA, tags=["auth"],
    description="401 for a wrong email or password (the same answer for an unknown "
    "email). Past the attempts allowed from this client (per minute and per hour), or "
    "at one email from this client, 429 `rate_limited` with `Retry-After`: the seconds "
    "until the next attempt is let through (docs/security.md).",
)
def login(body: dict) -> dict:
    agent = accounts.authenticate(body["email"], body["password"], security.client_ip())
    security.login(agent)
    return _session_payload(agent)


@route("/auth/logout", ("POST",), summary="Log out (ends this session on the server)",
       tags=["auth"], tokens=None)
def logout() -> dict:
    security.logout()
    return {"ok": True}


@route("/auth/sessions/end-all", ("POST",), summary="Sign out everywhere",
       tags=["auth"], tokens=None,
       description="Ends every session of the agent, this one included: every browser "
       "signed in as him is asked to log in again. API tokens are not affected "
       "(revoke them under /tokens).")
def end_all_sessions() -> dict:
    from meiqia.services import sessions

    ended = sessions.end_all(g.actor.id)
    accounts.audit(g.actor, "sessions.end_all", "agent", g.actor.id, {"ended": ended},
                   ip=security.client_ip())
    security.logout()  # announces the change to his open sockets
    return {"ok": True, "ended": ended}


@route("/me", summary="The agent making the request, his team and CSRF token", tags=["auth"])
def me() -> dict:
    return _session_payload(g.actor)


@route("/agents", summary="Agents of the team")
def list_agents() -> list:
    query = Agent.select().where(Agent.team == g.actor.team).order_by(Agent.id)
    return [accounts.agent_to_dict(a, full=g.actor.is_admin) for a in query]


@route(
    "/agents", ("POST",), summary="Create an agent", auth="admin",
    body=accounts.AGENT_CREATE_SCHEMA, status=201,
    description="A name or nickname is unique in the team (either of an active agent's "
    "two, case ignored: @mentions find agents by them): 409 otherwise.",
)
def create_agent(body: dict) -> dict:
    return accounts.agent_to_dict(accounts.create_agent(g.actor, body))


@route("/agents/<int:agent_id>", summary="One agent")
def get_agent(agent_id: int) -> dict:
    agent = accounts.get_agent(g.actor, agent_id)
    return accounts.agent_to_dict(agent, full=g.actor.is_admin or agent.id == g.actor.id)


@route(
    "/agents/<int:agent_id>", ("PATCH",), summary="Change an agent (status, limit, scope…)",
    body=accounts.AGENT_UPDATE_SCHEMA,
)
def update_agent(agent_id: int, body: dict) -> dict:
    """Changing one's own password or email needs ``current_password`` and a
    signed-in session (API tokens are refused); a new password ends the agent's
    other sessions, and ``revoke_tokens: true`` revokes his API tokens too. A name
    or nickname another active agent of the team goes by is refused (409)."""
    if {"password", "email", "current_password", "revoke_tokens"} & set(body):
        security.require_session_for_credentials()
    agent = accounts.update_agent(g.actor, agent_id, body)
    if "password" in body and agent.id == g.actor.id:
        security.rotate_session(agent)
    return accounts.agent_to_dict(agent)


GROUP_OUT = {"type": "object", "properties": {"id": {"type": "integer"}, "name": {"type": "string"}}}


def _group(group: Group) -> dict:
    return {"id": group.id, "name": group.name}


@route("/groups", summary="Groups of the team", response={"type": "array", "items": GROUP_OUT})
def list_groups() -> list:
    return [_group(gr) for gr in Group.select().where(Group.team == g.actor.team).order_by(Group.name)]


@route(
    "/groups", ("POST",), summary="Create a group", auth="admin",
    body=accounts.GROUP_SCHEMA, response=GROUP_OUT, status=201,
)
def create_group(body: dict) -> dict:
    return _group(accounts.create_group(g.actor, body))


@route(
    "/groups/<int:group_id>", ("PATCH",), summary="Rename a group", auth="admin",
    body=accounts.GROUP_SCHEMA, response=GROUP_OUT,
)
def update_group(group_id: int, body: dict) -> dict:
    return _group(accounts.update_group(g.actor, group_id, body))


@route("/groups/<int:group_id>", ("DELETE",), summary="Delete a group", auth="admin")
def delete_group(group_id: int) -> dict:
    accounts.delete_group(g.actor, group_id)
    return {"ok": True}


def _token(row: ApiToken) -> dict:
    return {
        "id": row.id,
        "name": row.name,
        "prefix": row.prefix,
        "created_at": accounts.iso(row.created_at),
        "last_used_at": accounts.iso(row.last_used_at),
        "revoked": row.revoked_at is not None,
        "scope": row.scope,
        "expires_at": accounts.iso(row.expires_at),
    }


@route("/tokens", summary="My API tokens", tags=["auth"], tokens=None)
def list_tokens() -> list:
    return [_token(t) for t in ApiToken.select().where(ApiToken.agent == g.actor).order_by(ApiToken.id)]


@route(
    "/tokens", ("POST",), summary="Create an API token (shown once)",
    body=accounts.TOKEN_SCHEMA, status=201, tags=["auth"], tokens=None,
    description="Only a signed-in agent may: a token cannot mint tokens. ``scope`` "
    "(default read) limits what the token may do: read = GET routes only; "
    "conversations = also writes to conversations, messages, tickets, uploads, quick "
    "replies, history exports; admin = everything the agent may do. No token may "
    "manage tokens or sessions, or change a password or email.",
)
def create_token(body: dict) -> dict:
    row, token = accounts.create_token(g.actor, body)
    return {**_token(row), "token": token}


@route("/tokens/<int:token_id>", ("DELETE",), summary="Revoke an API token", tags=["auth"],
       tokens=None)
def revoke_token(token_id: int) -> dict:
    accounts.revoke_token(g.actor, token_id)
    return {"ok": True}


@route("/team", summary="The team and its settings", tags=["team"])
def get_team() -> dict:
    return teams.team_to_dict(g.actor.team, with_settings=True)


@route(
    "/team", ("PATCH",), summary="Change the team and its settings", auth="admin",
    body=teams.TEAM_UPDATE_SCHEMA, tags=["team"],
)
def update_team(body: dict) -> dict:
    return teams.team_to_dict(teams.update_team(g.actor, body), with_settings=True)


__all__ = ["json_body"]
