"""Sidebar iframe panels (DESIGN §7): admin-configured IframePlugin rows and the
``sidebar_panels`` hook, with a signed, short-lived token on every panel URL.

An admin adds a panel (name, http(s) URL, height, position); the host generates
its secret and shows it once, so the panel's own server can verify the token
the host appends to the URL. The token says which team, conversation, visitor
(with the customer card) and agent the panel is shown for, and until when: the
panel can trust it without calling back, and a leaked URL stops working soon.

Panels of third-party plugins come through the same hook; a panel dict may carry
its own ``secret`` (otherwise the token is signed with a key derived from the
app's ``SECRET_KEY``, which in-process code can verify with ``verify_token``).
Secrets never leave this module in an agent's answer.
"""

from __future__ import annotations

import secrets as _secrets
import time
from typing import Any
from urllib.parse import parse_qsl
from urllib.parse import urlencode
from urllib.parse import urlsplit
from urllib.parse import urlunsplit

from flask import current_app
from itsdangerous import URLSafeTimedSerializer

from meiqia.db import database
from meiqia.models import Agent
from meiqia.models import Conversation
from meiqia.models import IframePlugin
from meiqia.services.accounts import audit
from meiqia.services.accounts import iso
from meiqia.services.accounts import require_admin
from meiqia.services.errors import NotFound
from meiqia.services.errors import ValidationError
from meiqia.services.validation import check
from meiqia.services.validation import http_url

#: The salt of every panel token; plugin servers pass the same to itsdangerous.
TOKEN_SALT = "meiqia.sidebar-panel"
#: Seconds a panel token stays valid (config ``IFRAME_TOKEN_TTL`` overrides).
TOKEN_TTL = 600
#: Customer card fields copied into the token.
CARD_FIELDS = ("name", "phone", "email", "company", "address", "note", "tags", "attributes")
MIN_HEIGHT, MAX_HEIGHT, DEFAULT_HEIGHT = 80, 2000, 300
#: Card texts (note, address, attribute values) longer than this are cut in the token.
TEXT_MAX = 300
#: Tokens are kept this short (``fit``), so a panel URL stays well under the 8 KB
#: request line common servers and proxies accept.
TOKEN_MAX = 4000

_PROPERTIES: dict[str, Any] = {
    "name": {"type": "string", "minLength": 1, "maxLength": 80},
    "url": {"type": "string", "minLength": 1, "maxLength": 500,
            "description": "http:// or https:// address of the panel page; the host "
                           "appends token=<signed token>."},
    "height": {"type": "integer", "minimum": MIN_HEIGHT, "maximum": MAX_HEIGHT,
               "description": "Pixels; default 300."},
    "position": {"type": "integer", "minimum": 0, "maximum": 10000,
                 "description": "Lower first."},
    "enabled": {"type": "boolean"},
}
SCHEMA = {"type": "object", "required": ["name", "url"], "additionalProperties": False,
          "properties": _PROPERTIES}
UPDATE_SCHEMA = {**SCHEMA, "required": []}
PLUGIN = {"type": "object", "properties": {
    **_PROPERTIES, "id": {"type": "integer"},
    "secret": {"type": "string", "description": "Only in the answer of create and "
                                                "rotate-secret; never shown again."},
    "created_at": {"type": "string"}}}
PANEL = {"type": "object", "properties": {
    "name": {"type": "string"},
    "url": {"type": "string", "description": "With token=<signed token> appended."},
    "height": {"type": "integer"}}}


def new_secret() -> str:
    return _secrets.token_urlsafe(32)


def _name(raw: str) -> str:
    name = raw.strip()
    if not name:
        raise ValidationError("name: must not be empty", "name")
    return name


def to_dict(plugin: IframePlugin, secret: str | None = None) -> dict[str, Any]:
    data = {"id": plugin.id, "name": plugin.name, "url": plugin.url, "height": plugin.height,
            "position": plugin.position, "enabled": plugin.enabled,
            "created_at": iso(plugin.created_at)}
    if secret is not None:
        data["secret"] = secret
    return data


def list_plugins(actor: Agent) -> list[dict[str, Any]]:
    require_admin(actor)
    query = IframePlugin.select().where(IframePlugin.team == actor.team_id).order_by(
        IframePlugin.position, IframePlugin.id)
    return [to_dict(p) for p in query]


