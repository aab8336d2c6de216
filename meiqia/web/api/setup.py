"""The dashboard's first-run checklist (issue 17, item 1; ``services/onboarding.py``)."""

from __future__ import annotations

from typing import Any

from flask import g
from flask import url_for

from meiqia.services import onboarding
from meiqia.web.api import route

SETUP_OUT = {
    "type": "object",
    "properties": {
        "steps": {"type": "array", "items": {"type": "object", "properties": {
            "key": {"type": "string", "enum": list(onboarding.STEPS)},
            "done": {"type": "boolean"}}}},
        "done": {"type": "integer"},
        "total": {"type": "integer"},
        "all_done": {"type": "boolean"},
        "dismissed": {"type": "boolean"},
        "snippet": {"type": "string", "description": "the widget's embed code for this team"},
        "demo_url": {"type": "string", "description": "the demo page with this team's widget"},
    },
}


def _answer(state: dict[str, Any]) -> dict[str, Any]:
    team_id = g.actor.team_id
    script = url_for("widget.script", _external=True)
    return {**state,
            "snippet": f'<script src="{script}" data-team="{team_id}" async></script>',
            "demo_url": url_for("widget.demo", team=team_id, _external=True)}


@route("/setup", summary="The first-run checklist: each step and whether it is done",
       auth="admin", response=SETUP_OUT, tags=["team"],
       description="Every step is derived from the team's data (a visitor from a page "
       "other than the demo, a second active agent, a knowledge-base edit, the team's own "
       "welcome message, working hours chosen), never from a click.")
def get_setup() -> dict:
    from meiqia.models import Team

    return _answer(onboarding.checklist(Team.get_by_id(g.actor.team_id),
                                        url_for("widget.demo")))


@route("/setup/dismiss", ("POST",), summary="Hide the first-run checklist (all steps done)",
       auth="admin", response=SETUP_OUT, tags=["team"])
def dismiss_setup() -> dict:
    return _answer(onboarding.dismiss(g.actor, url_for("widget.demo")))
