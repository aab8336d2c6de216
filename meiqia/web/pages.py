"""Server-rendered pages: log in, register the team, log out, home (admins → the
dashboard, agents → the workspace)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint
from flask import redirect
from flask import render_template
from flask import request
from flask import url_for

from meiqia.services import accounts
from meiqia.services.errors import RateLimited
from meiqia.services.errors import ServiceError
from meiqia.web import error_text
from meiqia.web import i18n
from meiqia.web import security
from meiqia.web.workspace import safe_next

bp = Blueprint("pages", __name__)


@bp.get("/")
def index() -> Any:
    agent = security.session_agent()
    if agent is None:
        return redirect(url_for("pages.login"))
    # Agents come to answer chats; admins to run the team (and its first-run checklist).
    if not agent.is_admin:
        return redirect(url_for("workspace.workspace"))
    return redirect(url_for("dashboard_pages.dashboard"))


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    error = None
    status, headers = 200, {}
    if request.method == "POST":
        try:
            security.check_csrf(request.form.get("csrf_token"))
            agent = accounts.authenticate(
                request.form.get("email", ""),
                request.form.get("password", ""),
                security.client_ip(),
            )
        except ServiceError as exc:
            error = error_text.translate(exc.message, i18n.language())
            # Throttled: 429 and when to try again, as the API's login answers
            # (docs/security.md §4); any other refusal: 401.
            status = 429 if isinstance(exc, RateLimited) else 401
            if isinstance(exc, RateLimited) and exc.retry_after:
                headers["Retry-After"] = str(int(exc.retry_after))
        else:
            security.login(agent)
            # Back to the page that asked for the login (render_page passes ?next=).
            return redirect(safe_next(request.args.get("next")))
    return (
        render_template(
            "login.html", error=error, can_register=accounts.registration_open(),
            email=request.form.get("email") or request.args.get("email", ""),
            # Back from a password reset link (password_reset_pages): say it worked.
            notice=i18n.t("reset.done") if request.args.get("reset") and not error else None,
        ),
        status,
        headers,
    )


@bp.route("/register", methods=["GET", "POST"])
def register() -> Any:
    error = None
    field = None
    if request.method == "POST":
        try:
            security.check_csrf(request.form.get("csrf_token"))
            data = {
                key: request.form.get(key, "")
                for key in ("team_name", "name", "email", "password")
            }
            agent = accounts.register_team(data, security.client_ip())
        except ServiceError as exc:
            error = error_text.translate(exc.message, i18n.language(), "register")
            field = exc.field
        else:
            security.login(agent)
            return redirect(url_for("pages.index"))
    return (
        render_template(
            "register.html", error=error, field=field, form=request.form,
            open=accounts.registration_open(),
        ),
        422 if error else 200,
    )


@bp.post("/logout")
def logout() -> Any:
    security.check_csrf(request.form.get("csrf_token"))
    security.logout()
    return redirect(url_for("pages.login"))
