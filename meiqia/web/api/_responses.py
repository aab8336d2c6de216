"""What each operation answers: the JSON schemas of the success bodies.

Why this file exists: ``route`` documents an operation with
``RESPONSES[operation id]`` unless it declares ``response=`` itself, and
``COMPONENTS`` are the shapes several answers share, named in the OpenAPI
document's ``components.schemas`` and referred to with ``ref(name)``
(``$ref``). ``tests/api/test_openapi_exactness.py`` validates the answers of a
representative run against these schemas (and refuses a bare object), so a
field the code adds, drops or retypes fails there: change this file with it.

How to add an operation: add ``"<blueprint>_<view>": <schema>`` to
``RESPONSES`` (the operation id is the Flask endpoint with ``.`` as ``_``),
built from the helpers below: ``obj(name=STR, ...)`` is an object whose
properties are all required unless ``required=`` names fewer, ``arr(items)``
an array, ``nullable(schema)`` adds ``null`` to its type, ``dict_of(values)``
a map, ``ref("Name")`` a component. Reuse the named shapes (``OK``,
``I18N_NAME``, ``PERCENTILES``...) rather than writing a shape twice. A shape
that is not (yet) a component stays a Python constant: turning it into one
changes the document. An operation the representative run does not reach (no
reset link, no unrecognised question, no channel plugin configured, no iframe
plugin, no failed delivery) is written from its view: those are marked
"from its view" below.
"""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]

# --- Builders ------------------------------------------------------------------------

STR: Schema = {"type": "string"}
INT: Schema = {"type": "integer"}
NUM: Schema = {"type": "number"}
BOOL: Schema = {"type": "boolean"}
#: Anything (the value's type varies).
ANY: Schema = {}
DATETIME: Schema = {"type": "string", "format": "date-time"}
#: An array whose items are not described.
ARRAY: Schema = {"type": "array"}

#: ``required=`` for ``obj``: every property.
ALL = object()


def arr(items: Schema) -> Schema:
    """An array of ``items``."""
    return {"type": "array", "items": items}


STRINGS = arr(STR)


def nullable(schema: Schema) -> Schema:
    """``schema`` that may also be ``null``."""
    return {**schema, "type": [schema["type"], "null"]}


def dict_of(values: Schema | bool) -> Schema:
    """An object of any keys whose values are ``values`` (True: anything)."""
    return {"type": "object", "additionalProperties": values}


def ref(name: str) -> Schema:
    """The component ``name`` of ``COMPONENTS``."""
    return {"$ref": f"#/components/schemas/{name}"}


def described(schema: Schema, description: str) -> Schema:
    return {**schema, "description": description}


def obj(_props: dict[str, Schema] | None = None, /, *, required: Any = ALL,
        **props: Schema) -> Schema:
    """An object of ``props`` (keyword arguments, or a dict for names that are not
    Python identifiers). ``required``: the names that must be there, by default all
    of them (sorted); None: no ``required`` at all."""
    properties = {**(_props or {}), **props}
    schema: Schema = {"type": "object", "properties": properties}
    if required is ALL:
        schema["required"] = sorted(properties)
    elif required is not None:
        schema["required"] = list(required)
    return schema


def extend(base: Schema, **props: Schema) -> Schema:
    """``base`` (an ``obj`` of all-required properties) with more properties."""
    return obj(base["properties"], **props)


# --- Shapes used more than once ------------------------------------------------------

OK = obj(ok=BOOL)
#: A name in each language (a channel's, say).
I18N_NAME = obj({"en": STR, "zh-CN": STR})
#: An average and the 90th percentile, in seconds (null: nothing to measure).
PERCENTILES = obj(avg=nullable(NUM), p90=nullable(NUM))
#: Whether a reply is e-mailed too, and why (not); ``message_en`` when ``message`` was
#: translated.
EMAIL_OUTCOME = obj(message=STR, message_en=STR, reason=STR, will_email=BOOL,
                    required=["message", "reason", "will_email"])
