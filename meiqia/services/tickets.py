"""Tickets (留言): how they are born, their life, and what the customer sees.

The server decides which of the six scenarios a ticket comes from (the widget
only says which conversation it belongs to): a queued conversation →
``queue_leave`` (and it leaves the queue); an ended one → ``after_end``; one
with the bot that failed while nobody can take it → ``bot_unrecognised``;
otherwise nobody online → ``no_agent_online``, all busy → ``all_busy``. Agents
create ``agent_created`` tickets from a conversation, prefilled with the
customer's contact and the public transcript.

Every change is a ``TicketEvent`` (who, when, old → new), is published to the
team's agents, and goes to the configured ticket sinks through the job queue
(``ticket_sinks.dispatch``). Internal notes stay inside: the visitor, webhooks
and emails only ever see the public side.
"""

from __future__ import annotations

from typing import Any

from meiqia.db import database
from meiqia.jobs import Retry
from meiqia.models import Agent
from meiqia.models import Attachment
from meiqia.models import Conversation
from meiqia.models import Group
from meiqia.models import Message
from meiqia.models import Ticket
from meiqia.models import TicketComment
from meiqia.models import TicketEvent
from meiqia.models import Visitor
from meiqia.models.base import utcnow
from meiqia.models.tickets import PRIORITIES
from meiqia.models.tickets import SOURCES
from meiqia.models.tickets import STATUSES
from meiqia.services import capacity
from meiqia.services import events
from meiqia.services import messages
from meiqia.services import permissions
from meiqia.services import visitors
from meiqia.services.accounts import iso
from meiqia.services.errors import Conflict
from meiqia.services.errors import NotFound
from meiqia.services.errors import TooLarge
from meiqia.services.errors import ValidationError
from meiqia.services.rich_text import plain_text
from meiqia.services.teams import settings_of
from meiqia.services.validation import EMAIL_RE
from meiqia.services.validation import PHONE_RE
from meiqia.services.validation import check
from meiqia.services.validation import check_phone
from meiqia.services.validation import normalise_phone

MAX_CONTENT = 5000
MAX_ATTACHMENTS = 5
#: All attachments of one ticket together (they may be emailed on).
MAX_ATTACHMENT_BYTES = 20 * 1024 * 1024
#: Allowed status changes; closed is final, a solved ticket may reopen.
TRANSITIONS = {
    "open": {"pending", "solved", "closed"},
    "pending": {"open", "solved", "closed"},
    "solved": {"open", "closed"},
    "closed": set(),
}
#: Emailing a public reply to the customer: a few tries, then it waits in the widget.
REPLY_EMAIL_RETRY = Retry(max=3, intervals=(30, 300, 1800))

_CONTACT = {
    "name": {"type": "string", "maxLength": 120},
    "phone": {"type": "string", "maxLength": 40},
    "email": {"type": "string", "maxLength": 254},
}
_TAGS = {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 40},
         "maxItems": 20}
WIDGET_SCHEMA = {
    "type": "object",
    "required": ["content"],
    "additionalProperties": False,
    "properties": {
        "conversation_id": {"type": ["integer", "null"]},
        **_CONTACT,
        "content": {"type": "string", "maxLength": MAX_CONTENT},
        "attachments": {"type": "array", "items": {"type": "string", "maxLength": 40},
                        "maxItems": MAX_ATTACHMENTS},
    },
}
AGENT_CREATE_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "conversation_id": {"type": "integer"},
        "subject": {"type": "string", "maxLength": 200},
        "content": {"type": "string", "maxLength": MAX_CONTENT},
        "priority": {"type": "string", "enum": list(PRIORITIES)},
        "assignee_id": {"type": ["integer", "null"]},
        "group_id": {"type": ["integer", "null"]},
        "tags": _TAGS,
        **_CONTACT,
    },
}
UPDATE_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "status": {"type": "string", "enum": list(STATUSES)},
        "priority": {"type": "string", "enum": list(PRIORITIES)},
        "assignee_id": {"type": ["integer", "null"]},
        "group_id": {"type": ["integer", "null"]},
        "tags": _TAGS,
        "subject": {"type": "string", "maxLength": 200},
    },
}
COMMENT_SCHEMA = {
    "type": "object",
    "required": ["body"],
    "additionalProperties": False,
    "properties": {
        "body": {"type": "string", "minLength": 1, "maxLength": MAX_CONTENT},
        "visibility": {"type": "string", "enum": ["internal", "public"]},
    },
}
_AGENT_FORM = {"ask_name": True, "ask_phone": True, "ask_email": True,
               "require_contact": False}


