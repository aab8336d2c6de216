"""The agent's pages: workspace, admin, history, dashboard, tickets (thin views).

Every view renders the page shell (top nav, language and status switch, log
out) and the page's ES module; the data comes from the JSON API in the
browser, so a page shows exactly what the API lets this agent see and there is
one place (``services.permissions``) that decides it. Admin-only pages answer
404 to agents, like anything outside their scope.

This module also tells Flask where the web templates and static files live
(``meiqia/web/templates``, ``meiqia/web/static``) and loads the UI strings of
``static/i18n.json`` and ``static/i18n/*.json`` into the catalogue of
``web.i18n``: the same strings serve the templates (``t(key)``) and the browser
(passed to each page as JSON).

Other page modules of ``meiqia.web`` add themselves to the top navigation and the
admin tabs with ``add_nav``/``add_admin_tab`` and keep their strings in their own
``static/i18n/<area>.json``, so a page area is one module, one template, one
script and one strings file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from flask import Blueprint
from flask import Flask
from flask import redirect
from flask import render_template
from flask import request
from flask import url_for

from meiqia.services import accounts
from meiqia.services import routing
from meiqia.services import teams
from meiqia.services.errors import NotFound
from meiqia.web import i18n
from meiqia.web import security

WEB_DIR = Path(__file__).parent
STRINGS_FILE = WEB_DIR / "static" / "i18n.json"
STRINGS_DIR = WEB_DIR / "static" / "i18n"

bp = Blueprint("workspace", __name__, template_folder="templates")

#: The top navigation after "workspace": (order, endpoint, label key, nav name).
_NAV: list[tuple[int, str, str, str]] = []
#: Tabs of the admin area: (order, endpoint, label key).
_ADMIN_TABS: list[tuple[int, str, str]] = [
    (10, "workspace.admin_settings", "admin.settings"),
    (20, "workspace.admin_agents", "admin.agents"),
    (30, "workspace.admin_groups", "admin.groups"),
]


def add_nav(endpoint: str, label_key: str, name: str, order: int) -> None:
    """Put a page in the top navigation (lower ``order`` further left); idempotent."""
    entry = (order, endpoint, label_key, name)
    if entry not in _NAV:
        _NAV.append(entry)
        _NAV.sort()


def add_admin_tab(endpoint: str, label_key: str, order: int) -> None:
    """Put a page among the admin tabs (lower ``order`` further left); idempotent."""
    entry = (order, endpoint, label_key)
    if entry not in _ADMIN_TABS:
        _ADMIN_TABS.append(entry)
        _ADMIN_TABS.sort()


def load_strings() -> dict[str, dict[str, str]]:
    """The UI catalogue: ``{"zh-CN": {key: text}, "en": {...}}`` from every file."""
    merged: dict[str, dict[str, str]] = {}
    for path in [STRINGS_FILE, *sorted(STRINGS_DIR.glob("*.json"))]:
        with path.open(encoding="utf-8") as fh:
            for lang, strings in json.load(fh).items():
                merged.setdefault(lang, {}).update(strings)
    return merged


def init_app(app: Flask) -> None:
    app.static_folder = str(WEB_DIR / "static")
    i18n.add(load_strings())
    app.register_blueprint(bp)

    @app.context_processor
    def _navigation() -> dict[str, Any]:
        return {
            "main_nav": [entry[1:] for entry in _NAV],
            "admin_tabs": [entry[1:] for entry in _ADMIN_TABS],
        }


def catalogue(lang: str) -> dict[str, str]:
    """Every string of a language, English filling what is not translated."""
    return {**i18n.CATALOG["en"], **i18n.CATALOG.get(lang, {})}


def boot_data(agent: Any) -> dict[str, Any]:
    """What every page's script starts from (rendered as JSON, never as HTML)."""
    lang = i18n.language()
    return {
        "agent": accounts.agent_to_dict(agent),
        "team": teams.team_to_dict(agent.team),
        "csrf": security.csrf_token(),
        "lang": lang,
        "i18n": catalogue(lang),
    }


def render_page(template: str, title_key: str, nav: str, admin: bool = False,
                **context: Any) -> Any:
    """Render a page of the shell for the logged-in agent (login first if none)."""
    agent = security.session_agent()
    if agent is None:
        return redirect(url_for("pages.login", next=request.path))
    if admin and not agent.is_admin:
        raise NotFound("no such page")
    return render_template(template, agent=agent, title=i18n.t(title_key), nav=nav,
                           boot=boot_data(agent), **context)


@bp.get("/workspace")
def workspace() -> Any:
    return render_page("workspace.html", "nav.workspace", "workspace")


@bp.get("/admin/")
@bp.get("/admin/settings")
def admin_settings() -> Any:
    return render_page("admin/settings.html", "admin.settings", "admin", admin=True,
                       embed_url=url_for("widget.script", _external=True),
                       default_welcome=teams.DEFAULT_WELCOME[i18n.language()],
                       default_offline=routing.LEAVE_MESSAGE_TEXT[i18n.language()])


@bp.get("/admin/agents")
def admin_agents() -> Any:
    return render_page("admin/agents.html", "admin.agents", "admin", admin=True)


@bp.get("/admin/groups")
def admin_groups() -> Any:
    return render_page("admin/groups.html", "admin.groups", "admin", admin=True)


@bp.get("/tokens")
def tokens() -> Any:
    return render_page("tokens.html", "nav.tokens", "tokens")


def safe_next(target: str | None) -> str:
    """A local path to go back to (never another site)."""
    if not target:
        return "/"
    parsed = urlparse(target)
    if parsed.scheme or parsed.netloc or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target


@bp.get("/lang/<code>")
def switch_language(code: str) -> Any:
    """Remember the chosen language in a cookie and go back."""
    if code not in i18n.LANGUAGES:
        raise NotFound("no such language")
    response = redirect(safe_next(request.args.get("next")))
    response.set_cookie("lang", code, max_age=365 * 86400, samesite="Lax", httponly=True)
    agent = security.session_agent()
    if agent is not None and (agent.preferences or {}).get("language") != code:
        # His setting, also where no page asks: the exports a job writes for him.
        from meiqia.models import Agent

        prefs = {**(agent.preferences or {}), "language": code}
        Agent.update(preferences=prefs).where(Agent.id == agent.id).execute()
    return response
