"""Built-in sidebar panels: the team's enabled iframe plugins (admin → iframe plugins).

Returns each enabled ``IframePlugin`` row of the conversation's team with its
secret; the host (``meiqia.services.iframe_plugins.sidebar_panels``) signs the
token with that secret, appends it to the URL and never shows the secret to the
agent. Third-party plugins return their panels through the same hook.
"""

from __future__ import annotations

from typing import Any

from meiqia.hookspecs import hookimpl


@hookimpl
def sidebar_panels(conversation: Any, visitor: Any, actor: Any, request: Any) -> list[dict]:
    from meiqia.services import iframe_plugins

    return iframe_plugins.enabled_panels(conversation.team_id)