GROUP = obj(id=INT, name=STR)
QUICK_REPLY = obj(body=STR, category=STR, id=INT, keyword=STR, team=BOOL, title=STR)
#: A sink's ``config`` holds what its type's settings form (``schema`` of
#: ``GET /ticket-sinks/types``) allows: the e-mail sink's ``port`` is a number and its
#: ``starttls`` a boolean, so its values are not all strings (docs/plugins.md).
TICKET_SINK = obj(config=described(dict_of(True), "the settings, each of the type its "
                                   "type's schema gives it; a secret that is set reads "
                                   "********"),
                  enabled=BOOL, failed_deliveries=INT, id=INT, name=STR, type=STR)
#: An answer of sign-in (``accounts_login``, ``_me``, ``_register``).
SESSION = obj(agent=ref("Agent"), csrf_token=STR, team=ref("TeamSummary"))
CONVERSATION_RULES = obj(bot_inactivity_minutes=INT,
                         grades=arr(obj(grade=STR, min_messages=INT)),
                         inactivity_minutes=INT)
#: A page of a list: ``items`` and the paging fields (``total`` null: not counted).
PAGE = {"page": INT, "per_page": INT, "total": nullable(INT)}
MARKED = obj(marked=INT)
#: What a conversation's state is, as the widget and the agent both see it.
_STATE = {"availability": STR, "conversation_id": nullable(INT),
          "handler": nullable(obj(name=STR)), "queue_position": nullable(INT),
          "status": STR}
#: A conversation as the agents' lists show it (``get_one`` adds more).
_CONVERSATION_ROW = {
    "capabilities": STRINGS, "channel": STR, "channel_name": I18N_NAME,
    "created_at": DATETIME, "group_id": nullable(INT), "handler_id": nullable(INT),
    "id": INT, "last_message": STR, "last_message_at": nullable(DATETIME),
    "last_seq": INT, "queue_position": nullable(INT), "rating": ANY, "status": STR,
    "tags": STRINGS, "unread": INT, "visitor": obj(id=INT, name=STR, online=BOOL),
}
_MESSAGE = {
    "body": STR, "client_msg_id": nullable(STR), "conversation_id": nullable(INT),
    "created_at": DATETIME, "id": INT, "kind": STR,
    "payload": dict_of({"type": ["array", "boolean", "string", "null"]}),
    "sender_kind": STR, "sender_name": STR, "seq": INT, "status": STR,
}
#: The ticket-form switches of a team's settings.
_TICKET_FORM = {"allow_attachments": BOOL, "ask_email": BOOL, "ask_name": BOOL,
                "ask_phone": BOOL, "require_contact": BOOL}
_TEAM_SUMMARY = {"created_at": DATETIME, "id": INT, "language": STR, "name": STR,
                 "timezone": STR}
_TOKEN = {"created_at": DATETIME, "expires_at": nullable(DATETIME), "id": INT,
          "last_used_at": nullable(DATETIME), "name": STR, "prefix": STR,
          "revoked": BOOL, "scope": STR}
#: An agent as admins and he himself see him (``Agent``); his colleagues see only the
#: fields of ``_AGENT_SEEN`` (``AgentSeen``: the transfer list, @mentions).
_AGENT = {
    "active": BOOL, "created_at": DATETIME, "display_name": STR, "email": STR,
    "groups": ARRAY, "id": INT, "max_concurrent": INT, "name": STR, "nickname": STR,
    "presence": described(
        {"type": "string", "enum": ["online", "away", "invisible", "offline"]},
        "online: status online with a workspace open (he gets chats); away: status "
        "online but no workspace open, or closed for longer than "
        "AGENT_ROUTING_GRACE_SECONDS, so routing gives him no chat (docs/protocol.md, "
        "Agent presence)"),
    "role": STR, "scope": STR, "scope_agents": ARRAY, "scope_groups": ARRAY, "status": STR,
}
_AGENT_SEEN = ["display_name", "id", "name", "nickname", "presence", "role", "status"]
_TICKET = {
    "assignee_id": nullable(INT), "contact": obj(email=STR, name=STR, phone=STR),
    "conversation_id": nullable(INT), "created_at": DATETIME, "created_by": nullable(INT),
    "group_id": nullable(INT), "id": INT, "priority": STR, "source": STR, "status": STR,
    "subject": STR, "tags": STRINGS, "updated_at": DATETIME, "visitor_id": nullable(INT),
}

