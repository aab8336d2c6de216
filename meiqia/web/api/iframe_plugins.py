"""Sidebar iframe plugins: the admin's CRUD, and the panels of one conversation.

Admins add panels (the secret is generated and returned once, by create and by
rotate-secret); agents ask for the panels of a conversation they may see, each
URL carrying a signed, short-lived token (see docs/plugins.md).
"""

from __future__ import annotations

from flask import g
from flask import request

from meiqia.services import iframe_plugins
from meiqia.web.api import route

TAGS = ["iframe plugins"]
PLUGINS = {"type": "array", "items": iframe_plugins.PLUGIN}


@route("/iframe-plugins", summary="The team's sidebar iframe plugins (no secrets)",
       auth="admin", tags=TAGS, response=PLUGINS)
def list_plugins() -> list:
    return iframe_plugins.list_plugins(g.actor)


@route("/iframe-plugins", ("POST",), summary="Add a sidebar iframe plugin; returns its secret once",
       auth="admin", body=iframe_plugins.SCHEMA, status=201, tags=TAGS,
       response=iframe_plugins.PLUGIN)
def create(body: dict) -> dict:
    """The URL must be http:// or https://. The answer carries `secret`, which signs
    the token appended to the URL; it is not shown again (rotate it to get a new one)."""
    plugin, secret = iframe_plugins.create(g.actor, body)
    return iframe_plugins.to_dict(plugin, secret)


@route("/iframe-plugins/<int:plugin_id>", summary="One sidebar iframe plugin (no secret)",
       auth="admin", tags=TAGS, response=iframe_plugins.PLUGIN)
def get_one(plugin_id: int) -> dict:
    return iframe_plugins.to_dict(iframe_plugins.get(g.actor, plugin_id))


@route("/iframe-plugins/<int:plugin_id>", ("PATCH",), summary="Change a sidebar iframe plugin",
       auth="admin", body=iframe_plugins.UPDATE_SCHEMA, tags=TAGS,
       response=iframe_plugins.PLUGIN)
def update(plugin_id: int, body: dict) -> dict:
    return iframe_plugins.to_dict(iframe_plugins.update(g.actor, plugin_id, body))


@route("/iframe-plugins/<int:plugin_id>/rotate-secret", ("POST",),
       summary="Replace the secret (the old one stops verifying); returns it once",
       auth="admin", tags=TAGS, response=iframe_plugins.PLUGIN)
def rotate_secret(plugin_id: int) -> dict:
    plugin, secret = iframe_plugins.rotate_secret(g.actor, plugin_id)
    return iframe_plugins.to_dict(plugin, secret)


@route("/iframe-plugins/<int:plugin_id>", ("DELETE",), summary="Remove a sidebar iframe plugin",
       auth="admin", tags=TAGS)
def delete(plugin_id: int) -> dict:
    iframe_plugins.delete(g.actor, plugin_id)
    return {"ok": True}


@route("/conversations/<int:conversation_id>/sidebar-panels",
       summary="The sidebar iframe panels of a conversation, URLs with a signed token",
       tags=["conversations"], response={"type": "array", "items": iframe_plugins.PANEL})
def sidebar_panels(conversation_id: int) -> list:
    """Every plugin's `sidebar_panels` (the built-in one: the team's enabled iframe
    plugins). Each URL gets `token=<signed, short-lived token>`; 404 outside my scope."""
    return iframe_plugins.sidebar_panels(g.actor, conversation_id, request)
