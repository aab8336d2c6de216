"""The visitor's side of tickets: the leave-a-message form, leaving one, reading replies.

A visitor only ever sees his own tickets and their public replies; another
visitor's ticket is 404. Which of the six scenarios a ticket comes from is
decided by the server, never by the widget.
"""

from __future__ import annotations

from flask import g
from flask import request

from meiqia.services import tickets
from meiqia.services import uploads
from meiqia.web.api import route
from meiqia.web.api.uploads import ATTACHMENT
from meiqia.web.api.uploads import KIND_QUERY
from meiqia.web.api.uploads import UPLOAD_FORM
from meiqia.web.api.widget import own_conversation

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


@route("/widget/tickets/<int:ticket_id>/read", ("POST",),
       summary="Mark my ticket's public replies read up to a reply id", auth="visitor",
       tags=TAGS, body={"type": "object", "required": ["up_to"], "additionalProperties": False,
                        "properties": {"up_to": {"type": "integer", "minimum": 0}}})
def widget_read(ticket_id: int, body: dict) -> dict:
    """Replies after `up_to` stay `unread` (one may have arrived after the widget drew)."""
    return tickets.mark_seen(g.visitor, ticket_id, body["up_to"])


@route("/widget/conversations/<int:conversation_id>/ticket-uploads", ("POST",),
       summary="Upload an attachment for the leave-a-message form", auth="visitor",
       status=201, tags=TAGS + ["uploads"], form=UPLOAD_FORM, query=KIND_QUERY,
       response=ATTACHMENT,
       description="As the conversation upload, also after the conversation ended (the "
       "form is offered then). Send the keys as `attachments` of `POST /widget/tickets`: at "
       "most `max_attachments`, together at most `max_attachment_bytes` (413 otherwise).")
def widget_ticket_upload(conversation_id: int) -> dict:
    conversation = own_conversation(conversation_id)
    kind = request.args.get("kind")
    uploads.check_declared_size(request.content_length, kind)
    attachment = uploads.receive(
        request.stream, request.content_type, request.content_length, conversation,
        "visitor", g.visitor.id, kind=kind, after_end=True)
    return uploads.public_dict(attachment)
