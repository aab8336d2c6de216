"""History API (历史对话): the filtered list, column choice, a customer's recent
conversations for the sidebar, and the conversation rules that grade the history.

Exports and the dashboard have their own modules (exports.py, dashboard.py).
"""

from __future__ import annotations

from flask import g
from flask import request

from meiqia.services import figures
from meiqia.services import history
from meiqia.web.api import query_int
from meiqia.web.api import route

FILTER_NAMES = ["customer_name", "ended_from", "ended_to", "agent_id", "agent_name",
                "customer_tags", "region", "phone", "content", "note", "tags", "summary",
                "source", "platform", "rating", "grade", "lead", "invalid", "missed",
                "duration_min", "duration_max", "first_response_min", "first_response_max",
                "landing_page", "keyword", "ip", "channel"]
FILTER_QUERY = {"type": "object", "properties": {
    **{name: {"type": "string"} for name in FILTER_NAMES},
    "page": {"type": "integer", "minimum": 1},
    "per_page": {"type": "integer", "minimum": 1, "maximum": 100}}}


def _filters() -> dict:
    return {name: request.args.get(name) for name in FILTER_NAMES if request.args.get(name)}


@route("/history", summary="Ended conversations, filtered, in my scope", query=FILTER_QUERY,
       tags=["history"])
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
