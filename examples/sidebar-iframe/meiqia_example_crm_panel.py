"""A sidebar iframe: the customer's record in your CRM, beside the chat.

The plugin returns one panel; meiqia appends a signed, short-lived token
describing the visitor and the conversation to its URL and shows it in a
sandboxed iframe. Your CRM's page verifies the token with the same secret
(``verify`` below is that check, as docs/plugins.md "Sidebar iframe panels"
shows it for Flask). Configure it in ``instance/config.py``:

    CRM_PANEL_URL = "https://crm.example.com/meiqia-panel"
    CRM_PANEL_SECRET = "a long random string your CRM knows too"

Without ``CRM_PANEL_URL`` the plugin shows nothing.
"""

from __future__ import annotations

import time
from typing import Any

from flask import current_app
from itsdangerous import URLSafeTimedSerializer

from meiqia.hookspecs import hookimpl

__version__ = "1.0.0"

SALT = "meiqia.sidebar-panel"


@hookimpl
def sidebar_panels(conversation: Any, visitor: Any, actor: Any, request: Any) -> list[dict]:
    url = current_app.config.get("CRM_PANEL_URL")
    if not url:
        return []
    # ``visitor`` is a PluginVisitor: name, phone, email, tags… (docs/plugins.md,
    # "What a plugin receives"); the panel's title may use them.
    title = f"CRM · {visitor.name}" if visitor is not None and visitor.name else "CRM"
    return [{"name": title, "url": url, "height": 320, "position": 10,
             "secret": current_app.config["CRM_PANEL_SECRET"]}]


def verify(token: str, secret: str, ttl: int = 600) -> dict:
    """What the CRM's page does with ``?token=``: the payload, or an exception
    (``itsdangerous.BadSignature`` / ``SignatureExpired``, or ValueError when
    ``exp`` has passed)."""
    data = URLSafeTimedSerializer(secret, salt=SALT).loads(token, max_age=ttl)
    if data["exp"] < time.time():
        raise ValueError("expired: reopen the conversation")
    return data
