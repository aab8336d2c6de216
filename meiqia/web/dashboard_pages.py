"""The home dashboard page (首页): now, today and charts over a range of team days.

A thin view, like every page of the shell: it renders the page and its ES
module (``static/js/dashboard.js``), which reads ``GET /api/v1/dashboard`` in
the browser, so the page shows exactly the figures the agent's scope allows.
The charts are inline SVG drawn by ``static/js/charts.js`` (no library, no
build step). Logged-in agents land here from ``/`` (see ``pages.index``).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint
from flask import Flask

from meiqia.web.workspace import add_nav
from meiqia.web.workspace import render_page

bp = Blueprint("dashboard_pages", __name__, template_folder="templates")


@bp.get("/dashboard")
def dashboard() -> Any:
    """The dashboard shell; the figures come from the API (the range is in the URL)."""
    return render_page("dashboard.html", "nav.dashboard", "dashboard")


def init_app(app: Flask) -> None:
    """Register the page and put it first in the top navigation."""
    app.register_blueprint(bp)
    add_nav("dashboard_pages.dashboard", "nav.dashboard", "dashboard", 5)
