"""Which channels exist, how each team configured them, and their live instances.

Channel classes come from every plugin's ``register_channels`` (kept in
``app.extensions["meiqia.channels"]`` by ``create_app``). A team's
configuration of a channel is one ``channel_config`` row (validated against
the class's ``configuration_schema()``, secrets write-only). An enabled
channel of a team has one instance per process, built with its config and a
``ChannelHost``; it is rebuilt (``stop()`` then ``start()``) when its config
changes, and started when the process starts serving (``autostart``: the WSGI
module and ``meiqia run`` call it; a process's first request does too, for
servers that do not: ``CHANNELS_AUTOSTART``).

Every process keeps its instances in step with the table (``sync``, every
``CHANNELS_SYNC_SECONDS`` on a thread of its own): a channel a team enables, or
whose settings change, through *another* process starts (or is rebuilt) here
too, and one switched off stops. Without it a process knew only of the channels
enabled when it started, and the first enable reached the one process that
saved it: once that one stopped, nobody read the mailbox.
"""

from __future__ import annotations

import atexit
import logging
import threading
import weakref
from typing import Any

from flask import current_app
from flask import has_app_context

from meiqia.channels.base import CAPABILITIES
from meiqia.channels.base import in_language
from meiqia.channels.host import ChannelHost
from meiqia.models import ChannelConfig
from meiqia.models import Team
from meiqia.services import validation

log = logging.getLogger(__name__)

#: All capabilities: the widget carries every feature.
WEB = "web"
#: A masked secret in what the admin form gets back (one mask for channels and sinks).
MASK = validation.MASK
_INSTANCES = "meiqia.channel_instances"


def _app(app: Any = None) -> Any:
    if app is not None:
        return app
    return current_app._get_current_object()  # type: ignore[attr-defined]


def channel_classes(app: Any = None) -> dict[str, type]:
    """Channel classes by slug (``register_channels``), the widget included."""
    return dict(_app(app).extensions.get("meiqia.channels", {}))


def channel_class(slug: str, app: Any = None) -> type | None:
    return channel_classes(app).get(slug)


def capabilities_of(cls: type | None) -> frozenset[str]:
    """What a channel class declares it can carry. A class of before the channel
    API (no ``capabilities``) keeps every feature but read receipts when it says
    ``reports_reads = False``; an unknown channel is treated like the widget."""
    if cls is None:
        return CAPABILITIES
    declared = getattr(cls, "capabilities", None)
    if declared is not None:
        return frozenset(declared) & CAPABILITIES
    if getattr(cls, "type", None) == WEB:
        return CAPABILITIES
    found = set(CAPABILITIES)
    if not getattr(cls, "reports_reads", True):
        found.discard("read_receipts")
    return frozenset(found)


def capabilities(slug: str, app: Any = None) -> frozenset[str]:
    if slug == WEB:
        return CAPABILITIES
    return capabilities_of(channel_class(slug, app))


def display_name(cls: type, lang: str = "zh-CN") -> str:
    name = getattr(cls, "name", "") or getattr(cls, "type", "")
    if isinstance(name, dict):
        return str(name.get(lang) or name.get("en") or name.get("zh-CN")
                   or next(iter(name.values()), ""))
    return str(name)


WEB_NAMES = {"zh-CN": "网页", "en": "Web"}


def names(slug: str, app: Any = None) -> dict[str, str]:
    """A channel's name in both languages (the slug for a channel not installed)."""
    if slug == WEB:
        return dict(WEB_NAMES)
    cls = channel_class(slug, app)
    if cls is None:
        return {"zh-CN": slug, "en": slug}
    return {"zh-CN": display_name(cls, "zh-CN"), "en": display_name(cls, "en")}


def schema_of(cls: type) -> dict[str, Any]:
    try:
        schema = cls.configuration_schema()
    except Exception as exc:  # noqa: BLE001 - third-party code
        log.error("channel %s: configuration_schema() raised %s", getattr(cls, "type", cls),
                  exc)
        return {"type": "object", "properties": {}, "secret": []}
    return schema if isinstance(schema, dict) else {"type": "object", "properties": {}}


