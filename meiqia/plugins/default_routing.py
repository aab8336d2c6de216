"""Built-in routing policy: the first candidate (least-loaded, round-robin ties).

The ordering itself is done by ``meiqia.services.routing`` before the hook is
called, so a plugin that wants a different policy sees the same fair list.
"""

from __future__ import annotations

from typing import Any

from meiqia.hookspecs import hookimpl


@hookimpl(trylast=True)
def assign_agent(conversation: Any, candidates: list[Any]) -> Any | None:
    return candidates[0] if candidates else None
