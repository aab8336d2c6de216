"""Admins configure channels (issue 16): one form per channel class, generated
from its ``configuration_schema()``, enabled per team, secrets write-only.

A secret is never sent back (it comes back as ``********`` when set, empty
when not) and never logged; sending the mask back keeps the stored value while
the fields that decide where it goes are unchanged (``validation.merge_secrets``).
Saving validates the config against the schema (``services/validation.py``),
then restarts the team's instance of the channel in this process
(``channels/registry.restart``). "Test connection" builds a throwaway instance
with the stored config, or with the form's unsaved one, and calls its
``test_connection()`` through the plugin runtime (within its budget).
"""

from __future__ import annotations

from typing import Any

from flask import current_app

from meiqia.channels import registry
from meiqia.channels.base import DeliveryError
from meiqia.channels.base import in_language
from meiqia.channels.state import StateStore
from meiqia.db import database
from meiqia.models import Agent
from meiqia.models import ChannelConfig
from meiqia.models import ChannelDelivery
from meiqia.models.base import utcnow
from meiqia.services.accounts import audit
from meiqia.services.accounts import require_admin
from meiqia.services.errors import NotFound
from meiqia.services.errors import ValidationError
from meiqia.services.validation import check
from meiqia.services.validation import http_url
from meiqia.services.validation import merge_secrets
from meiqia.services.validation import plugin_config

MASK = registry.MASK
CONFIGURE_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "enabled": {"type": "boolean"},
        "config": {"type": "object", "description": "Fields of the channel's schema; a "
                   "secret sent back as ******** keeps the stored value only while the "
                   "fields that decide where it goes (hosts, ports, URLs, TLS modes, user "
                   "names, the schema's secret_bound_to) are unchanged, else 422 naming "
                   "the secret: type it again"},
    },
}
TEST_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"config": {"type": "object", "description": "Unsaved settings to test "
                              "(secrets as ******** use the stored ones, only while the "
                              "fields that decide where they go are unchanged, else 422 "
                              "naming the secret); leave it out (send {}) to test the "
                              "stored settings"}},
}
#: JSON-Schema keys the validator understands; the rest (title, default,
#: description, format uri…) only shape the form.
_KEPT = {"type", "properties", "required", "additionalProperties", "enum", "minLength",
         "maxLength", "pattern", "minimum", "maximum", "items", "maxItems", "minItems"}


def _class(slug: str) -> type:
    cls = registry.channel_class(slug)
    if cls is None or slug == registry.WEB:
        raise NotFound("no such channel")
    return cls