# --- validation ----------------------------------------------------------------------


def _contact(data: dict[str, Any], form: dict[str, Any]) -> dict[str, str]:
    """The contact fields the form asks for, validated; others are ignored."""
    name = (data.get("name") or "").strip() if form.get("ask_name") else ""
    phone = normalise_phone(data.get("phone") or "") if form.get("ask_phone") else ""
    email = (data.get("email") or "").strip() if form.get("ask_email") else ""
    if phone:
        phone = check_phone(phone)
    if email and not EMAIL_RE.match(email):
        raise ValidationError("email: not a valid email address, e.g. name@example.com",
                              "email")
    if form.get("require_contact"):
        asked = [k for k in ("phone", "email") if form.get(f"ask_{k}")]
        if asked and not (phone or email):
            raise ValidationError(f"{asked[0]}: leave a {' or an '.join(asked)} so we can "
                                  "reply", asked[0])
        if not asked and form.get("ask_name") and not name:
            raise ValidationError("name: tell us your name", "name")
    return {"contact_name": name, "contact_phone": phone, "contact_email": email}


def _content(text: str | None) -> str:
    text = (text or "").strip()
    if not text:
        raise ValidationError("content: tell us what it is about", "content")
    if len(text) > MAX_CONTENT:
        raise ValidationError(f"content: at most {MAX_CONTENT} characters", "content")
    return text


def _subject(content: str) -> str:
    return content.splitlines()[0][:60]


def _attachments(visitor: Visitor, keys: list[str], form: dict[str, Any]) -> list[str]:
    """Upload keys of this visitor's own uploads, within the size limit."""
    keys = list(dict.fromkeys(keys))
    if not keys:
        return []
    if not form.get("allow_attachments"):
        raise ValidationError("attachments: this form takes no attachments", "attachments")
    rows = {a.key: a for a in Attachment.select().where(
        Attachment.key.in_(keys), Attachment.team == visitor.team_id,
        Attachment.uploader_kind == "visitor", Attachment.uploader_id == visitor.id)}
    missing = [k for k in keys if k not in rows]
    if missing:
        raise ValidationError(f"attachments: {missing[0]} is not an upload of yours",
                              "attachments")
    total = sum(a.size for a in rows.values())
    if total > MAX_ATTACHMENT_BYTES:
        raise TooLarge(f"attachments: at most {MAX_ATTACHMENT_BYTES // (1024 * 1024)} MB "
                       "together", "attachments")
    return keys


def _assignment(actor: Agent, data: dict[str, Any]) -> tuple[int | None, int | None]:
    """Assignee and group from ``data``, checked: inside the team, visible to the actor."""
    assignee = data.get("assignee_id")
    group = data.get("group_id")
    if assignee is not None:
        target = Agent.get_or_none(Agent.id == assignee, Agent.team == actor.team_id)
        if target is None or not permissions.can_see_agent(actor, assignee):
            raise ValidationError("assignee_id: no such agent you may assign to",
                                  "assignee_id")
    if group is not None and Group.get_or_none(Group.id == group,
                                               Group.team == actor.team_id) is None:
        raise ValidationError("group_id: no such group in this team", "group_id")
    return assignee, group


# --- birth ---------------------------------------------------------------------------


def form_for(visitor: Visitor) -> dict[str, Any]:
    """The leave-a-message form the visitor's team configured, with its limits."""
    form = dict(settings_of(visitor.team)["ticket_form"])
    return {**form, "max_content": MAX_CONTENT,
            "max_attachments": MAX_ATTACHMENTS if form.get("allow_attachments") else 0,
            "max_attachment_bytes": MAX_ATTACHMENT_BYTES}


def scenario_for(conversation: Conversation | None, team_id: int) -> str:
    """Which of the six ways a visitor's ticket was born (never trusted from the client).

    A form sent while someone became available meanwhile counts by the team's
    state then: all busy if anyone is online, else nobody online.
    """
    situation = capacity.availability(team_id)
    if conversation is not None:
        if conversation.status == "queued":
            return "queue_leave"
        if conversation.status == "ended":
            return "after_end"
        if (conversation.status == "bot" and conversation.bot_failures > 0
                and situation != capacity.AVAILABLE):
            return "bot_unrecognised"
    if situation == capacity.NOBODY_ONLINE:
        return "no_agent_online"
    return "all_busy"


