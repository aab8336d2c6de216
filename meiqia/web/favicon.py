"""The site icon at the two addresses browsers ask for (issue 17, item 6).

``/favicon.svg`` is what every page links (``base.html``, the widget frame, the
demo); ``/favicon.ico`` is what a browser asks on its own for a page without a
link (the API document, an error page): both answer instead of a 404 in the log.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint
from flask import current_app
from flask import send_from_directory

bp = Blueprint("favicon", __name__)

#: A week: the icon changes with a release at most.
MAX_AGE = 7 * 86400


@bp.get("/favicon.svg")
def svg() -> Any:
    return send_from_directory(current_app.static_folder, "favicon.svg",
                               mimetype="image/svg+xml", max_age=MAX_AGE)


@bp.get("/favicon.ico")
def ico() -> Any:
    return send_from_directory(current_app.static_folder, "favicon.ico",
                               mimetype="image/vnd.microsoft.icon", max_age=MAX_AGE)