def get(actor: Agent, plugin_id: int) -> IframePlugin:
    require_admin(actor)
    plugin = IframePlugin.get_or_none(IframePlugin.id == plugin_id,
                                      IframePlugin.team == actor.team_id)
    if plugin is None:
        raise NotFound("no such iframe plugin")
    return plugin


def create(actor: Agent, data: dict[str, Any]) -> tuple[IframePlugin, str]:
    """Add a panel; returns it with its new secret (shown to the admin once)."""
    require_admin(actor)
    check(data, SCHEMA)
    name, url = _name(data["name"]), http_url(data["url"], "url")
    secret = new_secret()
    with database.atomic():
        plugin = IframePlugin.create(
            team=actor.team_id, name=name, url=url, secret=secret,
            height=data.get("height", DEFAULT_HEIGHT), position=data.get("position", 0),
            enabled=data.get("enabled", True))
        audit(actor, "iframe_plugin.create", "iframe_plugin", plugin.id, {"url": url})
    return plugin, secret


def update(actor: Agent, plugin_id: int, data: dict[str, Any]) -> IframePlugin:
    check(data, UPDATE_SCHEMA)
    plugin = get(actor, plugin_id)
    if "name" in data:
        plugin.name = _name(data["name"])
    if "url" in data:
        plugin.url = http_url(data["url"], "url")
    for key in ("height", "position", "enabled"):
        if key in data:
            setattr(plugin, key, data[key])
    with database.atomic():
        plugin.save()
        audit(actor, "iframe_plugin.update", "iframe_plugin", plugin.id, dict(data))
    return plugin


def rotate_secret(actor: Agent, plugin_id: int) -> tuple[IframePlugin, str]:
    """A new secret (the old one stops verifying at once); shown to the admin once."""
    plugin = get(actor, plugin_id)
    plugin.secret = new_secret()
    with database.atomic():
        plugin.save()
        audit(actor, "iframe_plugin.rotate_secret", "iframe_plugin", plugin.id, {})
    return plugin, plugin.secret


def delete(actor: Agent, plugin_id: int) -> None:
    plugin = get(actor, plugin_id)
    with database.atomic():
        plugin.delete_instance()
        audit(actor, "iframe_plugin.delete", "iframe_plugin", plugin_id, {})


def enabled_panels(team_id: int) -> list[dict[str, Any]]:
    """The team's enabled panels as hook results (with their secrets: host-side only)."""
    query = IframePlugin.select().where(IframePlugin.team == team_id,
                                        IframePlugin.enabled == True)  # noqa: E712
    return [{"name": p.name, "url": p.url, "height": p.height, "secret": p.secret,
             "position": p.position}
            for p in query.order_by(IframePlugin.position, IframePlugin.id)]


# --- tokens --------------------------------------------------------------------------


def token_ttl() -> int:
    return int(current_app.config.get("IFRAME_TOKEN_TTL", TOKEN_TTL))


def _serializer(secret: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret, salt=TOKEN_SALT)


def _default_secret() -> str:
    """For panels that bring no secret of their own: derived, never the key itself."""
    return f"{current_app.config['SECRET_KEY']}:sidebar-panels"


def _cut(value: Any, limit: int = TEXT_MAX) -> Any:
    if isinstance(value, str) and len(value) > limit:
        return value[:limit] + "…"
    return value


def token_payload(conversation: Conversation, actor: Agent, ttl: int) -> dict[str, Any]:
    """What a panel learns: team, conversation, visitor and card, agent, expiry."""
    visitor = conversation.visitor
    card = {key: _cut(getattr(visitor, key)) for key in CARD_FIELDS}
    card["tags"] = list(card["tags"] or [])[:20]
    card["attributes"] = dict(list((card["attributes"] or {}).items())[:20])
    card["attributes"] = {str(k)[:40]: _cut(v) for k, v in card["attributes"].items()}
    return {"team_id": conversation.team_id, "conversation_id": conversation.id,
            "visitor_id": visitor.id, "customer": card, "agent_id": actor.id,
            "exp": int(time.time()) + ttl}