def create_from_widget(visitor: Visitor, data: dict[str, Any]) -> Ticket:
    """The leave-a-message form, validated against the team's form settings."""
    check(data, WIDGET_SCHEMA)
    form = settings_of(visitor.team)["ticket_form"]
    # The message first: an empty form is told it lacks the message before the contact
    # (the widget names every missing thing at once; an API client gets the first).
    content = _content(data.get("content"))
    contact = _contact(data, form)
    conversation = None
    if data.get("conversation_id") is not None:
        conversation = Conversation.get_or_none(Conversation.id == data["conversation_id"],
                                                Conversation.visitor == visitor.id)
        if conversation is None:
            raise NotFound("no such conversation")
    keys = _attachments(visitor, data.get("attachments") or [], form)
    source = scenario_for(conversation, visitor.team_id)
    card = {k: contact[f"contact_{k}"] for k in ("name", "phone", "email")
            if contact[f"contact_{k}"] and not getattr(visitor, k)}
    with database.atomic():
        ticket = Ticket.create(
            team=visitor.team_id, visitor=visitor.id,
            conversation=conversation.id if conversation else None, source=source,
            content=content, attachments=keys, subject=_subject(content), **contact)
        TicketEvent.create(ticket=ticket, actor_kind="visitor", field="created",
                           new_value=source)
        if card:  # the customer card learns the contact he left
            Visitor.update(**card).where(Visitor.id == visitor.id).execute()
    if source == "queue_leave":
        _leave_queue(conversation)
    _changed(ticket, "created", {})
    return ticket


def _leave_queue(conversation: Conversation) -> None:
    """The queued visitor stops waiting: the chat ends (``left_ticket``), in one
    conditional UPDATE, and those behind him move up (``conversations._end``).

    Only while it is still queued: if routing assigned an agent in the meantime,
    the visitor keeps the conversation (and has the ticket too). It used to go
    back to the bot first and end after, and the visitor's socket showed a
    ``bot`` state between ``queued`` and ``ended``."""
    from meiqia.services import conversations

    try:
        conversations.system_end(conversation.id, "left_ticket",
                                 only_if=Conversation.status == "queued")
    except Conflict:  # assigned or ended meanwhile: nothing to end here
        pass


def _prefill(visitor: Visitor | None) -> dict[str, str]:
    """The customer card's contact, keeping only values that pass validation."""
    if visitor is None:
        return {}
    out = {"name": visitor.name}
    if PHONE_RE.match(normalise_phone(visitor.phone)):
        out["phone"] = visitor.phone
    if EMAIL_RE.match(visitor.email or ""):
        out["email"] = visitor.email
    return out


def create_by_agent(actor: Agent, data: dict[str, Any]) -> Ticket:
    """From the chat window: prefilled with the customer's contact and the transcript."""
    check(data, AGENT_CREATE_SCHEMA)
    conversation = None
    visitor = None
    if data.get("conversation_id") is not None:
        conversation = permissions.get_conversation(actor, data["conversation_id"])
        visitor = conversation.visitor
    given = {k: data[k] for k in ("name", "phone", "email") if k in data}
    contact = _contact({**_prefill(visitor), **given}, _AGENT_FORM)
    content = data.get("content") or ""
    if not content.strip() and conversation is not None:
        content = transcript_text(conversation)[-MAX_CONTENT:]
    content = _content(content)
    assignee, group = _assignment(actor, data)
    with database.atomic():
        ticket = Ticket.create(
            team=actor.team_id, visitor=visitor.id if visitor else None,
            conversation=conversation.id if conversation else None, source="agent_created",
            content=content, subject=(data.get("subject") or "").strip() or _subject(content),
            priority=data.get("priority", "normal"), assignee=assignee, group=group,
            tags=_clean_tags(data.get("tags", [])), created_by=actor.id, **contact)
        TicketEvent.create(ticket=ticket, actor=actor, field="created",
                           new_value="agent_created")
    _changed(ticket, "created", {})
    return ticket


