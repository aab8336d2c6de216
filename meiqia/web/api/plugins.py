"""The Plugins admin page's API: every plugin, its health, and its switches
(``services.plugin_admin``; the rules in docs/plugins.md, "The Plugins page")."""

from __future__ import annotations

from flask import g

from meiqia.services import plugin_admin
from meiqia.web.api import route

TAGS = ["plugins"]


@route("/plugins", summary="Every plugin: version, source, hooks, state, recent errors, latency",
       auth="admin", tags=TAGS, response={"type": "array", "items": plugin_admin.PLUGIN})
def list_plugins() -> list:
    """`state` is `active`, `off` (turned off for this team), `suspended` (by the
    circuit breaker, for every team, until `suspended_until`) or `failed` (its
    `startup` raised: not loaded). `figures` are this process's, by hook. A recent
    error known to the error catalogue is in the caller's language."""
    from meiqia.web import error_text
    from meiqia.web import i18n

    lang = i18n.error_language()
    rows = plugin_admin.list_plugins(g.actor)
    for row in rows:  # copies: the entries may be the runtime's own records
        row["recent_errors"] = [
            {**entry, "error": error_text.translate_stored(entry["error"], lang)}
            if isinstance(entry.get("error"), str) else entry
            for entry in row.get("recent_errors") or []]
    return rows


@route("/plugins/<name>", ("PATCH",), summary="Turn a plugin on or off for my team",
       auth="admin", body=plugin_admin.SWITCH, tags=TAGS, response=plugin_admin.PLUGIN)
def switch(name: str, body: dict) -> dict:
    """Off: its per-team hooks are not called for this team (a redactor that is off
    does not check this team's messages). Every process follows within
    `PLUGIN_STATE_REFRESH` seconds."""
    return plugin_admin.set_enabled(g.actor, name, body["enabled"])


@route("/plugins/<name>/reset", ("POST",), summary="Lift the circuit breaker's suspension",
       auth="admin", tags=TAGS, response=plugin_admin.PLUGIN)
def reset(name: str) -> dict:
    """The plugin is called again (for every team) and its recorded errors are cleared."""
    return plugin_admin.reset(g.actor, name)