# The dashboard's figures, for today and for the chosen range alike.
DASHBOARD_FIGURES = obj({
    "bot_resolved_share": nullable(NUM),
    "by_channel": arr(obj(bot_resolved=INT, channel=STR, ended=INT, leads=INT, missed=INT,
                          names=I18N_NAME)),
    "by_day": arr(obj(day=STR, ended=INT)),
    "by_hour": arr(obj(ended=INT, hour=INT)),
    "duration_s": PERCENTILES,
    "ended": INT,
    "first_response_s": PERCENTILES,
    "from": STR,
    "invalid": INT,
    "leads": INT,
    "missed": INT,
    "per_agent": arr(obj(agent=STR, agent_id=nullable(INT), avg_duration_s=NUM,
                         avg_first_response_s=NUM, bad=INT, ended=INT, good=INT,
                         invalid=INT, leads=INT, missed=INT, neutral=INT)),
    "ratings": obj(bad=INT, good=INT, neutral=INT, none=INT),
    "suggestions": obj(acceptance=ANY, accepted=INT, edited=INT, shown=INT),
    "to": STR,
})

# --- Plugin settings forms -------------------------------------------------------------
# A channel or ticket-sink type publishes the JSON Schema of its settings, written by
# its plugin (``configuration_schema()``, docs/plugins.md): which fields it has and
# which keywords each carries are the plugin's (the example WeCom sink's ``url`` has a
# ``pattern`` and no ``maxLength``), so no keyword is required; those the admin form
# reads are typed. A plugin may word ``title``, ``description`` and each label of
# ``enumNames`` per language; the answer has the caller's language's string only.

#: One field of a settings form.
SETTINGS_FIELD = obj({
    "default": ANY, "description": STR, "enum": ARRAY, "enumNames": STRINGS, "format": STR,
    "maxLength": INT, "maximum": NUM, "minLength": INT, "minimum": NUM, "pattern": STR,
    "title": STR, "type": {"type": ["string", "array"], "items": STR},
}, required=None)
#: A type's settings form: the JSON Schema of its ``config``, with the write-only fields
#: under ``secret``.
SETTINGS_FORM = obj({"additionalProperties": BOOL, "properties": dict_of(SETTINGS_FIELD),
                     "required": STRINGS, "secret": STRINGS, "type": STR}, required=None)

CHANNEL = obj(
    callback_url=nullable(STR),
    capabilities=STRINGS,
    config=dict_of(True),
    configured=BOOL,
    enabled=BOOL,
    failed_deliveries=INT,
    fields=STRINGS,
    name=STR,
    names=I18N_NAME,
    reader=ANY,
    schema=SETTINGS_FORM,
    secret=STRINGS,
    type=STR,
    updated_at=nullable(DATETIME),
)

SINK_TYPE = obj(
    name=STR,
    schema=SETTINGS_FORM,
    type=STR,
)

# --- Components (``components.schemas`` of the document) -------------------------------

