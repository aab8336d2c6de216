"""What plugins add to the page shell: the ``menu_links`` of the top bar.

A context processor gives templates ``plugin_menu_links(agent)``, which asks
every plugin's ``menu_links(actor, request)`` hook when the top bar is drawn
(only on pages that have one) and keeps links that are safe to render: an
http(s) URL or a path of this site, and a label, always shown as text.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import Flask
from flask import request

from meiqia.services import events
from meiqia.services.iframe_plugins import text_problem

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


def link_problem(link: Any) -> str | None:
    """Why a plugin's menu link cannot be drawn (said without its values), or None:
    a dict with an ``href`` that is an http(s) URL or a path of this site and a
    ``label`` (text, not blank)."""
    if not isinstance(link, dict):
        return f"expected a dict, got {type(link).__name__}"
    problem = text_problem(link, "href", blank_ok=True)
    if problem:
        return problem
    if safe_href(link["href"]) is None:
        return "href: not an http(s) URL or a path of this site"
    return text_problem(link, "label")


def menu_links(actor: Any) -> list[dict[str, Any]]:
    """The plugins' links for ``actor``: ``{"href", "label", "external"}`` dicts.

    An answer that is not a list, or has a link ``link_problem`` refuses, is a
    failure of its plugin (logged with its name, on the Plugins page and
    ``/healthz``, held against the breaker); its good links are still drawn."""
    from meiqia.plugins import list_sifter

    if actor is None:
        return []
    links = []
    for link in events.plugins().call_flat("menu_links", sift=list_sifter("link", link_problem),
                                           actor=actor, request=request):
        href = safe_href(link["href"])
        links.append({"href": href, "label": link["label"].strip()[:40],
                      "external": not href.startswith("/")})
    return links[:MAX_LINKS]


def init_app(app: Flask) -> None:
    @app.context_processor
    def _plugin_links() -> dict[str, Any]:
        return {"plugin_menu_links": menu_links}
