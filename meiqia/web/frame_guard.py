"""Who may put our pages in a frame: nobody, except the widget frame (clickjacking).

Why: a hostile page could load the workspace or an admin page in an invisible
frame and trick a logged-in agent into clicking (end a chat, hand out a token,
change a setting). So every response says ``Content-Security-Policy:
frame-ancestors 'none'`` (appended to a policy the view set itself) and, for
older browsers, ``X-Frame-Options: DENY``.

The one page made to be framed is the widget frame (``/widget/frame``): a view
that sets ``frame-ancestors`` itself keeps it, and gets no X-Frame-Options
(which cannot name several sites). It takes the sites from the team's
``widget.allowed_origins`` setting (``frame_ancestors_for``); none set: any
site, as the one-line embed promises.
"""

from __future__ import annotations

import re
from typing import Any

from flask import Flask
from flask import Response

from meiqia.services.teams import ORIGIN_PATTERN

DENY = "frame-ancestors 'none'"


def frame_ancestors_for(allowed_origins: list[str]) -> str:
    """The widget frame's policy: the team's sites (and ours, for the demo page),
    or any site when the team named none."""
    if not allowed_origins:
        return "frame-ancestors *"
    # Only what the setting's pattern allows reaches the header (a stored value is
    # checked again here: a header cannot carry a newline or a second directive).
    sites = [o for o in allowed_origins
             if isinstance(o, str) and re.fullmatch(ORIGIN_PATTERN[1:-1], o)]
    return "frame-ancestors 'self' " + " ".join(sites)


def guard(response: Response) -> Response:
    """Add the frame policy to a response that does not state one of its own."""
    policy = response.headers.get("Content-Security-Policy", "")
    if "frame-ancestors" in policy:
        return response  # the view decided (the widget frame)
    response.headers["Content-Security-Policy"] = f"{policy}; {DENY}" if policy else DENY
    response.headers["X-Frame-Options"] = "DENY"
    return response


def init_app(app: Flask) -> None:
    @app.after_request
    def _frame_guard(response: Response) -> Any:
        return guard(response)