COMPONENTS: dict[str, Schema] = {
    "Message": obj(_MESSAGE),
    "AgentMessage": obj(_MESSAGE, agent_id=nullable(INT), anonymous=BOOL,
                        shown_agent_id=nullable(INT), visibility=STR),
    "ConversationRow": obj(_CONVERSATION_ROW),
    "ConversationState": obj(_STATE, rating=nullable(STR)),
    "Customer": obj(
        address=STR, attributes=dict_of(STR), company=STR, email=STR,
        first_seen_at=nullable(DATETIME), id=INT, name=STR, note=STR, online=BOOL,
        phone=STR, tags=STRINGS,
        visit=obj(browser=STR, custom_info=dict_of(True), device=STR, ip=STR,
                  landing_page=STR, os=STR, platform=STR, referrer=STR, region=STR,
                  search_engine=STR, search_keyword=STR, source=STR, trail=ARRAY),
    ),
    "Agent": obj(_AGENT),
    "AgentSeen": described(obj(_AGENT, required=_AGENT_SEEN),
                           "the other fields only for an admin and the agent himself"),
    "TeamSummary": obj(_TEAM_SUMMARY),
    "Team": obj(_TEAM_SUMMARY, settings=obj(
        answer_threshold=NUM, bot_enabled=BOOL, bot_failures_before_human=INT,
        bot_synonyms=ARRAY, bot_target_precision=NUM, bot_user_words=ARRAY,
        offline_message=STR, queue_enabled=BOOL, suggest_threshold=NUM,
        ticket_form=obj(_TICKET_FORM), welcome_message=STR,
        widget=obj(allowed_origins=ARRAY, color=STR, position=STR),
        working_hours=obj(days=arr(INT), end=STR, mode=STR, start=STR),
    )),
    "Token": obj(_TOKEN),
    "Ticket": obj(_TICKET),
    "TicketFull": obj(
        _TICKET, attachments=ARRAY, comments=ARRAY, content=STR,
        history=arr(obj(actor_id=nullable(INT), actor_kind=STR, at=STR, field=STR,
                        new=STR, old=STR)),
        reply_email=EMAIL_OUTCOME,
        transcript=arr(obj(at=STR, body=STR, sender=STR)),
    ),
    "VisitorTicket": obj(
        content=STR, created_at=DATETIME, id=INT,
        replies=arr(obj(body=STR, created_at=DATETIME, id=INT, unread=BOOL)),
        source=STR, status=STR, unread=INT, updated_at=DATETIME,
    ),
    "Export": obj(
        created_at=DATETIME, done=INT, download=nullable(STR), error=nullable(STR),
        filters=obj(required=None), finished_at=nullable(DATETIME), format=STR, id=INT,
        progress=NUM, refused=nullable(STR), size=nullable(INT), status=STR,
        total=nullable(INT), with_content=BOOL,
    ),
    "HistoryRow": obj(
        agent=STR, agent_id=nullable(INT), agent_messages=INT, channel=STR, device=STR,
        duration_s=nullable(INT), ended_at=nullable(DATETIME),
        first_response_s=nullable(INT), grade=STR, id=INT, invalid=BOOL, ip=STR,
        lead=STR, missed=BOOL, platform=STR, rating=nullable(STR), rating_comment=STR,
        region=STR, search_keyword=STR, source=STR, started_at=nullable(DATETIME), summary=STR,
        tags=STRINGS, visit_trail=arr(obj(at=STR, title=STR, url=STR)), visitor=STR,
        visitor_id=nullable(INT), visitor_messages=INT,
    ),
    "Job": obj(
        attempts=INT, created_at=DATETIME, error=nullable(STR),
        finished_at=nullable(DATETIME), id=STR, message=STR, name=STR, progress=NUM,
        result=dict_of(NUM), status=STR,
    ),
    "KnowledgeEntry": obj(
        answer=STR, category=STR, enabled=BOOL, id=INT, key=STR, questions=STRINGS,
        standard_question=STR, tags=STRINGS, updated_at=DATETIME,
    ),
}

# --- Responses, by operation id ----------------------------------------------------------

