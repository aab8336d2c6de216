"""The visitor widget: ``/widget.js`` (the one-line embed), its frame, the demo shop.

``<script src="https://support.example.com/widget.js" data-team="1" async></script>``
adds a button and a panel to any site. The panel is an iframe of
``/widget/frame`` on this server, so the chat talks to our API and websocket
from our own origin (no CORS, no cookies of the embedding site, its CSS cannot
break ours and ours cannot break its). The loader passes the embedding page's
URL, referrer, title and the visitor's name, contact and custom info to the
frame with ``postMessage``. ``/demo`` is a fictional shop with the widget on it.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint
from flask import make_response
from flask import render_template
from flask import request
from flask import send_from_directory

from meiqia.services import messages
from meiqia.services import teams
from meiqia.services.errors import NotFound
from meiqia.web import frame_guard
from meiqia.web import i18n
from meiqia.web.workspace import WEB_DIR
from meiqia.web.workspace import catalogue

bp = Blueprint("widget", __name__, template_folder="templates")

#: Upload limits the widget checks before sending (the server checks again).
LIMITS = {"image": "MAX_IMAGE_BYTES", "file": "MAX_FILE_BYTES"}


def _team_id(default: int | None = None) -> int:
    raw = request.args.get("team", default)
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise NotFound("no such team") from None


@bp.get("/widget.js")
def script() -> Any:
    """The loader: a classic script, safe to embed on any page."""
    response = make_response(send_from_directory(WEB_DIR / "static" / "js", "widget-loader.js",
                                                 max_age=300))
    response.headers["Content-Type"] = "application/javascript; charset=utf-8"
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response


@bp.get("/widget/frame")
def frame() -> Any:
    """The chat panel, loaded by the loader in an iframe (or opened on its own)."""
    from flask import current_app

    config = teams.widget_config(_team_id())
    if config is None:
        raise NotFound("no such team")
    lang = i18n.language()
    strings = {k: v for k, v in catalogue(lang).items() if k.startswith(("widget.", "time."))}
    boot = {
        "team": config,
        "lang": lang,
        "i18n": strings,
        "limits": {kind: current_app.config[key] for kind, key in LIMITS.items()},
        "max_body": messages.MAX_BODY,
        "token_days": current_app.config["VISITOR_TOKEN_DAYS"],
    }
    response = make_response(render_template("widget_frame.html", boot=boot, config=config))
    # The frame is meant to be embedded on the team's sites (any site when the team
    # named none); it reads nothing of its parent. Every other page: never framed.
    response.headers["Content-Security-Policy"] = frame_guard.frame_ancestors_for(
        teams.allowed_origins(config["id"]))
    return response


@bp.get("/demo")
def demo() -> Any:
    """A fictional shop with the widget, for trying it out (``?team=`` picks the team)."""
    team_id = _team_id(1)
    return render_template("demo.html", team_id=team_id, lang=request.args.get("lang", ""))
