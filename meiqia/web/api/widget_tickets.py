"""The visitor's side of tickets: the leave-a-message form, leaving one, reading replies.

A visitor only ever sees his own tickets and their public replies; another
visitor's ticket is 404. Which of the six scenarios a ticket comes from is
decided by the server, never by the widget.
"""

from __future__ import annotations

from flask import g

from meiqia.services import tickets
from meiqia.web.api import route

TAGS = ["widget"]


@route("/widget/ticket-form", summary="The leave-a-message form of the visitor's team",
       auth="visitor", tags=TAGS)
def ticket_form() -> dict:
    return tickets.form_for(g.visitor)


@route("/widget/tickets", ("POST",), summary="Leave a message (becomes a ticket)",
       auth="visitor", body=tickets.WIDGET_SCHEMA, status=201, tags=TAGS)
def widget_create(body: dict) -> dict:
    """`conversation_id` (optional) is the visitor's conversation the message belongs to;
    `attachments` are keys of the visitor's own uploads."""
    ticket = tickets.create_from_widget(g.visitor, body)
    return {**tickets.visitor_dict(ticket), "source": ticket.source}


@route("/widget/tickets", summary="My tickets and their public replies", auth="visitor",
       tags=TAGS)
def widget_list() -> list:
    return tickets.visitor_tickets(g.visitor)


@route("/widget/tickets/<int:ticket_id>", summary="One of my tickets with its public replies",
       auth="visitor", tags=TAGS)
def widget_get(ticket_id: int) -> dict:
    return tickets.visitor_ticket(g.visitor, ticket_id)
