"""Tickets API for agents: list with filters and counts, create, change, comment.

Who sees which ticket is decided by ``services.permissions`` (outside the scope:
404); views only parse and call services.
"""

from __future__ import annotations

from flask import g
from flask import request

from meiqia.services import permissions
from meiqia.services import ticket_search
from meiqia.services import tickets
from meiqia.web import error_text
from meiqia.web import i18n
from meiqia.web.api import route


def _told(note: dict | None) -> dict | None:
    """What the agent is told about emailing a reply (``tickets.reply_email``), in
    the request's language; the English original stays as ``message_en``."""
    return error_text.localise(note, i18n.error_language()) if note else note


def _full(data: dict) -> dict:
    """A ticket as ``tickets.to_dict(full=True)`` gives it, its notes in the
    request's language."""
    if "reply_email" in data:
        data["reply_email"] = _told(data["reply_email"])
    return data


@route("/tickets", summary="Tickets in my scope, filtered, with counts per status",
       query=ticket_search.LIST_QUERY, tags=["tickets"])
def list_tickets() -> dict:
    """`mine=true` is "my tickets"; `assignee_id=none` the unassigned ones. A query
    parameter this operation does not take (a misspelt filter) is a 422 `invalid`
    naming it and listing the accepted ones (`lang` aside), never ignored."""
    filters = ticket_search.parse_filters(g.actor, request.args.to_dict())
    return ticket_search.search(g.actor, filters)


@route("/tickets", ("POST",), summary="Create a ticket (e.g. from a conversation)",
       body=tickets.AGENT_CREATE_SCHEMA, status=201, tags=["tickets"])
def create_ticket(body: dict) -> dict:
    """With `conversation_id`, the customer's contact and the transcript prefill it."""
    return _full(tickets.to_dict(tickets.create_by_agent(g.actor, body), full=True,
                                 viewer=g.actor))


@route("/tickets/<int:ticket_id>", summary="One ticket with comments, history, transcript",
       tags=["tickets"])
def get_ticket(ticket_id: int) -> dict:
    return _full(tickets.to_dict(permissions.get_ticket(g.actor, ticket_id), full=True,
                                 viewer=g.actor))


@route("/tickets/<int:ticket_id>", ("PATCH",),
       summary="Change status, priority, assignee, group, tags or subject",
       body=tickets.UPDATE_SCHEMA, tags=["tickets"])
def update_ticket(ticket_id: int, body: dict) -> dict:
    """Status moves open → pending → solved → closed; solved may reopen; closed is final."""
    return _full(tickets.to_dict(tickets.update(g.actor, ticket_id, body), full=True,
                                 viewer=g.actor))


@route("/tickets/<int:ticket_id>/comments", ("POST",),
       summary="Internal note or public reply", body=tickets.COMMENT_SCHEMA, status=201,
       tags=["tickets"])
def comment(ticket_id: int, body: dict) -> dict:
    """A public reply reaches the customer in the widget and, if he left an email and the
    team has an email ticket sink (its SMTP settings send it), by email. `email` says
    which (`will_email`, `reason`: `no_contact_email`, `no_email_sink`, `not_queued`;
    `message` in the request's language, `message_en` the English when translated);
    for an internal note it is null, since a note is never emailed."""
    row = tickets.comment(g.actor, ticket_id, body)
    return {"id": row.id, "visibility": row.visibility, "body": row.body,
            "email": _told(row.email)}


@route("/visitors/<int:visitor_id>/tickets", summary="A customer's recent tickets (sidebar)",
       tags=["tickets"])
def visitor_tickets(visitor_id: int) -> list:
    return tickets.recent_for_customer(g.actor, visitor_id)