def fit(payload: dict[str, Any], limit: int = TOKEN_MAX) -> dict[str, Any]:
    """The payload, made smaller until its token fits in ``limit`` characters:
    custom attributes go first, then the long texts are cut shorter; ``truncated``
    tells the panel to look the customer up by ``visitor_id`` for the rest."""
    customer = payload["customer"]
    steps = [
        lambda: customer.update(attributes={}),
        lambda: customer.update({k: _cut(customer[k], 60) for k in ("note", "address")}),
        lambda: customer.update(tags=customer["tags"][:5]),
        lambda: customer.update({k: _cut(customer[k], 60) for k in
                                 ("name", "phone", "email", "company")}),
    ]
    for step in steps:
        if len(sign_token(payload, "measure")) <= limit:
            break
        step()
        payload["truncated"] = True
    return payload


def sign_token(payload: dict[str, Any], secret: str) -> str:
    return _serializer(secret).dumps(payload)


def verify_token(token: str, secret: str | None = None, max_age: int | None = None) -> dict:
    """The payload of a valid token; raises itsdangerous' BadSignature (or its
    subclass SignatureExpired) otherwise. ``secret`` None: the app-derived key."""
    ttl = token_ttl() if max_age is None else max_age
    data = _serializer(secret or _default_secret()).loads(token, max_age=ttl)
    if int(data.get("exp", 0)) < time.time():
        from itsdangerous import SignatureExpired

        raise SignatureExpired("token expired")
    return data


def with_token(url: str, token: str) -> str:
    """``url`` with ``token=…`` added to its query (replacing one that was there)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "token"]
    query.append(("token", token))
    return urlunsplit(parts._replace(query=urlencode(query)))


def _height(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return DEFAULT_HEIGHT
    return max(MIN_HEIGHT, min(MAX_HEIGHT, int(value)))


def text_problem(item: dict, key: str, blank_ok: bool = False) -> str | None:
    """Why ``item[key]`` is not text a plugin's panel or link may carry (said without
    the value), or None: missing, not a string, or (unless ``blank_ok``) blank."""
    value = item.get(key)
    if value is None or value == "":
        return f"{key}: missing"
    if not isinstance(value, str):
        return f"{key}: expected text, got {type(value).__name__}"
    if not blank_ok and not value.strip():
        return f"{key}: blank"
    return None


def panel_problem(panel: Any) -> str | None:
    """Why a plugin's panel cannot be shown (said without its values), or None: a
    dict with a ``name`` (text, not blank) and a ``url`` that is an http(s) URL."""
    if not isinstance(panel, dict):
        return f"expected a dict, got {type(panel).__name__}"
    problem = text_problem(panel, "name") or text_problem(panel, "url", blank_ok=True)
    if problem:
        return problem
    url = panel["url"]
    try:
        http_url(url, "url")
    except ValidationError as exc:
        return str(exc)
    return None


def sidebar_panels(actor: Agent, conversation_id: int, request: Any) -> list[dict[str, Any]]:
    """The panels of a conversation the actor may see (404 otherwise), ready to render.

    Every plugin's ``sidebar_panels`` is asked (the built-in ``iframe_sidebar``
    answers with the team's enabled rows); each panel is checked
    (``panel_problem``), its URL gets a token signed with the panel's secret, and
    the secret is dropped. An answer that is not a list, or has a panel that is not
    a dict with a name and an http(s) URL, is a failure of its plugin (logged with
    its name, on the Plugins page and ``/healthz``, held against the breaker) and
    only its good panels are shown, so one broken plugin never hides the others.
    """
    from meiqia.plugins import list_sifter
    from meiqia.services import events
    from meiqia.services import permissions

    conversation = permissions.get_conversation(actor, conversation_id)
    results = events.plugins().call_flat(
        "sidebar_panels", sift=list_sifter("panel", panel_problem),
        conversation=conversation, visitor=conversation.visitor, actor=actor,
        request=request)
    ttl = token_ttl()
    payload = fit(token_payload(conversation, actor, ttl))
    ordered = []
    for index, panel in enumerate(results):
        name = panel["name"].strip()[:80]
        url = http_url(panel["url"], "url")
        token = sign_token(payload, str(panel.get("secret") or _default_secret()))
        position = panel.get("position", 0)
        order = position if isinstance(position, int) and not isinstance(position, bool) else 0
        ordered.append((order, index, {"name": name, "url": with_token(url, token),
                                       "height": _height(panel.get("height"))}))
    ordered.sort(key=lambda item: item[:2])
    return [item[2] for item in ordered]
