"""The JSON a ticket sink receives: the ticket and its public side only.

Internal notes never leave the system: not in webhooks, not in emails.
"""

from __future__ import annotations

from typing import Any

from meiqia.models import Ticket
from meiqia.models import TicketComment
from meiqia.services.accounts import iso


def payload_for(ticket: Ticket, event: str, changes: dict[str, Any]) -> dict[str, Any]:
    from meiqia.services.tickets import transcript_text

    transcript = transcript_text(ticket.conversation) if ticket.conversation_id else ""
    return {
        "event": f"ticket.{event}",
        "ticket": {
            "id": ticket.id, "team_id": ticket.team_id, "source": ticket.source,
            "status": ticket.status, "priority": ticket.priority, "subject": ticket.subject,
            "content": ticket.content, "tags": ticket.tags or [],
            "contact": {"name": ticket.contact_name, "phone": ticket.contact_phone,
                        "email": ticket.contact_email},
            "assignee_id": ticket.assignee_id, "conversation_id": ticket.conversation_id,
            "created_at": iso(ticket.created_at), "updated_at": iso(ticket.updated_at),
            "public_replies": [c.body for c in TicketComment.select().where(
                TicketComment.ticket == ticket.id, TicketComment.visibility == "public"
            ).order_by(TicketComment.id)],
            "transcript": transcript,
        },
        "changes": changes,
    }
