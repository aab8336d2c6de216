"""Built-in API-token authentication: ``Authorization: Bearer <token>``."""

from __future__ import annotations

from typing import Any

from meiqia.hookspecs import hookimpl


@hookimpl(trylast=True)
def actor_from_request(request: Any) -> Any | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    from meiqia.services.accounts import agent_for_token

    return agent_for_token(token.strip())