def form_in_language(schema: dict[str, Any], lang: str) -> dict[str, Any]:
    """A settings form (a channel's or a ticket sink's ``configuration_schema()``) as
    an admin of ``lang`` reads it: each ``title`` and ``description``, and each label
    of ``enumNames``, given as a string or ``{"zh-CN": ..., "en": ...}`` (as a class's
    ``name``), becomes his language's string. Each admin reads his own language, not
    "收件文件夹 folder" on an English page (docs/plugins.md, docs/ui.md). An
    ``enumNames`` that is not a list as long as ``enum`` is dropped: the drop-down
    shows the values. The plugin's schema itself is not changed."""
    out = dict(schema)
    for key in ("title", "description"):
        if key in out:
            out[key] = in_language(out[key], lang)
    if "enumNames" in out:
        labels, options = out.pop("enumNames"), out.get("enum")
        if isinstance(labels, list) and isinstance(options, list) and len(labels) == len(options):
            out["enumNames"] = [in_language(label, lang) for label in labels]
    if isinstance(out.get("properties"), dict):
        out["properties"] = {name: form_in_language(sub, lang) if isinstance(sub, dict) else sub
                             for name, sub in out["properties"].items()}
    if isinstance(out.get("items"), dict):
        out["items"] = form_in_language(out["items"], lang)
    return out


def secrets_of(cls: type) -> set[str]:
    return set(schema_of(cls).get("secret", []) or [])


def config_row(team_id: int, slug: str) -> ChannelConfig | None:
    return ChannelConfig.get_or_none(ChannelConfig.team == team_id,
                                     ChannelConfig.channel == slug)


def is_enabled(team_id: int, slug: str) -> bool:
    row = config_row(team_id, slug)
    return bool(row and row.enabled)


def masked(cls: type | None, config: dict[str, Any]) -> dict[str, Any]:
    """The config as an admin's browser may see it: secrets masked (set) or empty."""
    hidden = secrets_of(cls) if cls is not None else set(config)
    return {k: (MASK if v else "") if k in hidden else v for k, v in (config or {}).items()}


# --- instances ---------------------------------------------------------------------------


def _instances(app: Any) -> dict[tuple[int, str], tuple[Any, Any]]:
    return app.extensions.setdefault(_INSTANCES, {})


def _started(app: Any) -> set[tuple[int, str]]:
    """The (team, channel) instances of this process whose ``start()`` was called."""
    return app.extensions.setdefault("meiqia.channel_instances_started", set())


def _lock(app: Any) -> threading.Lock:
    return app.extensions.setdefault("meiqia.channel_instances_lock", threading.Lock())


def make_host(team_id: int, slug: str, config: dict[str, Any] | None = None,
              app: Any = None) -> ChannelHost:
    app = _app(app)
    if config is None:
        row = config_row(team_id, slug)
        config = dict(row.config or {}) if row else {}
    return ChannelHost(app, team_id, slug, config)


def build(cls: type, host: ChannelHost) -> Any:
    """An instance of ``cls`` for ``host``; classes that take no (config, host)
    (written before the channel API) are built without arguments."""
    try:
        return cls(host.config, host)
    except TypeError:
        if getattr(cls, "__init__", object.__init__) is object.__init__:
            return cls()
        raise