def transcript(conversation_id: int, until: Any = None) -> list[dict[str, Any]]:
    """The public messages of a conversation (never internal notes); with ``until``
    (a UTC time), only those written by then."""
    where = [Message.conversation == conversation_id, Message.visibility == "public",
             Message.kind == "text"]
    if until is not None:
        where.append(Message.created_at <= until)
    return [{"sender": m.sender_kind, "body": messages.transcript_body(m.body, m.payload),
             "at": iso(m.created_at)}
            for m in Message.select().where(*where).order_by(Message.id)]


def transcript_text(conversation: Conversation) -> str:
    """The public transcript as text, for prefilling, webhooks and emails."""
    from meiqia.services.dates import team_clock

    team = conversation.team
    # The team reads it (a ticket's prefill, the team's e-mail and webhook): its language
    # and its clock (stored UTC).
    lang = "en" if team.language == "en" else "zh-CN"
    who = TRANSCRIPT_SENDERS[lang]
    # The bot's and agents' links and images written out (the page draws them).
    return "\n".join(f"[{team_clock(m['at'], team.timezone)}] "
                     f"{who.get(m['sender'], who['system'])}: "
                     f"{m['body'] if m['sender'] == 'visitor' else plain_text(m['body'], lang, paths=True)}"
                     for m in transcript(conversation.id))


#: Who said a transcript's line, in the team's language.
TRANSCRIPT_SENDERS = {
    "zh-CN": {"visitor": "访客", "agent": "客服", "bot": "机器人", "system": "系统"},
    "en": {"visitor": "Visitor", "agent": "Agent", "bot": "Bot", "system": "System"},
}


# --- life ----------------------------------------------------------------------------


def _clean_tags(tags: list[str]) -> list[str]:
    return sorted({t.strip() for t in tags if t.strip()})


def update(actor: Agent, ticket_id: int, data: dict[str, Any]) -> Ticket:
    """Change status, priority, assignee, group, tags or subject; each change recorded."""
    check(data, UPDATE_SCHEMA)
    ticket = permissions.get_ticket(actor, ticket_id)
    changes: dict[str, tuple[Any, Any]] = {}
    if "status" in data and data["status"] != ticket.status:
        if data["status"] not in TRANSITIONS[ticket.status]:
            allowed = ", ".join(s for s in STATUSES if s in TRANSITIONS[ticket.status]) \
                or "none (closed is final)"  # in the ticket's life, as the menus list them
            raise ValidationError(f"status: cannot go from {ticket.status} to "
                                  f"{data['status']}; allowed: {allowed}", "status")
        changes["status"] = (ticket.status, data["status"])
    if "priority" in data and data["priority"] != ticket.priority:
        changes["priority"] = (ticket.priority, data["priority"])
    if "assignee_id" in data or "group_id" in data:
        assignee, group = _assignment(actor, data)
        if "assignee_id" in data and assignee != ticket.assignee_id:
            changes["assignee"] = (ticket.assignee_id, assignee)
        if "group_id" in data and group != ticket.group_id:
            changes["group"] = (ticket.group_id, group)
    if "tags" in data:
        tags = _clean_tags(data["tags"])
        if tags != (ticket.tags or []):
            changes["tags"] = (ticket.tags or [], tags)
    if "subject" in data and data["subject"].strip() != ticket.subject:
        changes["subject"] = (ticket.subject, data["subject"].strip())
    if not changes:
        return ticket
    with database.atomic():
        for field, (old, new) in changes.items():
            setattr(ticket, field, new)
            TicketEvent.create(ticket=ticket, actor=actor, field=field,
                               old_value=_text(old), new_value=_text(new))
        ticket.updated_at = utcnow()
        ticket.save()
    _changed(ticket, "updated", {k: [_text(o), _text(n)] for k, (o, n) in changes.items()},
             previous_assignee=changes["assignee"][0] if "assignee" in changes else None)
    return ticket


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return ",".join(value)
    return str(value)


