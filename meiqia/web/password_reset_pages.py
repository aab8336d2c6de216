"""The page behind an admin's one-time password reset link (issue 17, item 3).

Server-rendered like the login page (it works without the app's scripts), in the
agent's own language: his preference, else his team's (``?lang=`` still wins).
The secret is in the path, so the page sends no Referer anywhere and is never
cached. After a success the agent is sent to the login page with his email filled.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint
from flask import Response
from flask import redirect
from flask import render_template
from flask import request
from flask import url_for

from meiqia.models import Agent
from meiqia.services import password_reset
from meiqia.services.errors import ServiceError
from meiqia.web import error_text
from meiqia.web import i18n
from meiqia.web import security

bp = Blueprint("password_reset_pages", __name__)


def _speak_as(agent: Agent | None) -> None:
    """Render in the agent's language unless the URL asks for one."""
    if agent is None or i18n.normalise(request.args.get("lang")):
        return
    lang = (agent.preferences or {}).get("language") or agent.team.language
    if lang in i18n.LANGUAGES:
        request.environ["meiqia.lang"] = lang


def _private(response: Response) -> Response:
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/reset-password/<token>", methods=["GET", "POST"])
def reset(token: str) -> Any:
    if request.method == "POST":
        security.check_csrf(request.form.get("csrf_token"))  # 403 before anything else
    try:
        agent = password_reset.agent_of_link(token)
    except ServiceError as exc:
        return _private(Response(render_template(
            "reset_password.html", dead=error_text.translate(exc.message, i18n.language()),
            error=None, email=""), status=exc.status))
    _speak_as(agent)
    error = None
    if request.method == "POST":
        try:
            if request.form.get("password", "") != request.form.get("password2", ""):
                raise password_reset.ValidationError(
                    "password2: the two passwords differ", "password2")
            password_reset.use_link(token, request.form.get("password", ""),
                                    ip=security.client_ip())
        except ServiceError as exc:
            error = error_text.translate(exc.message, i18n.language())
        else:
            return redirect(url_for("pages.login", reset="1", email=agent.email,
                                    lang=i18n.language()))
    return _private(Response(render_template(
        "reset_password.html", dead=None, error=error, email=agent.email),
        status=422 if error else 200))