RESPONSES: dict[str, Schema] = {
    # accounts
    "accounts_create_agent": ref("Agent"),
    "accounts_create_group": GROUP,
    "accounts_create_token": obj(_TOKEN, token=STR),
    "accounts_delete_group": OK,
    "accounts_end_all_sessions": obj(ended=INT, ok=BOOL),
    "accounts_get_agent": ref("AgentSeen"),
    "accounts_get_team": ref("Team"),
    "accounts_list_agents": arr(ref("AgentSeen")),
    "accounts_list_groups": arr(GROUP),
    "accounts_list_tokens": arr(ref("Token")),
    "accounts_login": SESSION,
    "accounts_logout": OK,
    "accounts_me": SESSION,
    # accounts_register: from its view.
    "accounts_register": SESSION,
    "accounts_revoke_token": OK,
    "accounts_update_agent": ref("Agent"),
    "accounts_update_team": ref("Team"),
    # password_reset_use_link: from its view.
    "password_reset_use_link": obj(ok=BOOL, email=STR, required=["ok", "email"]),
    # bot
    "bot_ask": obj(
        candidates=arr(obj(answer=STR, entry_id=nullable(STR), question=STR, score=NUM,
                           source=STR)),
        decision=STR, reply=STR, small_talk=STR, truncated=BOOL, wants_human=BOOL,
        required=["candidates", "decision", "truncated", "wants_human"],
    ),
    # bot_dismiss: from its view.
    "bot_dismiss": obj(dismissed=described(INT, "questions removed")),
    # bot_resolve: from its view.
    "bot_resolve": ref("KnowledgeEntry"),
    "bot_unrecognised_groups": obj(groups=ARRAY),
    # channels
    "channels_list_channels": arr(CHANNEL),
    # channels_get_channel: from its view.
    "channels_get_channel": CHANNEL,
    # channels_configure_channel: from its view.
    "channels_configure_channel": CHANNEL,
    # conversations
    "conversations_end": ref("ConversationState"),
    "conversations_get_one": obj(_CONVERSATION_ROW, customer=ref("Customer"),
                                 rating_comment=STR, state=ref("ConversationState"),
                                 summary=STR),
    "conversations_last_suggestions": obj(
        conversation_id=nullable(INT), handler_id=nullable(INT),
        message_id=nullable(INT), suggestions=ARRAY,
    ),
    "conversations_list_messages": obj(messages=arr(ref("AgentMessage"))),
    "conversations_lists": obj(at_me=ARRAY, colleagues=ARRAY,
                               mine=arr(ref("ConversationRow")), queue=ARRAY,
                               queue_count=INT),
    "conversations_mentions_seen": obj(seen=INT),
    "conversations_rating_invite": ref("AgentMessage"),
    "conversations_read": MARKED,
    "conversations_send": obj(duplicate=BOOL, message=ref("AgentMessage")),
    "conversations_summary": obj(summary=STR, tags=STRINGS),
    "conversations_transfer": ref("ConversationState"),
    "conversations_update_card": ref("Customer"),
    # dashboard
    "dashboard_home": obj(now=obj(active=INT, queued=INT), range=DASHBOARD_FIGURES,
                          today=DASHBOARD_FIGURES),
    # history and exports
    "exports_delete_export": OK,
    "exports_get_export": ref("Export"),
    "exports_list_exports": arr(ref("Export")),
    "exports_start_export": ref("Export"),
    "history_customer_conversations": arr(obj(
        agent=STR, ended_at=nullable(DATETIME), id=INT, rating=nullable(STR),
        rating_comment=STR, started_at=nullable(DATETIME), status=STR, summary=STR,
    )),
    "history_get_rules": CONVERSATION_RULES,
    "history_put_rules": extend(CONVERSATION_RULES, job_id=nullable(INT)),
    "history_search": obj(PAGE, columns=STRINGS, items=arr(ref("HistoryRow"))),
    "history_set_columns": obj(available=STRINGS, columns=STRINGS),
    "jobs_get_job": ref("Job"),
    # knowledge
    "knowledge_calibration": obj(
        answer_margin=NUM, answer_score=NUM, calibrated=BOOL, competing=ARRAY,
        coverage=ANY, entries=INT, in_scope=INT, oos_recall=ANY, oov_weight=NUM,
        out_of_scope=INT, precision=ANY, progress=NUM, progress_message=STR, reason=STR,
        running=BOOL, seconds=NUM, suggest_precision=ANY, suggest_score=NUM, target=NUM,
        target_reached=ANY, team_target=NUM, variants=INT,
    ),
    "knowledge_create_entry": ref("KnowledgeEntry"),
    "knowledge_delete_entry": OK,
    "knowledge_get_entry": ref("KnowledgeEntry"),
    "knowledge_import_entries": obj(created=INT, removed=INT, total=nullable(INT),
                                    updated=INT),
    "knowledge_list_entries": obj(PAGE, categories=STRINGS,
                                  items=arr(ref("KnowledgeEntry"))),
    "knowledge_reindex": obj(job_id=STR),
    # plugins
    # iframe_plugins_delete: from its view.
    "iframe_plugins_delete": OK,
    # quick replies
    "quick_replies_create": QUICK_REPLY,
    "quick_replies_delete": OK,
    "quick_replies_list_replies": arr(QUICK_REPLY),
    # ticket sinks
    "ticket_sinks_create_sink": TICKET_SINK,
    "ticket_sinks_delete_sink": OK,
    "ticket_sinks_deliveries": ARRAY,
    "ticket_sinks_get_sink": TICKET_SINK,
    "ticket_sinks_list_sinks": arr(TICKET_SINK),
    # ticket_sinks_retry_delivery: from its view.
    "ticket_sinks_retry_delivery": obj(retried=described(INT, "deliveries queued again")),
    "ticket_sinks_sink_types": arr(SINK_TYPE),
    "ticket_sinks_update_sink": TICKET_SINK,
    # tickets
    "tickets_comment": obj(body=STR, email=described(nullable(EMAIL_OUTCOME), "null for "
                                                     "an internal note: never emailed"),
                           id=INT, visibility=STR),
    "tickets_create_ticket": ref("TicketFull"),
    "tickets_get_ticket": ref("TicketFull"),
    "tickets_list_tickets": obj(PAGE, counts=dict_of(INT), items=arr(ref("Ticket"))),
    "tickets_update_ticket": ref("TicketFull"),
    "tickets_visitor_tickets": arr(ref("Ticket")),
    # the widget (visitors)
    "widget_human": obj(_STATE, outcome=STR, rating=ANY),
    "widget_list_messages": obj(conversation=ref("ConversationState"),
                                messages=arr(ref("Message"))),
    "widget_rating": ref("ConversationState"),
    "widget_read": MARKED,
    "widget_send": obj(duplicate=BOOL, message=ref("Message")),
    "widget_session": obj(
        conversation=ref("ConversationState"), earlier=ANY, greeting=STR, messages=ARRAY,
        renew_key=nullable(STR), token=STR, token_expires_at=nullable(DATETIME),
        visitor=obj(name=STR),
        # What the embedding page passed and was not kept (a malformed phone), each as
        # its 422 would say it; message_en when the message was translated.
        warnings=arr(obj(code=STR, field=STR, message=STR, message_en=STR,
                         required=["code", "field", "message"])),
    ),
    "widget_tickets_ticket_form": obj(_TICKET_FORM, max_attachment_bytes=INT,
                                      max_attachments=INT, max_content=INT),
    "widget_tickets_widget_create": ref("VisitorTicket"),
    "widget_tickets_widget_get": ref("VisitorTicket"),
    "widget_tickets_widget_list": arr(ref("VisitorTicket")),
    "widget_tickets_widget_read": ref("VisitorTicket"),
}