def comment(actor: Agent, ticket_id: int, data: dict[str, Any]) -> TicketComment:
    """An internal note, or a public reply the customer gets by widget or email."""
    check(data, COMMENT_SCHEMA)
    ticket = permissions.get_ticket(actor, ticket_id)
    visibility = data.get("visibility", "internal")
    body = data["body"].strip()
    if not body:
        raise ValidationError("body: must not be empty", "body")
    with database.atomic():
        row = TicketComment.create(ticket=ticket, author=actor, visibility=visibility,
                                   body=body,
                                   delivered_via="widget" if visibility == "public" else "")
        TicketEvent.create(ticket=ticket, actor=actor, field=f"comment.{visibility}",
                           new_value=str(row.id))
        Ticket.update(updated_at=utcnow()).where(Ticket.id == ticket.id).execute()
    #: What happens to the reply by email, for the agent who sent it (see reply_email).
    row.email = reply_email(ticket) if visibility == "public" else None
    if visibility == "public":
        if ticket.contact_email:
            from flask import current_app

            try:
                current_app.extensions["meiqia.jobs"].enqueue(
                    reply_email_job, row.id, retry=REPLY_EMAIL_RETRY,
                    description=f"email the reply to ticket {ticket.id}",
                    keep_if_refused=True)  # Redis down: queued by the workers' sweep
            except Exception as exc:  # noqa: BLE001 - the reply is stored: no 503 now
                # (a 503 would make the agent send the reply twice); the customer
                # still reads it in the widget.
                import logging

                logging.getLogger(__name__).error(
                    "ticket %s: could not queue the reply email: %s", ticket.id, exc)
                if row.email["will_email"]:
                    row.email = {"will_email": False, "reason": "not_queued",
                                 "message": "the customer will not be emailed: the email "
                                            "could not be queued (the job queue is "
                                            "unreachable); he reads the reply in the widget "
                                            "next time he visits"}
        _changed(ticket, "updated", {"reply": ["", row.body]})
    else:  # agents see the note arrive; sinks and the customer never do
        _changed(ticket, "updated", {"note": ["", str(row.id)]}, public=False)
    return row


def _email_sink(team_id: int) -> Any:
    from meiqia.models import TicketSink

    return TicketSink.select().where(TicketSink.team == team_id,
                                     TicketSink.type == "email",
                                     TicketSink.enabled == True).first()  # noqa: E712


def reply_email(ticket: Ticket) -> dict[str, Any]:
    """Whether a public reply to ``ticket`` is emailed to the customer, and if not why.

    Replies go out with the SMTP settings of the team's email ticket sink, so
    without an enabled one nobody is emailed even when the customer left an
    address; the agent is told before and after replying rather than left to
    believe the customer got an email. ``reason``: ``no_contact_email`` or
    ``no_email_sink`` (empty when it will be emailed).
    """
    if not ticket.contact_email:
        return {"will_email": False, "reason": "no_contact_email",
                "message": "the customer will not be emailed: he left no email address; "
                           "he reads the reply in the widget next time he visits"}
    if _email_sink(ticket.team_id) is None:
        return {"will_email": False, "reason": "no_email_sink",
                "message": "the customer will not be emailed: no email ticket sink is "
                           "configured (an admin adds one under Admin → Ticket sinks; its "
                           "SMTP settings send the replies); he reads the reply in the "
                           "widget next time he visits"}
    return {"will_email": True, "reason": "", "message": f"emailed to {ticket.contact_email}"}


#: The customer's e-mail with a public reply: subject and the line above his message.
REPLY_EMAIL = {
    "zh-CN": ("回复：您的留言 #{id}", "—— 您的留言："),
    "en": ("Reply to your message #{id}", "— Your message:"),
}


def _customer_language(ticket: Ticket) -> str:
    """The language the customer's widget spoke when he left it, else the team's."""
    from meiqia.models import Visitor

    visitor = Visitor.get_or_none(Visitor.id == ticket.visitor_id) if ticket.visitor_id else None
    if visitor is not None and visitor.language in REPLY_EMAIL:
        return visitor.language
    return "en" if ticket.team.language == "en" else "zh-CN"


def _reply_mail_key(comment: TicketComment) -> str:
    """The left part of the Message-ID of the mail with a public reply: the same on
    every attempt (a mail system drops a repeat), unique per reply (its id, and its
    creation time so a rebuilt database does not reuse an old id)."""
    stamp = comment.created_at.strftime("%Y%m%dT%H%M%S%f")
    return f"meiqia-ticket-{comment.ticket_id}-reply-{comment.id}-{stamp}"


