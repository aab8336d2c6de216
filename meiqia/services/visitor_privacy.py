"""What a visitor may see of the team's accounts: the agent's display name, nothing else.

A visitor sees what the widget shows: who answers him by display name (the
nickname, else the name) and the conversation's state. Agent ids, group ids,
who ended or transferred a chat, e-mail addresses and account names are the
team's business (issue 13, item 6). Every frame to a visitor socket goes through
``event`` and every message through ``payload``, so one module decides, and
``tests/ws/test_visitor_privacy.py`` walks every visitor route against it.
"""

from __future__ import annotations

from typing import Any

#: Keys that name or identify an account or the team's internals: never to a visitor.
ACCOUNT_KEYS = frozenset({
    "agent_id", "shown_agent_id", "handler_id", "by", "by_id", "to", "to_id",
    "email", "username", "account", "previous_assignee_id", "assignee_id", "visibility",
    "previous_handler_id",
    "anonymous", "preview",
})


def payload(data: Any) -> dict[str, Any]:
    """A message payload as a visitor may see it."""
    return {k: v for k, v in dict(data or {}).items() if k not in ACCOUNT_KEYS}


def handler(value: Any) -> dict[str, Any] | None:
    """A handler as a visitor may see it: his display name only."""
    if not isinstance(value, dict):
        return None
    return {"name": value.get("name", "")}


def event(data: dict[str, Any]) -> dict[str, Any]:
    """A hub event's data as a visitor socket sends it (any frame type)."""
    out = {k: v for k, v in data.items() if k not in ACCOUNT_KEYS}
    if "handler" in out:
        out["handler"] = handler(out["handler"])
    if isinstance(out.get("payload"), dict):
        out["payload"] = payload(out["payload"])
    return out
