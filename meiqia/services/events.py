"""The one choke point for "something happened" (STYLE rule 7, Zulip's send_event).

Services call ``emit`` after their transaction committed: it runs the
``track_event`` hook and publishes to the hub topics the caller names
explicitly. Views and hooks never publish on their own.
"""

from __future__ import annotations

from typing import Any

from flask import current_app

from meiqia.models.base import utcnow


def hub() -> Any:
    return current_app.extensions["meiqia.hub"]


def plugins() -> Any:
    return current_app.extensions["meiqia.plugins"]


def emit(
    name: str,
    team_id: int,
    topics: list[str] | tuple[str, ...] = (),
    data: dict[str, Any] | None = None,
    track: bool = True,
) -> dict[str, Any]:
    """Publish ``{"type": name, "data": data}`` to ``topics``; run ``track_event``."""
    data = data or {}
    envelope = {"type": name, "ts": utcnow().isoformat(timespec="milliseconds") + "Z", "data": data}
    for topic in topics:
        hub().publish(topic, envelope)
    if track:
        # A notification: handed to each plugin's own threads, never waited for.
        plugins().call(
            "track_event",
            event={"name": name, "team_id": team_id, "at": envelope["ts"], **data},
        )
    return envelope


def emit_many(name: str, team_id: int,
              items: list[tuple[list[str] | tuple[str, ...], dict[str, Any]]]) -> None:
    """Several events of one name, each to its topics, published together (one
    round trip on Redis); no ``track_event`` (the caller tracks once)."""
    ts = utcnow().isoformat(timespec="milliseconds") + "Z"
    hub().publish_many([(topic, {"type": name, "ts": ts, "data": data})
                        for topics, data in items for topic in topics])


#: Called when an agent may have room for more conversations (limit raised,
#: came online, ended or transferred a conversation). Routing registers itself
#: here so this module stays below the services that use it.
capacity_listeners: list[Any] = []


def capacity_changed(team_id: int) -> None:
    for listener in capacity_listeners:
        listener(team_id)