def reply_email_job(comment_id: int) -> str:
    """Job: email a public reply to the customer, with the team's email sink settings.

    The customer also sees the reply in the widget next time he visits. The mail is
    from the team's name (``services.mail``), dated when the reply was written, and
    answers the earlier replies he was mailed about this ticket (``In-Reply-To`` the
    latest, ``References`` them all), so his client shows one thread.
    """
    from meiqia.plugins.email_sink import send_plain
    from meiqia.services import mail

    row = TicketComment.get_or_none(TicketComment.id == comment_id)
    if row is None or row.visibility != "public":
        return "nothing to send"
    ticket = row.ticket
    sink = _email_sink(ticket.team_id)
    if sink is None:
        return "no email sink configured: the reply waits in the widget"
    config = dict(sink.config)
    language = _customer_language(ticket)
    subject, quoted = REPLY_EMAIL[language]
    earlier = (TicketComment.select()
               .where(TicketComment.ticket == ticket.id, TicketComment.visibility == "public",
                      TicketComment.id < row.id,
                      TicketComment.delivered_via.contains("email"))
               .order_by(TicketComment.id))
    thread = [mail.message_id(config["from"], _reply_mail_key(c)) for c in earlier]
    if len(thread) > 20:  # the first and the latest, as mail clients keep them
        thread = thread[:1] + thread[-19:]
    send_plain(config, ticket.contact_email, subject.format(id=ticket.id),
               f"{row.body}\n\n{quoted}\n{ticket.content}",
               from_name=mail.team_sender_name(ticket.team_id, language),
               key=_reply_mail_key(row), when=row.created_at,
               in_reply_to=thread[-1] if thread else None, references=thread)
    TicketComment.update(delivered_via="widget,email").where(
        TicketComment.id == row.id).execute()
    return "emailed"


def _changed(ticket: Ticket, kind: str, changes: dict[str, Any], public: bool = True,
             previous_assignee: int | None = None) -> None:
    """After the commit: tell the team's agents, and (public changes) the sinks.

    ``previous_assignee``: the agent a reassignment took the ticket from. He hears
    this one event (his list drops the ticket, he knows who has it now), nothing later.
    """
    from meiqia.services import ticket_sinks

    # Assignee, group and the conversation's handler and group (as they are now):
    # agent sockets drop the event for agents whose scope does not cover the ticket
    # (``permissions.ticket_visible``, the rule of ``ticket_filter``).
    data = {"ticket_id": ticket.id, "changes": changes,
            **permissions.ticket_scope_facts(ticket)}
    if previous_assignee is not None:
        data["previous_assignee_id"] = previous_assignee
    events.emit("ticket." + kind, ticket.team_id, [f"team:{ticket.team_id}"], data)
    if public:
        ticket_sinks.dispatch(ticket, kind, changes)


# --- reading -------------------------------------------------------------------------


def to_dict(ticket: Ticket, full: bool = False, viewer: Agent | None = None
            ) -> dict[str, Any]:
    """The agents' view of a ticket; ``full`` adds content, comments, history, transcript.

    The transcript is the conversation's, read now. A ``viewer`` who cannot see that
    conversation now (it moved out of his scope: transferred, routed to another
    group) reads it as it was when the ticket was made: a ticket opened on a chat of
    the shared pool must not become a window on that chat for good (docs/security.md
    §1)."""
    data = {
        "id": ticket.id, "source": ticket.source, "status": ticket.status,
        "priority": ticket.priority, "subject": ticket.subject,
        "assignee_id": ticket.assignee_id, "group_id": ticket.group_id,
        "tags": ticket.tags or [], "contact": {"name": ticket.contact_name,
                                               "phone": ticket.contact_phone,
                                               "email": ticket.contact_email},
        "visitor_id": ticket.visitor_id, "conversation_id": ticket.conversation_id,
        "created_by": ticket.created_by_id,
        "created_at": iso(ticket.created_at), "updated_at": iso(ticket.updated_at),
    }
    if full:
        from meiqia.services.uploads import public_dict

        data["content"] = ticket.content
        keys = ticket.attachments or []
        found = {a.key: a for a in Attachment.select().where(Attachment.key.in_(keys))} \
            if keys else {}
        data["attachments"] = [public_dict(found[k]) for k in keys if k in found]
        data["comments"] = [
            {"id": c.id, "author_id": c.author_id, "visibility": c.visibility, "body": c.body,
             "delivered_via": c.delivered_via, "created_at": iso(c.created_at)}
            for c in TicketComment.select().where(TicketComment.ticket == ticket.id)
            .order_by(TicketComment.id)]
        data["history"] = [
            {"actor_id": e.actor_id, "actor_kind": e.actor_kind, "field": e.field,
             "old": e.old_value, "new": e.new_value, "at": iso(e.created_at)}
            for e in TicketEvent.select().where(TicketEvent.ticket == ticket.id)
            .order_by(TicketEvent.id)]
        data["transcript"] = transcript(ticket.conversation_id, _transcript_until(
            ticket, viewer)) if ticket.conversation_id else []
        data["reply_email"] = reply_email(ticket)
    return data


