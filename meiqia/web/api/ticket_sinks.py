"""Ticket sinks API (admins): sink types and their forms, instances, deliveries."""

from __future__ import annotations

from flask import g
from flask import request

from meiqia.services import ticket_sinks
from meiqia.web import i18n
from meiqia.web.api import route

TAGS = ["ticket sinks"]


@route("/ticket-sinks/types", summary="Sink types and the schemas of their settings forms",
       auth="admin", tags=TAGS,
       description="`name`: the type's name in the caller's language (`X-Meiqia-Lang`, "
       "else Accept-Language; English when it says none); so are its fields' `title`, "
       "`description` and `enumNames` in `schema`.")
def sink_types() -> list:
    return ticket_sinks.types("en" if i18n.error_language() == "en" else "zh-CN")


@route("/ticket-sinks", summary="Configured ticket sinks (secrets masked)", auth="admin",
       tags=TAGS)
def list_sinks() -> list:
    return ticket_sinks.list_sinks(g.actor)


@route("/ticket-sinks", ("POST",), summary="Configure a sink", auth="admin",
       body=ticket_sinks.SINK_SCHEMA, status=201, tags=TAGS)
def create_sink(body: dict) -> dict:
    return ticket_sinks.to_dict(ticket_sinks.create(g.actor, body))


@route("/ticket-sinks/<int:sink_id>", summary="One sink (secrets masked)", auth="admin",
       tags=TAGS)
def get_sink(sink_id: int) -> dict:
    return ticket_sinks.to_dict(ticket_sinks.get(g.actor, sink_id))


@route("/ticket-sinks/<int:sink_id>", ("PATCH",), summary="Change a sink", auth="admin",
       body=ticket_sinks.SINK_UPDATE_SCHEMA, tags=TAGS)
def update_sink(sink_id: int, body: dict) -> dict:
    """Send a secret back as `********` to keep it unchanged, only while the fields that
    decide where it goes (host, port, URL, STARTTLS, user name, the schema's
    `secret_bound_to`) are unchanged: with one changed it is a 422 naming the secret
    (a saved secret is only sent to the server it was saved for); type it again."""
    return ticket_sinks.to_dict(ticket_sinks.update(g.actor, sink_id, body))


@route("/ticket-sinks/<int:sink_id>", ("DELETE",), summary="Remove a sink", auth="admin",
       tags=TAGS)
def delete_sink(sink_id: int) -> dict:
    ticket_sinks.delete(g.actor, sink_id)
    return {"ok": True}


@route("/ticket-sinks/deliveries", summary="Deliveries, newest first (status=failed: "
       "what failed every attempt)", auth="admin", tags=TAGS,
       query={"type": "object", "properties": {
           "status": {"type": "string", "enum": list(ticket_sinks.DELIVERY_STATUSES)}}})
def deliveries() -> list:
    from meiqia.web import error_text
    from meiqia.web import i18n

    lang = i18n.error_language()
    rows = ticket_sinks.deliveries(g.actor, request.args.get("status") or None)
    for row in rows:
        # Stored in English as "ExceptionName: message"; read as the reason alone, in
        # the admin's language (the English reason in last_error_en when translated):
        # no class names in an error field (docs/security.md §10).
        text, english = error_text.read_stored(row.get("last_error") or "", lang)
        row["last_error"] = text
        if english is not None:
            row["last_error_en"] = english
    return rows


@route("/ticket-sinks/deliveries/<int:delivery_id>/retry", ("POST",),
       summary="Retry an undelivered (pending or failed) delivery now", auth="admin",
       tags=TAGS,
       description="Its `attempts` go back to 0 and the whole automatic schedule (the first "
       "try and every retry) runs again. 409 once it is delivered, or while it is being "
       "sent.")
def retry_delivery(delivery_id: int) -> dict:
    return {"retried": ticket_sinks.retry(g.actor, delivery_id)}
