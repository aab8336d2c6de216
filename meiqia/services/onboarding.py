"""The first-run checklist of the dashboard (issue 17, item 1).

Each step is ticked from what the team has really done, never from a click:

* ``widget``: a visitor came from a page other than our demo page (the snippet
  runs on the team's site). Opening the demo through "test it" does not count.
* ``agent``: the team has a second active account.
* ``kb``: someone edited, added, removed or imported a knowledge-base entry (the
  audit log; the demo entries ``meiqia init`` imports have no actor).
* ``welcome``: the team wrote its own welcome message.
* ``hours``: working hours chosen (set hours, or "always").

Once every step is done an admin may hide the list (``dismiss``); it stays
hidden for the team (``team.settings["setup_dismissed"]``, written here only).
"""

from __future__ import annotations

from typing import Any

from meiqia.db import database
from meiqia.models import Agent
from meiqia.models import AuditLog
from meiqia.models import Team
from meiqia.models import Visit
from meiqia.services.accounts import audit
from meiqia.services.accounts import require_admin
from meiqia.services.errors import ValidationError
from meiqia.services.teams import settings_of

STEPS = ("widget", "agent", "kb", "welcome", "hours")
KB_ACTIONS = ("kb.create", "kb.update", "kb.delete", "kb.import")
DISMISSED = "setup_dismissed"


def _widget_installed(team_id: int, demo_path: str) -> bool:
    # The demo page is ``<host>/demo`` or ``<host>/demo?team=…``, whatever the host.
    on_demo = (Visit.landing_page.endswith(demo_path)
               | Visit.landing_page.contains(demo_path + "?")
               | Visit.landing_page.contains(demo_path + "#"))
    return (Visit.select(Visit.id)
            .where(Visit.team == team_id, Visit.landing_page != "", ~on_demo)
            .exists())


def steps(team: Team, demo_path: str = "/demo") -> dict[str, bool]:
    """Each step's state, derived from the team's data."""
    settings = settings_of(team)
    return {
        "widget": _widget_installed(team.id, demo_path),
        "agent": Agent.select().where(Agent.team == team.id,
                                      Agent.active == True).count() > 1,  # noqa: E712
        "kb": AuditLog.select(AuditLog.id).where(
            AuditLog.team == team.id, AuditLog.action.in_(KB_ACTIONS),
            AuditLog.actor.is_null(False)).exists(),
        "welcome": bool((settings["welcome_message"] or "").strip()),
        "hours": settings["working_hours"].get("mode") in ("always", "hours"),
    }


def checklist(team: Team, demo_path: str = "/demo") -> dict[str, Any]:
    """What the dashboard shows: the steps in order, counts, whether it is hidden."""
    state = steps(team, demo_path)
    done = sum(state.values())
    return {
        "steps": [{"key": key, "done": state[key]} for key in STEPS],
        "done": done,
        "total": len(STEPS),
        "all_done": done == len(STEPS),
        "dismissed": bool((team.settings or {}).get(DISMISSED)),
    }


def dismiss(actor: Agent, demo_path: str = "/demo") -> dict[str, Any]:
    """Hide the list for the team; only once every step is done (422 before)."""
    require_admin(actor)
    team = Team.get_by_id(actor.team_id)
    if not checklist(team, demo_path)["all_done"]:
        raise ValidationError("the checklist can be hidden once every step is done")
    with database.atomic():
        team.settings = {**(team.settings or {}), DISMISSED: True}
        team.save()
        audit(actor, "setup.dismiss", "team", team.id)
    return checklist(team, demo_path)