def instance(team_id: int, slug: str, app: Any = None, start: bool = False) -> Any | None:
    """This process's instance of the team's channel, rebuilt if its config
    changed since (None: not enabled, or no such channel). ``start``: call
    ``start()`` on a new instance (the autostart and a config change do)."""
    app = _app(app)
    cls = channel_class(slug, app)
    if cls is None or slug == WEB:
        return None
    row = config_row(team_id, slug)
    key = (team_id, slug)
    with _lock(app):
        held = _instances(app).get(key)
        if row is None or not row.enabled:
            if held is not None:
                _instances(app).pop(key, None)
                _started(app).discard(key)
                _stop(held[1])
            return None
        stamp = row.updated_at
        if held is not None and held[0] == stamp:
            # Built unstarted by a job (a delivery resumed before the first
            # request), then asked to start: start it now. Skipping it because it
            # existed left a mailbox unread after a restart.
            if not start or key in _started(app):
                return held[1]
            _started(app).add(key)
            obj = held[1]
        else:
            was_started = key in _started(app)
            if held is not None:
                _instances(app).pop(key, None)
                _started(app).discard(key)
                _stop(held[1])
            obj = build(cls, ChannelHost(app, team_id, slug, dict(row.config or {})))
            _instances(app)[key] = (stamp, obj)
            if not (start or was_started):
                return obj
            _started(app).add(key)
    _start(obj)
    return obj


def _start(obj: Any) -> None:
    start = getattr(obj, "start", None)
    if start is None:
        return
    try:
        start()
    except Exception as exc:  # noqa: BLE001 - one channel must not stop the others
        log.error("channel %s: start() raised %s: %s", getattr(obj, "type", obj),
                  type(exc).__name__, exc)


def _stop(obj: Any) -> None:
    stop = getattr(obj, "stop", None)
    if stop is None:
        return
    try:
        stop()
    except Exception as exc:  # noqa: BLE001
        log.error("channel %s: stop() raised %s: %s", getattr(obj, "type", obj),
                  type(exc).__name__, exc)


def restart(team_id: int, slug: str, app: Any = None) -> Any | None:
    """After a config change: stop the old instance, start the new (or none)."""
    return instance(team_id, slug, app, start=True)


def start_all(app: Any = None) -> int:
    """Start every enabled channel of every team in this process; return how many."""
    app = _app(app)
    rows = list(ChannelConfig.select().where(ChannelConfig.enabled == True))  # noqa: E712
    started = 0
    for row in rows:
        if row.channel in channel_classes(app) and row.channel != WEB:
            if (row.team_id, row.channel) not in _started(app):
                instance(row.team_id, row.channel, app, start=True)
                started += 1
    return started


def stop_all(app: Any = None) -> None:
    """This process stops its channels, and the watcher that would start them
    again (``autostart``): the process is stopping."""
    app = _app(app)
    watcher = app.extensions.get("meiqia.channels_watcher")
    if watcher is not None:
        watcher.stop()
    with _lock(app):
        held = list(_instances(app).values())
        _instances(app).clear()
        _started(app).clear()
    for _stamp, obj in held:
        _stop(obj)


def _stop_at_exit(app_ref: Any, pid: int) -> None:
    """``stop_all`` as the process exits (not in a forked child that inherited it)."""
    import os

    app = app_ref()
    if app is None or os.getpid() != pid:
        return
    try:
        with app.app_context():
            stop_all(app)
    except Exception:  # noqa: BLE001 - exiting anyway; claims run out by themselves
        log.debug("channels: could not stop at exit", exc_info=True)


def sync(app: Any = None) -> int:
    """Bring this process's instances in step with the ``channel_config`` table:
    start every enabled channel not running here, rebuild one whose settings
    changed (``instance`` compares ``updated_at``), stop one switched off or
    removed. Returns how many enabled channels there are. Run by the watcher
    thread (``autostart``), so a change saved by another process reaches this one."""
    app = _app(app)
    classes = channel_classes(app)
    rows = list(ChannelConfig.select(ChannelConfig.team, ChannelConfig.channel,
                                     ChannelConfig.updated_at).where(
        ChannelConfig.enabled == True))  # noqa: E712
    stamps = {(row.team_id, row.channel): row.updated_at for row in rows
              if row.channel in classes and row.channel != WEB}
    wanted = set(stamps)
    for key in sorted(wanted):
        held = _instances(app).get(key)
        if held is not None and held[0] == stamps[key] and key in _started(app):
            continue  # running here with these settings: one query for all of them
        instance(key[0], key[1], app, start=True)
    for team_id, slug in sorted(set(_started(app)) - wanted):
        instance(team_id, slug, app)  # its row is off or gone: stopped
    return len(wanted)


