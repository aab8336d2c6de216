"""Quick replies API: list, ``#keyword`` search, create, edit, delete.

Team-wide replies are written by admins and read by every agent of the team;
personal ones belong to one agent and are invisible (404) to everyone else.
"""

from __future__ import annotations

from flask import g
from flask import request

from meiqia.services import quick_replies
from meiqia.web.api import route

REPLY = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"}, "keyword": {"type": "string"},
        "title": {"type": "string"}, "body": {"type": "string"},
        "category": {"type": "string"},
        "team": {"type": "boolean", "description": "team-wide (else personal)"},
    },
}
REPLIES = {"type": "array", "items": REPLY}


@route("/quick-replies", summary="The team's quick replies and my personal ones",
       tags=["quick replies"], response=REPLIES)
def list_replies() -> list:
    return quick_replies.list_for(g.actor)


@route("/quick-replies/search", summary="#keyword autocomplete: prefix, then fuzzy; at most 10",
       tags=["quick replies"], response=REPLIES,
       query={"type": "object", "properties": {"q": {
           "type": "string", "description": "What follows # (a leading # is ignored); "
                                            "full-width, traditional and case fold."}}})
def search() -> list:
    return quick_replies.search(g.actor, request.args.get("q", ""))


@route("/quick-replies", ("POST",), summary="Create (team: true for team-wide, admins only)",
       body=quick_replies.SCHEMA, status=201, tags=["quick replies"], response=REPLY,
       description="A keyword is unique per owner (the team, or one agent): 409 otherwise.")
def create(body: dict) -> dict:
    return quick_replies.to_dict(quick_replies.create(g.actor, body))


@route("/quick-replies/<int:reply_id>", ("PATCH",), summary="Change a quick reply",
       body=quick_replies.UPDATE_SCHEMA, tags=["quick replies"], response=REPLY)
def update(reply_id: int, body: dict) -> dict:
    return quick_replies.to_dict(quick_replies.update(g.actor, reply_id, body))


@route("/quick-replies/<int:reply_id>", ("DELETE",), summary="Delete a quick reply",
       tags=["quick replies"])
def delete(reply_id: int) -> dict:
    quick_replies.delete(g.actor, reply_id)
    return {"ok": True}
