"""Admin pages of the knowledge base: the entry editor and the unrecognised questions.

Thin views like ``web.workspace``: each renders the page shell and its ES module,
and the browser reads and writes through the JSON API (``/api/v1/knowledge``,
``/api/v1/bot/...``, ``/api/v1/jobs``), so the pages can do exactly what the API
allows an admin and nothing more. Agents get 404, like every admin page. The bot
thresholds stay on the team settings page, which already explains them; these
pages only show the current values next to the "try the bot" results.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint
from flask import Flask

from meiqia.web.workspace import add_admin_tab
from meiqia.web.workspace import render_page

bp = Blueprint("knowledge_pages", __name__, template_folder="templates")


@bp.get("/admin/knowledge")
def knowledge() -> Any:
    """Entries: search, pages, edit, import with progress, export, try the bot."""
    return render_page("admin/knowledge.html", "kb.title", "admin", admin=True)


@bp.get("/admin/unrecognised")
def unrecognised() -> Any:
    """Questions the bot could not answer, grouped by topic, largest group first."""
    return render_page("admin/unrecognised.html", "kb.unrecognised", "admin", admin=True)


def init_app(app: Flask) -> None:
    """Register the pages and put them among the admin tabs, after groups."""
    app.register_blueprint(bp)
    add_admin_tab("knowledge_pages.knowledge", "kb.title", 40)
    add_admin_tab("knowledge_pages.unrecognised", "kb.unrecognised", 45)
