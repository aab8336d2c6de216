"""The admin Channels page (issue 16): every installed channel with a form
generated from its ``configuration_schema()``, enabled per team, "test
connection". A thin view: the page reads and writes through ``/api/v1/channels``,
so it can do exactly what the API lets an admin do. Agents get 404.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint
from flask import Flask

from meiqia.web.workspace import add_admin_tab
from meiqia.web.workspace import render_page

bp = Blueprint("channel_pages", __name__, template_folder="templates")


@bp.get("/admin/channels")
def channels() -> Any:
    """Channels: settings forms (secrets write-only), on/off, test connection."""
    return render_page("admin/channels.html", "chn.title", "admin", admin=True)


def init_app(app: Flask) -> None:
    """Register the page and put it among the admin tabs (before the ticket sinks)."""
    app.register_blueprint(bp)
    add_admin_tab("channel_pages.channels", "chn.title", 75)
