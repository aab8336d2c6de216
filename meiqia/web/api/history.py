"""History API (历史对话): the filtered list, column choice, a customer's recent
conversations for the sidebar, and the conversation rules that grade the history.

Exports and the dashboard have their own modules (exports.py, dashboard.py).
"""

from __future__ import annotations

from flask import g
from flask import request

from meiqia.services import figures
from meiqia.services import history
from meiqia.services.validation import PAGE
from meiqia.web.api import query_int
from meiqia.web.api import route

FILTER_NAMES = list(history.FILTERS)
#: The filters as ``services.history`` checks them (``FILTERS``), and the page; no
#: other name (``check_query``: a misspelt filter is a 422, not the whole history).
FILTER_QUERY = {"type": "object", "additionalProperties": False, "properties": {
    **history.FILTERS, "page": PAGE,
    "per_page": {"type": "integer", "minimum": 1, "maximum": 100}}}
#: What the list and the ticket list say of names they do not take.
UNKNOWN_QUERY = ("A query parameter this operation does not take (a misspelt filter) is a "
                 "422 `invalid` naming it and listing the accepted ones (`lang` aside), "
                 "never ignored.")


def _filters() -> dict:
    return {name: request.args.get(name) for name in FILTER_NAMES if request.args.get(name)}


@route("/history", summary="Ended conversations, filtered, in my scope", query=FILTER_QUERY,
       tags=["history"], description=UNKNOWN_QUERY)
def search() -> dict:
    return history.search(g.actor, _filters(), page=query_int("page", 1, 1),
                          per_page=query_int("per_page", 20, 1, 100))


@route("/history/columns", ("PUT",), summary="Choose and order my history columns",
       tags=["history"],
       body={"type": "object", "required": ["columns"], "additionalProperties": False,
             "properties": {"columns": {"type": "array", "items": {"type": "string"},
                                        "maxItems": 40}}})
def set_columns(body: dict) -> dict:
    return {"columns": history.set_columns(g.actor, body["columns"]),
            "available": history.COLUMNS}


@route("/visitors/<int:visitor_id>/conversations",
       summary="A customer's conversations of the last month (sidebar)", tags=["history"])
def customer_conversations(visitor_id: int) -> list:
    return history.customer_recent(g.actor, visitor_id)


@route("/conversation-rules", summary="Grading thresholds and the inactivity rule",
       tags=["history"])
def get_rules() -> dict:
    rule = figures.rules_of(g.actor.team_id)
    return {"grades": rule.grades, "inactivity_minutes": rule.inactivity_minutes,
            "bot_inactivity_minutes": rule.bot_inactivity_minutes}


@route("/conversation-rules", ("PUT",), summary="Change the rules (regrades history as a job)",
       auth="admin", body=figures.RULES_SCHEMA, tags=["history"])
def put_rules(body: dict) -> dict:
    rule, job_id = figures.update_rules(g.actor, body)
    return {"grades": rule.grades, "inactivity_minutes": rule.inactivity_minutes,
            "bot_inactivity_minutes": rule.bot_inactivity_minutes, "job_id": job_id}