#: Seconds between two ``sync`` of a process, unless ``CHANNELS_SYNC_SECONDS``.
SYNC_SECONDS = 10.0


def autostart(app: Any) -> bool:
    """Start this process's channels and the thread that keeps them in step with
    the table (``sync``); once per process (a forked gunicorn worker does not
    inherit threads: it starts its own). False when ``CHANNELS_AUTOSTART`` is off
    or this process started them already. Called as the process starts serving
    (``meiqia.wsgi``, ``meiqia run``) and by each request (``install``)."""
    import os

    if not app.config.get("CHANNELS_AUTOSTART", True):
        return False
    lock = app.extensions.setdefault("meiqia.channels_autostart_lock", threading.Lock())
    with lock:
        if app.extensions.get("meiqia.channels_autostart_pid") == os.getpid():
            return False
        app.extensions["meiqia.channels_autostart_pid"] = os.getpid()
    # A process that stops cleanly (Ctrl+C, SIGTERM) stops its channels, so a
    # mailbox reader gives its claim back: the next process read new mail at
    # once instead of after the claim ran out (45 s by default).
    atexit.register(_stop_at_exit, weakref.ref(app), os.getpid())
    from flask import has_request_context

    from meiqia.db import connection

    try:
        if has_request_context():  # the request's connection is there already
            _start_here(app)
        else:
            with app.app_context(), connection():
                _start_here(app)
    except Exception:  # noqa: BLE001 - e.g. tables not there yet: the watcher tries again
        log.exception("channels: could not start")
    from meiqia.services.sweeper import Sweeper

    interval = float(app.config.get("CHANNELS_SYNC_SECONDS", SYNC_SECONDS))
    if interval <= 0:  # no watch (the tests call ``sync`` themselves)
        return True
    watcher = Sweeper(app, interval, lambda: (sync(app), 0)[1], "channels")
    app.extensions["meiqia.channels_watcher"] = watcher
    watcher.ensure_running()
    return True


def _start_here(app: Any) -> None:
    start_all(app)
    from meiqia.channels import outbound

    # Deliveries committed by a process that died before queuing their job.
    outbound.resume_pending()


def install(app: Any) -> None:
    """Each request makes sure this process's channels run (``autostart``): the
    servers we ship start them before the first request, but an app served
    otherwise (``flask run``, another WSGI server) starts them with its first."""
    if not app.config.get("CHANNELS_AUTOSTART", True):
        return

    def ensure_started() -> None:
        import os

        if app.extensions.get("meiqia.channels_autostart_pid") != os.getpid():
            autostart(app)

    app.before_request(ensure_started)


def host_for(team_id_or_key: int | str, slug: str) -> ChannelHost | None:
    """The ``ChannelHost`` of a team's enabled channel, for inbound endpoints
    (``/channels/<slug>/...``): None when the team does not exist or has not
    enabled the channel (answer 404 then). ``team_id_or_key``: the team's id (an
    int or its digits)."""
    if not has_app_context():
        raise RuntimeError("host_for needs an app context (call it in a request, a job or "
                           "a plugin's meiqia command)")
    try:
        team_id = int(team_id_or_key)
    except (TypeError, ValueError):
        return None
    if team_id <= 0 or team_id > 2**31 - 1 or channel_class(slug) is None:
        return None
    if Team.get_or_none(Team.id == team_id) is None:
        return None
    obj = instance(team_id, slug)
    if obj is None:
        return None
    host = getattr(obj, "host", None)
    if isinstance(host, ChannelHost):
        return host
    return make_host(team_id, slug)
