"""meiqia: a self-hosted, bot-first customer-service system.

``create_app`` is the one application factory (STYLE rule 5): configuration,
database, event hub, job queue, plugins and blueprints, in that order.
"""

from __future__ import annotations

# First of all: `meiqia run` serves with gevent, whose patches must precede every
# import of threading, socket and ssl (Flask imports ssl). Other processes: no-op.
from meiqia.embedded_server import patch_if_serving

patch_if_serving()

import logging  # noqa: E402 - after the gevent patch, on purpose
import os  # noqa: E402
import secrets  # noqa: E402
from collections.abc import Iterable  # noqa: E402
from typing import Any  # noqa: E402

from flask import Flask  # noqa: E402

from meiqia.private_files import instance_folders  # noqa: E402

__version__ = "0.1.0"


def _secret_key(app: Flask) -> str:
    """The configured key, else the one ``meiqia init`` wrote, else a new one."""
    if app.config.get("SECRET_KEY"):
        return app.config["SECRET_KEY"]
    path = os.path.join(app.instance_path, "secret_key")
    if os.path.exists(path):
        with open(path, encoding="ascii") as fh:
            return fh.read().strip()
    key = secrets.token_hex(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(key)
    return key


def create_app(
    config: dict[str, Any] | None = None,
    plugins: Iterable[Any] = (),
    instance_path: str | None = None,
) -> Flask:
    """Build the application.

    ``config`` replaces the ``MEIQIA_*`` environment (tests pass it);
    ``plugins`` are extra plugin objects registered after all others.
    """
    from meiqia import config as config_module
    from meiqia import db
    from meiqia import hub
    from meiqia import jobs
    from meiqia.plugin_runtime import PluginRuntime
    from meiqia.plugin_runtime.runtime import Settings
    from meiqia.plugin_runtime.state import StateStore
    from meiqia.plugins import make_plugin_manager
    from meiqia.plugins import start_plugins
    from meiqia.web import register_web

    instance_path = instance_path or os.environ.get("MEIQIA_INSTANCE_PATH") or None
    app = Flask(__name__, instance_relative_config=True, instance_path=instance_path)
    instance_folders(app.instance_path)  # the database, the key, uploads/, exports/
    config_module.load(app, config)
    app.config["SECRET_KEY"] = _secret_key(app)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from meiqia import log_redaction

    log_redaction.install()  # tokens in URLs never reach a log (docs/security.md)
    if app.config["GEOIP_DATABASE"]:
        from meiqia.services import geoip

        geoip.configure(app.config)  # a wrong path stops start-up, not a visit
    from meiqia.bot import semantic

    semantic.configure(app.config["BOT_EMBEDDINGS"], app.config["BOT_EMBEDDING_MODEL"],
                       app.config["BOT_EMBEDDING_INT8"])
    db.init_app(app)
    hub.init_app(app)
    jobs.init_app(app)
    runtime = PluginRuntime(Settings.from_config(app.config))
    runtime.store = StateStore(app.extensions["meiqia.db"], app.config["PLUGIN_STATE_REFRESH"])
    pm = make_plugin_manager(
        app.instance_path,
        extra=plugins,
        modules=app.config["PLUGINS"],
        disabled=app.config["DISABLED_PLUGINS"],
        runtime=runtime,
        entry_points=app.config["ENTRY_POINT_PLUGINS"],
    )
    app.extensions["meiqia.plugins"] = pm
    app.extensions["meiqia.plugin_runtime"] = runtime
    register_web(app)
    from meiqia.services import answering
    from meiqia.services import inactivity
    from meiqia.services import presence

    inactivity.init_app(app)
    presence.init_app(app)
    answering.init_app(app)
    # Before the plugins add routes and channels: a plugin whose startup fails
    # is unregistered (or stops start-up, PLUGIN_STARTUP_FAILURE) and adds nothing.
    start_plugins(pm, app, app.config["PLUGIN_STARTUP_FAILURE"])
    for result in pm.hook.register_blueprints(app=app):
        for blueprint in result if isinstance(result, list | tuple) else [result]:
            app.register_blueprint(blueprint)
    app.extensions["meiqia.channels"] = {
        channel.type: channel for channel in pm.call_flat("register_channels", app=app)
    }
    # Once, at start-up, with the application itself (docs/plugins.md): not on the
    # first question, where an answerer's plugin got a proxy of it.
    app.extensions["meiqia.answerers"] = _usable_answerers(
        pm, pm.call_flat("register_answerers", app=app))
    app.extensions["meiqia.ticket_sinks"] = {
        cls.type: cls for cls in pm.call_flat("register_ticket_sinks", app=app)}
    from meiqia.channels import registry as channel_registry

    channel_registry.install(app)  # each team's enabled channels start with a first request
    return app


def _usable_answerers(pm: Any, found: list[Any]) -> list[Any]:
    """The answerers ``register_answerers`` returned that have an ``answer`` method;
    the others are left out at start-up and logged with their plugin's name, as an
    unusable result is: asked, one would fail every question with a 500."""
    usable = []
    for answerer in found:
        if callable(getattr(answerer, "answer", None)):
            usable.append(answerer)
            continue
        logging.getLogger("meiqia.plugins").error(
            "plugin %s: hook register_answerers returned an unusable result: a %s has no "
            "answer() method; it is left out", pm.owner_of(answerer) or "?",
            type(answerer).__name__)
    return usable
