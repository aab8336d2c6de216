"""What plugins add to the page shell: the ``menu_links`` of the top bar.

A context processor gives templates ``plugin_menu_links(agent)``, which asks
every plugin's ``menu_links(actor, request)`` hook when the top bar is drawn
(only on pages that have one) and keeps links that are safe to render: an
http(s) URL or a path of this site, and a label, always shown as text.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

from flask import Flask
from flask import request

from meiqia.services import events

log = logging.getLogger(__name__)

#: Links beyond this many are not drawn (a top bar has little room).
MAX_LINKS = 8


def safe_href(href: Any) -> str | None:
    """``href`` if it is an http(s) URL or a local path, else None."""
    if not isinstance(href, str):
        return None
    href = href.strip()
    if any(c.isspace() or ord(c) < 32 for c in href) or not href:
        return None
    if href.startswith("/") and not href.startswith("//"):
        return href
    parts = urlsplit(href)
    if parts.scheme.lower() in {"http", "https"} and parts.hostname:
        return href
    return None


def menu_links(actor: Any) -> list[dict[str, Any]]:
    """The plugins' links for ``actor``: ``{"href", "label", "external"}`` dicts."""
    if actor is None:
        return []
    links = []
    for link in events.plugins().call_flat("menu_links", actor=actor, request=request):
        href = safe_href(link.get("href")) if isinstance(link, dict) else None
        label = str(link.get("label") or "").strip()[:40] if isinstance(link, dict) else ""
        if href is None or not label:
            log.error("menu link skipped (needs an http(s) or local href and a label): %.120r",
                      link)
            continue
        links.append({"href": href, "label": label, "external": not href.startswith("/")})
    return links[:MAX_LINKS]


def init_app(app: Flask) -> None:
    @app.context_processor
    def _plugin_links() -> dict[str, Any]:
        return {"plugin_menu_links": menu_links}
