"""The Plugins admin page's data: every plugin, its state and health; the switches.

Scope (docs/plugins.md, "The Plugins page"): plugins are installed for the
whole server, so every team's admin sees every plugin. *Turn off* and *turn
on* are per team: the plugin's hooks that concern one team (a conversation, a
message, an agent, a team's event) are no longer called for that team; hooks
that concern the server (start-up, registering channels, sinks, answerers'
registration) are not affected (DISABLED_PLUGINS unloads a plugin everywhere).
*Suspended* is the circuit breaker's server-wide decision (a plugin that hangs
hangs for every team); *Reset* lifts it and clears the recorded errors, for
every team, since it only lets the plugin be tried again.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from flask import current_app

from meiqia.models import Agent
from meiqia.models.plugins import SERVER
from meiqia.services.accounts import audit
from meiqia.services.accounts import iso
from meiqia.services.accounts import require_admin
from meiqia.services.errors import NotFound

FIGURES = {
    "type": "object",
    "properties": {k: {"type": ["integer", "number", "null"]} for k in (
        "calls", "errors", "timeouts", "skipped", "mean_ms", "p50_ms", "p95_ms")},
}
PLUGIN = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "version": {"type": "string"},
        "origin": {"type": "string", "enum": ["built-in", "entry point", "instance", "config",
                                              "extra", "plugin"]},
        "hooks": {"type": "array", "items": {"type": "string"}},
        "state": {"type": "string", "enum": ["active", "off", "suspended", "failed"]},
        "enabled_for_team": {"type": "boolean"},
        "suspended_until": {"type": ["string", "null"]},
        "trips": {"type": "integer"},
        "busy_threads": {"type": "integer"},
        "recent_errors": {"type": "array", "items": {"type": "object"}},
        "figures": {"type": "object", "additionalProperties": FIGURES},
    },
}
SWITCH = {
    "type": "object",
    "required": ["enabled"],
    "additionalProperties": False,
    "properties": {"enabled": {"type": "boolean"}},
}


def _pm() -> Any:
    return current_app.extensions["meiqia.plugins"]


def _row(pm: Any, team_id: int, row: dict[str, Any]) -> dict[str, Any]:
    runtime = pm.runtime
    store = runtime.store
    # The rows as the database has them, even as a new process's first request:
    # the state thread starts with the first hook call, and a plugin suspended
    # before a restart showed as "active" until then.
    store.ensure_loaded()
    name = row["name"]
    server = store.row(name) or {}
    team = store.row(name, team_id) or {}
    until = store.suspended_until(name)
    enabled = not team.get("disabled") and not server.get("disabled")
    recent = _merged_errors(server.get("recent_errors") or [], runtime.recent_errors(name))
    return {
        **row,
        "version": row.get("version") or "",
        "state": "off" if not enabled else "suspended" if until else "active",
        "enabled_for_team": enabled,
        "suspended_until": iso(until) if until else None,
        "trips": int(server.get("trips") or 0),
        "busy_threads": runtime.busy_threads(name),
        "recent_errors": recent,
        "figures": runtime.figures(name),
    }


def _merged_errors(stored: list[dict[str, Any]], here: list[dict[str, Any]]
                   ) -> list[dict[str, Any]]:
    """The last 10 failures: those every process wrote, and this process's own not
    written yet. The same failure is in both lists once written, so each is taken
    as many times as the list that has it most often holds it: five identical
    failures within one second are five, not one (found from outside)."""
    def key(entry: dict[str, Any]) -> tuple:
        return entry["at"], entry["hook"], entry["error"]

    counts = Counter(key(e) for e in stored)
    merged = list(stored)
    for entry, seen in zip(here, _running_counts(here, key), strict=True):
        if seen > counts[key(entry)]:
            merged.append(entry)
    return sorted(merged, key=lambda e: e["at"])[-10:]


def _running_counts(entries: list[dict[str, Any]], key: Any) -> list[int]:
    """For each entry, how many entries with its key came up to it (1, 2, …)."""
    running: Counter = Counter()
    out = []
    for entry in entries:
        running[key(entry)] += 1
        out.append(running[key(entry)])
    return out


def list_plugins(actor: Agent) -> list[dict[str, Any]]:
    """Every plugin of the server, as the actor's team sees it (admins only)."""
    require_admin(actor)
    pm = _pm()
    rows = [_row(pm, actor.team_id, row) for row in pm.describe()]
    for name, failed in sorted(pm.failed_at_startup.items()):
        rows.append({"name": name, "version": "", "origin": failed["origin"], "hooks": [],
                     "state": "failed", "enabled_for_team": False, "suspended_until": None,
                     "trips": 0, "busy_threads": 0, "figures": {},
                     "recent_errors": [{"at": failed.get("at", ""), "hook": "startup",
                                        "kind": "raised", "error": failed["error"]}]})
    return rows


def _known(name: str) -> None:
    if _pm().get_plugin(name) is None:
        raise NotFound("no such plugin")


def set_enabled(actor: Agent, name: str, enabled: bool) -> dict[str, Any]:
    """Turn a plugin on or off for the actor's team."""
    require_admin(actor)
    _known(name)
    _pm().runtime.store.set_disabled(name, actor.team_id, not enabled)
    audit(actor, "plugin.enable" if enabled else "plugin.disable", "plugin", name, {})
    return one(actor, name)


def reset(actor: Agent, name: str) -> dict[str, Any]:
    """Lift the breaker's suspension and forget the errors (for every team)."""
    require_admin(actor)
    _known(name)
    runtime = _pm().runtime
    runtime.reset(name)
    runtime.store.reset(name)
    audit(actor, "plugin.reset", "plugin", name, {})
    return one(actor, name)


def one(actor: Agent, name: str) -> dict[str, Any]:
    require_admin(actor)
    _known(name)
    pm = _pm()
    return _row(pm, actor.team_id, next(r for r in pm.describe() if r["name"] == name))


def degraded() -> dict[str, Any]:
    """For /healthz: plugins suspended now, and those whose last call failed."""
    pm = _pm()
    runtime = pm.runtime
    runtime.store.ensure_loaded()
    suspended = sorted(row["name"] for row in pm.describe()
                       if runtime.store.suspended_until(row["name"]))
    failing = sorted(name for name in runtime.failing() if name not in suspended)
    return {"ok": True, "degraded": bool(suspended or failing or pm.failed_at_startup),
            "suspended": suspended, "failing": failing,
            "failed_at_startup": sorted(pm.failed_at_startup)}


__all__ = ["PLUGIN", "SERVER", "SWITCH", "degraded", "list_plugins", "one", "reset",
           "set_enabled"]
