"""Admin pages for quick replies, conversation rules, sidebar iframe plugins,
ticket sinks and plugins.

Thin views like ``web.workspace``: each renders the page shell and its ES module;
the browser reads and writes through the JSON API (``/api/v1/quick-replies``,
``/api/v1/conversation-rules`` and ``/api/v1/jobs``, ``/api/v1/iframe-plugins``,
``/api/v1/ticket-sinks``, ``/api/v1/plugins``), so a page can do exactly what the API lets an admin
do. Agents get 404, like every admin page.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint
from flask import Flask

from meiqia.services import iframe_plugins
from meiqia.web.workspace import add_admin_tab
from meiqia.web.workspace import render_page

bp = Blueprint("admin_extra_pages", __name__, template_folder="templates")

#: (endpoint, label key, order): after the knowledge-base tabs (40, 45).
TABS = (
    ("admin_extra_pages.quick_replies", "qra.title", 50),
    ("admin_extra_pages.conversation_rules", "rules.title", 60),
    ("admin_extra_pages.iframe_plugins_page", "ifp.title", 70),
    ("admin_extra_pages.ticket_sinks", "sinks.title", 80),
    ("admin_extra_pages.plugins", "plg.title", 90),
)


@bp.get("/admin/quick-replies")
def quick_replies() -> Any:
    """Team-wide quick replies: keyword, content, category."""
    return render_page("admin/quick_replies.html", "qra.title", "admin", admin=True)


@bp.get("/admin/conversation-rules")
def conversation_rules() -> Any:
    """Grading thresholds and the inactivity rule; saving regrades the history."""
    return render_page("admin/conversation_rules.html", "rules.title", "admin", admin=True)


@bp.get("/admin/iframe-plugins")
def iframe_plugins_page() -> Any:
    """Sidebar iframe panels: the secret is shown once, with a verification example."""
    return render_page("admin/iframe_plugins.html", "ifp.title", "admin", admin=True,
                       token_salt=iframe_plugins.TOKEN_SALT,
                       token_ttl=iframe_plugins.token_ttl())


@bp.get("/admin/ticket-sinks")
def ticket_sinks() -> Any:
    """Webhook and email sinks (forms from each type's schema), recent deliveries."""
    return render_page("admin/ticket_sinks.html", "sinks.title", "admin", admin=True)


@bp.get("/admin/plugins")
def plugins() -> Any:
    """Every plugin: state, recent errors, latency; turn off/on for the team, reset."""
    return render_page("admin/plugins.html", "plg.title", "admin", admin=True)


def init_app(app: Flask) -> None:
    """Register the pages and put them among the admin tabs."""
    app.register_blueprint(bp)
    for endpoint, key, order in TABS:
        add_admin_tab(endpoint, key, order)
