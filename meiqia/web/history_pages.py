"""The history pages (历史对话): the filtered list of ended conversations with
its column chooser and transcript panel, and "my exports" with live progress.

Thin views, like ``web.workspace``: the page shell and the ES module; the data
comes from the JSON API (``/api/v1/history``, ``/api/v1/history/exports``,
``/api/v1/conversations/<id>``) in the browser, so the pages show exactly what
``services.permissions`` lets the agent see. The filter lives in the page's
query string, so a reload, a bookmark and the export page all share it.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint
from flask import Flask

from meiqia.services import history
from meiqia.web.workspace import add_nav
from meiqia.web.workspace import render_page

bp = Blueprint("history_pages", __name__)

#: Right after the workspace in the top navigation (the dashboard is 5).
NAV_ORDER = 3


def init_app(app: Flask) -> None:
    """Register the pages and put "history" in the top navigation."""
    app.register_blueprint(bp)
    add_nav("history_pages.history", "nav.history", "history", NAV_ORDER)


@bp.get("/history", endpoint="history")
def history_page() -> Any:
    """The list; every column the server knows is passed so the chooser can offer
    the ones the agent has hidden (the API returns only the chosen ones)."""
    from meiqia.channels import registry
    from meiqia.web import i18n

    lang = "en" if i18n.language() == "en" else "zh-CN"
    slugs = sorted({"web", *registry.channel_classes()})
    return render_page("history.html", "nav.history", "history",
                       history_columns=list(history.COLUMNS),
                       history_channels=[(s, registry.names(s)[lang]) for s in slugs])


@bp.get("/history/exports", endpoint="exports")
def exports_page() -> Any:
    """My exports (admins: the team's), and starting one of the filter in the URL."""
    return render_page("history_exports.html", "history.exports", "history")