def _validator(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema as ``check`` takes it (format email kept; uri checked below)."""
    out = {k: v for k, v in schema.items() if k in _KEPT or k == "format"}
    if out.get("format") not in (None, "email"):
        out.pop("format")
    if isinstance(out.get("properties"), dict):
        out["properties"] = {name: _validator(sub) if isinstance(sub, dict) else {}
                             for name, sub in out["properties"].items()}
    if isinstance(out.get("items"), dict):
        out["items"] = _validator(out["items"])
    return out


def _check_uris(schema: dict[str, Any], config: dict[str, Any]) -> None:
    """Each ``format: uri`` setting is an http(s) URL by the one URL check
    (``validation.http_url``, as iframe panels and the webhook sink have it)."""
    for name, sub in (schema.get("properties") or {}).items():
        value = config.get(name)
        if isinstance(sub, dict) and sub.get("format") == "uri" and value:
            if not isinstance(value, str):
                raise ValidationError(f"config.{name}: must be an http:// or https:// URL",
                                      f"config.{name}")
            config[name] = http_url(value, f"config.{name}")


def check_config(cls: type, config: dict[str, Any], old: dict[str, Any] | None) -> dict:
    """The config to store: masked secrets replaced by the stored ones (while the
    fields that decide where they go are unchanged: ``validation.merge_secrets``), defaults
    filled in, validated against the class's schema (and ``validate_config``)."""
    schema = registry.schema_of(cls)
    merged = merge_secrets(schema, config, old)
    for name, sub in (schema.get("properties") or {}).items():
        if name not in merged and isinstance(sub, dict) and "default" in sub:
            merged[name] = sub["default"]
    check(merged, _validator(schema), "config")
    _check_uris(schema, merged)
    plugin_config(cls, merged)
    return merged


def describe(cls: type, row: ChannelConfig | None, lang: str = "zh-CN",
             team_id: int | None = None, base_url: str = "") -> dict[str, Any]:
    """One channel as the admin page draws it; the config with secrets masked.

    ``callback_url``: for a channel the provider calls (its class's
    ``callback_path``, e.g. WeChat's server URL), the address to enter in the
    provider's console, on ``base_url`` (this server as the admin reached it)."""
    team_failed = 0
    if row is not None:
        team_failed = ChannelDelivery.select().where(
            ChannelDelivery.team == row.team_id, ChannelDelivery.channel == cls.type,
            ChannelDelivery.status == "failed").count()
    schema = registry.schema_of(cls)
    return {
        "type": cls.type,
        "name": registry.display_name(cls, lang),
        "names": registry.names(cls.type),
        "capabilities": sorted(registry.capabilities_of(cls)),
        # Titles, descriptions and option labels in the admin's language only.
        "schema": registry.form_in_language(schema, lang),
        # The form's field order: JSON answers sort object keys, the schema's order is lost.
        "fields": list((schema.get("properties") or {}).keys()),
        "secret": sorted(registry.secrets_of(cls)),
        "configured": row is not None,
        "enabled": bool(row and row.enabled),
        "config": registry.masked(cls, dict(row.config or {})) if row else {},
        "updated_at": row.updated_at.isoformat() + "Z" if row else None,
        "failed_deliveries": team_failed,
        "reader": reader(cls, row, lang),
        "callback_url": (base_url.rstrip("/") + cls.callback_path.format(team_id=team_id)
                         if getattr(cls, "callback_path", None) and team_id is not None
                         else None),
    }


def reader(cls: type, row: ChannelConfig | None, lang: str = "zh-CN") -> dict | None:
    """How an enabled channel's background reader is doing (its class's optional
    ``reader_status(config, state, lang)``, e.g. the e-mail channel's mailbox
    reader): None for a channel without one, or off."""
    method = getattr(cls, "reader_status", None)
    if method is None or row is None or not row.enabled:
        return None
    try:
        found = method(dict(row.config or {}), StateStore(row.team_id, cls.type), lang)
    except Exception:  # noqa: BLE001 - third-party code: the page still shows the rest
        current_app.logger.exception("channel %s: reader_status() raised", cls.type)
        return None
    return found if isinstance(found, dict) else None


def list_channels(actor: Agent, lang: str = "zh-CN", base_url: str = "") -> list[dict[str, Any]]:
    """Every channel class but the widget, with the team's settings."""
    require_admin(actor)
    rows = {row.channel: row for row in list(ChannelConfig.select().where(
        ChannelConfig.team == actor.team_id))}
    return [describe(cls, rows.get(slug), lang, actor.team_id, base_url)
            for slug, cls in sorted(registry.channel_classes().items())
            if slug != registry.WEB]


def get(actor: Agent, slug: str, lang: str = "zh-CN", base_url: str = "") -> dict[str, Any]:
    require_admin(actor)
    cls = _class(slug)
    return describe(cls, registry.config_row(actor.team_id, slug), lang, actor.team_id,
                    base_url)


def configure(actor: Agent, slug: str, data: dict[str, Any]) -> ChannelConfig:
    """Save the team's settings of a channel and/or switch it on or off."""
    require_admin(actor)
    check(data, CONFIGURE_SCHEMA)
    cls = _class(slug)
    row = registry.config_row(actor.team_id, slug)
    old = dict(row.config or {}) if row else None
    config = check_config(cls, data["config"], old) if "config" in data else old
    enabled = data.get("enabled", row.enabled if row else False)
    if enabled and config is None:
        # Enabling a channel never configured: its schema decides if {} will do.
        config = check_config(cls, {}, None)
    with database.atomic():
        if row is None:
            row = ChannelConfig.create(team=actor.team_id, channel=slug, enabled=enabled,
                                       config=config or {}, updated_at=utcnow())
        else:
            ChannelConfig.update(enabled=enabled, config=config or {},
                                 updated_at=utcnow()).where(
                ChannelConfig.id == row.id).execute()
        changed = sorted(k for k in (data.get("config") or {})
                         if k not in registry.secrets_of(cls))
        audit(actor, "channel.configure", "channel", slug,
              {"enabled": enabled, "fields": changed,
               "secrets_changed": sorted(k for k in registry.secrets_of(cls)
                                         if k in (data.get("config") or {})
                                         and data["config"][k] != MASK)})
    registry.restart(actor.team_id, slug)
    return ChannelConfig.get_by_id(row.id)


def test_connection(actor: Agent, slug: str, data: dict[str, Any],
                    lang: str = "zh-CN") -> dict[str, Any]:
    """Call the channel's ``test_connection()``: ``{"ok", "message"}`` (the
    channel's own success text, or why it failed), in ``lang`` when the channel
    words it per language (a ``{"zh-CN", "en"}`` answer or ``DeliveryError``)."""
    require_admin(actor)
    check(data, TEST_SCHEMA)
    cls = _class(slug)
    row = registry.config_row(actor.team_id, slug)
    old = dict(row.config or {}) if row else None
    if "config" in data:
        config = check_config(cls, data["config"], old)
    elif old is not None:
        config = old
    else:
        raise ValidationError("config: save the settings first, or send them to test",
                              "config")
    host = registry.make_host(actor.team_id, slug, config)
    pm = current_app.extensions["meiqia.plugins"]
    plugin = pm.owner_of(cls) or slug

    def call() -> tuple[bool, str]:
        try:
            obj = registry.build(cls, host)
            method = getattr(obj, "test_connection", None)
            if method is None:
                return True, "ok"
            return True, in_language(method() or "ok", lang)[:500]
        except DeliveryError as exc:
            return False, exc.in_language(lang)[:500]

    budget = float(current_app.config.get("CHANNEL_DELIVER_TIMEOUT", 30.0))
    result, failure = pm.runtime.run(plugin, "test_connection", call, {},
                                     team_id=actor.team_id, budget=budget, breaker=False)
    if failure is not None:
        return {"ok": False, "message": failure.describe()[:500]}
    if result is None:
        return {"ok": False, "message": f"the plugin {plugin} is turned off for this team"}
    ok, message = result
    return {"ok": ok, "message": message}
