"""Password reset links (issue 17, item 3): an admin makes one, the agent uses it.

The service (``services/password_reset.py``) says what a link may do; this area
only builds the URL the admin hands over (``/reset-password/<secret>``, the page
of ``web/password_reset_pages.py``) and takes the new password from scripts.
"""

from __future__ import annotations

from flask import g
from flask import url_for

from meiqia.services import password_reset
from meiqia.services.accounts import iso
from meiqia.web import security
from meiqia.web.api import route

LINK_OUT = {
    "type": "object",
    "properties": {
        "url": {"type": "string", "description": "the one-time link: shown now, never again"},
        "expires_at": {"type": "string", "format": "date-time"},
    },
}


@route(
    "/agents/<int:agent_id>/password-reset", ("POST",), auth="admin", tokens=None,
    summary="Make a one-time password reset link for an agent", status=201,
    response=LINK_OUT, tags=["auth"],
    description="For an agent who forgot his password. The link works once, for "
    "PASSWORD_RESET_HOURS (24 by default); a newer link for the same agent revokes "
    "the older ones. Only its SHA-256 is stored, so the URL is in this answer only. "
    "Using it signs the agent out everywhere. Needs a signed-in admin (no API token).",
)
def create_link(agent_id: int) -> dict:
    row, token = password_reset.create_link(g.actor, agent_id, ip=security.client_ip())
    return {"url": url_for("password_reset_pages.reset", token=token, _external=True),
            "expires_at": iso(row.expires_at)}


@route(
    "/auth/password-reset", ("POST",), auth="none", body=password_reset.USE_SCHEMA,
    summary="Set a new password with a one-time reset link", tags=["auth"],
    description="``token`` is the last part of the link's path. The password follows "
    "the same rules as everywhere; a refused one leaves the link usable. On success "
    "the link is spent and every session of the agent ends; 404 for a link that is "
    "unknown, used, revoked or expired.",
)
def use_link(body: dict) -> dict:
    agent = password_reset.use_link(body["token"], body["password"], ip=security.client_ip())
    return {"ok": True, "email": agent.email}
