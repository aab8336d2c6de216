"""Kinds of hooks and their time budgets.

A *notification* (``track_event``) tells plugins that something happened; nobody
waits for its result, so it runs on the plugin's own threads and the caller goes
on at once. Every other run-time hook returns something the caller needs, so the
caller waits, but only for the hook's budget (``HOOK_BUDGETS``, else the default
below, never more than ``HOOK_TIMEOUT``). Lifecycle hooks run once at start-up,
on the starting thread. A *privacy hook* (``before_message_saved``) fails
closed: a message it could not look at is not stored as it is
(``plugin_runtime.privacy``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: Hooks whose result nobody waits for: run off the request path.
NOTIFICATIONS = frozenset({"track_event"})

#: Hooks called once while the application starts, on the starting thread.
LIFECYCLE = frozenset({
    "startup", "register_blueprints", "register_commands", "register_channels",
    "register_answerers", "register_ticket_sinks",
})

#: Hooks that may redact or refuse what is stored: they fail closed.
PRIVACY_HOOKS = frozenset({"before_message_saved"})

#: Seconds each call may take, by hook kind. ``answer`` is an answerer's
#: ``answer()``; ``create_ticket``/``update_ticket`` a ticket sink's methods (they
#: run in jobs, which retry). A notification that runs longer counts as timed out.
DEFAULT_BUDGETS: dict[str, float] = {
    "before_message_saved": 1.0,
    "assign_agent": 0.5,
    "actor_from_request": 1.0,
    "sidebar_panels": 2.0,
    "menu_links": 0.5,
    "answer": 2.0,
    "track_event": 5.0,
    "create_ticket": 30.0,
    "update_ticket": 30.0,
}


def check_budgets(value: Any) -> dict[str, float]:
    """``HOOK_BUDGETS`` as ``{hook kind: seconds}``; raise ValueError naming the bad entry."""
    if not isinstance(value, Mapping):
        raise ValueError(f"expected a mapping of hook kind to seconds, got {value!r}")
    budgets = {}
    for kind, seconds in value.items():
        if kind not in DEFAULT_BUDGETS:
            raise ValueError(f"unknown hook kind {kind!r}; one of {', '.join(sorted(DEFAULT_BUDGETS))}")
        try:
            number = float(seconds)
        except (TypeError, ValueError):
            raise ValueError(f"{kind}: expected seconds, got {seconds!r}") from None
        if number <= 0:
            raise ValueError(f"{kind}: must be positive, got {number}")
        budgets[kind] = number
    return budgets


#: Kinds that run in jobs, off every request: ``HOOK_TIMEOUT`` does not cap them.
JOB_KINDS = frozenset({"create_ticket", "update_ticket"})


def budget_for(kind: str, overrides: Mapping[str, float], ceiling: float) -> float:
    """The budget of one call of ``kind``: as configured in ``HOOK_BUDGETS``; else the
    default, capped by ``ceiling`` (``HOOK_TIMEOUT``) unless the kind runs in jobs."""
    if kind in overrides:
        return overrides[kind]
    default = DEFAULT_BUDGETS.get(kind, ceiling)
    return default if kind in JOB_KINDS else min(default, ceiling)
