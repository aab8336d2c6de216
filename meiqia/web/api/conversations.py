"""Agent-facing conversations API: lists, messages, replies, end, transfer.

Every route loads its conversation through ``permissions.get_conversation``, so
anything outside the agent's scope answers 404.
"""

from __future__ import annotations

from flask import g
from flask import request

from meiqia.services import conversations
from meiqia.services import messages
from meiqia.services import permissions
from meiqia.services import visitors
from meiqia.web.api import AFTER_QUERY
from meiqia.web.api import query_int
from meiqia.web.api import route

#: What a list row's ``last_message`` holds (conversations.summary_row).
LAST_MESSAGE_DOC = ("``last_message`` is the start (80 characters) of the last message as the "
                   "workspace chat shows it, in the reader's language (``X-Meiqia-Lang``, else "
                   "his setting, else Accept-Language, else English: the rule of error "
                   "messages): a system event (handover, transfer, end, leave-a-message...) "
                   "is written for the agent, not as the visitor was told it "
                   "(\"Bob took over\" / \"Bob 开始接待\", not \"Bob 为您服务\"); a rating "
                   "invitation says it was sent; text, images and files are their text or name.")


@route("/conversations", summary="Mine, colleagues' (in scope), @me and the queue",
       tags=["conversations"], description=LAST_MESSAGE_DOC)
def lists() -> dict:
    return conversations.lists(g.actor)


@route("/conversations/<int:conversation_id>", summary="One conversation with the customer card",
       tags=["conversations"], description=LAST_MESSAGE_DOC)
def get_one(conversation_id: int) -> dict:
    conversation = permissions.get_conversation(g.actor, conversation_id)
    return {**conversations.summary_row(conversation, g.actor),
            "state": conversations.state(conversation),
            "summary": conversation.summary,
            # The visitor's words with his rating (agents only: the lists and the
            # widget's state carry the rating alone).
            "rating_comment": conversation.rating_comment or "",
            "customer": visitors.card(conversation.visitor)}


@route("/conversations/<int:conversation_id>/messages", summary="Messages after an id or a position",
       tags=["conversations"],
       query=AFTER_QUERY)
def list_messages(conversation_id: int) -> dict:
    conversation = permissions.get_conversation(g.actor, conversation_id)
    after_seq = query_int("after_seq", 0) if "after_seq" in request.args else None
    found = messages.history(conversation, after=query_int("after", 0), for_visitor=False,
                             after_seq=after_seq)
    can_read = messages.reports_reads(conversation)
    return {"messages": [messages.agent_view(m, can_read) for m in found]}


@route("/conversations/<int:conversation_id>/messages", ("POST",),
       summary="Reply, reply anonymously or add an internal note",
       body=conversations.SEND_SCHEMA, status=201, tags=["conversations"])
def send(conversation_id: int, body: dict) -> dict:
    message, created = conversations.agent_send(g.actor, conversation_id, body)
    return {"message": messages.agent_view(message), "duplicate": not created}


@route("/conversations/<int:conversation_id>/end", ("POST",), summary="End the conversation",
       tags=["conversations"])
def end(conversation_id: int) -> dict:
    return conversations.state(conversations.end_conversation(g.actor, conversation_id))


@route("/conversations/<int:conversation_id>/transfer", ("POST",),
       summary="Transfer to a colleague or a group", body=conversations.TRANSFER_SCHEMA,
       tags=["conversations"])
def transfer(conversation_id: int, body: dict) -> dict:
    """`agent_id`: a colleague who is there (status `online` or `invisible`, with a
    workspace open: `presence` `online` or `invisible` in `GET /api/v1/agents`), else 409
    (field `agent_id`, "… is not online: …"): a live chat is never handed to an agent
    who is offline or away. Taking a chat oneself (`agent_id` the caller's own) needs
    neither. `group_id`: queued for the group's agents; when none of them is online the
    visitor is offered to leave a message by the next presence sweep (docs/protocol.md,
    "Nobody left"). Only `group_id` changes the chat's group: a transfer to an agent,
    inside the group or not, keeps it. An agent who sees the chat only because he was
    @mentioned in it gets 403 `forbidden` (docs/security.md §1)."""
    return conversations.state(conversations.transfer(g.actor, conversation_id, body))


@route("/conversations/<int:conversation_id>/rating-invite", ("POST",),
       summary="Invite the visitor to rate", status=201, tags=["conversations"])
def rating_invite(conversation_id: int) -> dict:
    return messages.agent_view(conversations.invite_rating(g.actor, conversation_id))


@route("/conversations/<int:conversation_id>/summary", ("PATCH",),
       summary="Summary (小结) and tags", body=conversations.SUMMARY_SCHEMA,
       tags=["conversations"])
def summary(conversation_id: int, body: dict) -> dict:
    conversation = conversations.set_summary(g.actor, conversation_id, body)
    return {"summary": conversation.summary, "tags": conversation.tags}


@route("/conversations/<int:conversation_id>/suggestions",
       summary="The bot's suggestions for the visitor's last message, while it is unanswered",
       tags=["conversations"])
def last_suggestions(conversation_id: int) -> dict:
    from meiqia.services import bot

    return bot.last_suggestions(permissions.get_conversation(g.actor, conversation_id))


@route("/conversations/<int:conversation_id>/read", ("POST",),
       summary="Mark visitor messages read up to an id", tags=["conversations"],
       body={"type": "object", "required": ["up_to"], "additionalProperties": False,
             "properties": {"up_to": {"type": "integer", "minimum": 0}}})
def read(conversation_id: int, body: dict) -> dict:
    """`up_to` past the conversation's last message counts as its last message, so
    messages that come later stay unread; `marked`: how many became read."""
    conversation = permissions.get_conversation(g.actor, conversation_id)
    conversations.mentions_seen(g.actor, conversation_id)
    return {"marked": messages.mark_read(conversation, "agent", body["up_to"])}


@route("/conversations/<int:conversation_id>/mentions/seen", ("POST",),
       summary="Take the conversation off my @me list", tags=["conversations"])
def mentions_seen(conversation_id: int) -> dict:
    permissions.get_conversation(g.actor, conversation_id)
    return {"seen": conversations.mentions_seen(g.actor, conversation_id)}


@route("/visitors/<int:visitor_id>", ("PATCH",), summary="Edit the customer card",
       body=visitors.CARD_SCHEMA, tags=["conversations"])
def update_card(visitor_id: int, body: dict) -> dict:
    return visitors.card(visitors.update_card(g.actor, visitor_id, body))