def _transcript_until(ticket: Ticket, viewer: Agent | None) -> Any:
    """Up to when ``viewer`` reads the ticket's transcript: all of it (None) while he
    may see the conversation, else up to the ticket's creation."""
    if viewer is None or permissions.can_see_conversation(
            viewer, Conversation(id=ticket.conversation_id)):
        return None
    return ticket.created_at


def visitor_dict(ticket: Ticket) -> dict[str, Any]:
    """What the customer sees: his message and the public replies only.

    Replies newer than the last one he saw in the widget are ``unread``, so the
    widget can flag them when he comes back ("next time he visits").
    """
    replies = [{"id": c.id, "body": c.body, "created_at": iso(c.created_at),
                "unread": c.id > ticket.visitor_seen_reply_id}
               for c in TicketComment.select().where(
                   TicketComment.ticket == ticket.id,
                   TicketComment.visibility == "public").order_by(TicketComment.id)]
    return {
        "id": ticket.id, "status": ticket.status, "content": ticket.content,
        # Who wrote the content: an agent's (``agent_created``, often the chat's
        # transcript) may hold the bot's links and images, which the widget draws.
        "source": ticket.source,
        "created_at": iso(ticket.created_at), "updated_at": iso(ticket.updated_at),
        "replies": replies, "unread": sum(r["unread"] for r in replies),
    }


def visitor_tickets(visitor: Visitor, limit: int = 20) -> list[dict[str, Any]]:
    """The visitor's own tickets, newest first, with public replies."""
    rows = Ticket.select().where(Ticket.visitor == visitor.id).order_by(Ticket.id.desc())
    return [visitor_dict(t) for t in rows.limit(limit)]


def visitor_ticket(visitor: Visitor, ticket_id: int) -> dict[str, Any]:
    """One of the visitor's own tickets; another visitor's is 404."""
    ticket = Ticket.get_or_none(Ticket.id == ticket_id, Ticket.visitor == visitor.id)
    if ticket is None:
        raise NotFound("no such ticket")
    return visitor_dict(ticket)


def mark_seen(visitor: Visitor, ticket_id: int, up_to: int) -> dict[str, Any]:
    """The visitor has read the replies of his ticket up to the reply ``up_to``.

    Only ever moves forward, and only to a public reply of this ticket, so a
    reply that arrived after the widget drew the list stays unread.
    """
    ticket = Ticket.get_or_none(Ticket.id == ticket_id, Ticket.visitor == visitor.id)
    if ticket is None:
        raise NotFound("no such ticket")
    newest = (TicketComment.select(TicketComment.id).where(
        TicketComment.ticket == ticket.id, TicketComment.visibility == "public",
        TicketComment.id <= up_to).order_by(TicketComment.id.desc()).scalar()) or 0
    Ticket.update(visitor_seen_reply_id=newest).where(
        Ticket.id == ticket.id, Ticket.visitor_seen_reply_id < newest).execute()
    return visitor_dict(Ticket.get_by_id(ticket.id))


def recent_for_customer(actor: Agent, visitor_id: int, limit: int = 10) -> list[dict[str, Any]]:
    """The customer sidebar: the customer's recent tickets the actor may see; a
    visitor the actor may not see (``visitors.visible_visitor``) and none of whose
    tickets he may see is a 404. A ticket assigned to him is enough: the chat it
    came from may be out of his scope (still with the bot, in no group:
    docs/security.md §1) while its ticket is his."""
    rows = list(Ticket.select().where(permissions.ticket_filter(actor),
                                      Ticket.visitor == visitor_id)
                .order_by(Ticket.id.desc()).limit(limit))
    if not rows:
        visitors.visible_visitor(actor, visitor_id)
    return [to_dict(t) for t in rows]


__all__ = ["SOURCES", "STATUSES"]
