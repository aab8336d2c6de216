"""Applications for tests: a fresh SQLite file, jobs inline, no sweeper threads.

Moved here from tests/conftest.py so plugin authors build their test apps the
way meiqia's own suite does (docs/plugins.md, "Testing your plugin").
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import peewee


def base_config(tmp_path: Any, **extra: Any) -> dict[str, Any]:
    """The configuration of a test app whose files live under ``tmp_path``.

    No installed entry point is loaded (``ENTRY_POINT_PLUGINS = []``): a test app
    has the built-ins and the plugins its test names, whatever else is
    installed in the environment (the examples/ packages, for one)."""
    config = {
        "SECRET_KEY": "test-secret-key",
        "DATABASE_URL": f"sqlite:///{tmp_path}/meiqia.sqlite3",
        "REDIS_URL": "",
        "JOBS_INLINE": True,
        "PASSWORD_MIN_LENGTH": 8,
        # Tests run the inactivity sweep themselves (no thread per test app).
        "INACTIVITY_SWEEP_SECONDS": 0,
        # Likewise the presence sweep (tests/ws/test_presence.py turns it on).
        "PRESENCE_SWEEP_SECONDS": 0,
        # And the sweep for unanswered messages (tests call ``answering.sweep``).
        "ANSWER_SWEEP_SECONDS": 0,
        # And the channels' settings watch (tests call ``registry.sync``).
        "CHANNELS_SYNC_SECONDS": 0,
        "ENTRY_POINT_PLUGINS": [],
        # Tests register many teams from 127.0.0.1 (test_login_throttle sets it low).
        "REGISTER_RATE_PER_CLIENT": "10000/minute",
    }
    config.update(extra)
    return config


def make_app(tmp_path: Any, plugins: Iterable[Any] = (), **config: Any) -> Any:
    """An application on a new SQLite database under ``tmp_path``, schema created.

    ``plugins``: plugin objects (modules, instances) registered after all others,
    or names of installed entry points (strings), loaded through their entry
    point as a server loads them. ``config`` overrides ``base_config``."""
    from meiqia import create_app
    from meiqia import migrations
    from meiqia.db import database

    objects = [plugin for plugin in plugins if not isinstance(plugin, str)]
    names = [plugin for plugin in plugins if isinstance(plugin, str)]
    if names:
        config["ENTRY_POINT_PLUGINS"] = [*config.get("ENTRY_POINT_PLUGINS", []), *names]
    app = create_app(
        base_config(tmp_path, **config),
        plugins=objects,
        instance_path=str(tmp_path / "instance"),
    )
    missing = [name for name in names
               if app.extensions["meiqia.plugins"].get_plugin(name) is None]
    if missing:
        close_app(app)
        raise LookupError(f"no installed entry point named {', '.join(missing)} in the "
                          "group 'meiqia' (is the package installed? `pip install -e .`)")
    with app.app_context():
        migrations.upgrade(database.obj)
        if not database.is_closed():
            database.close()
    return app


def close_app(app: Any) -> None:
    """Stop what the app started (queue, hub, plugin threads) and close its database."""
    from meiqia.db import database

    for sweeper in ("meiqia.presence", "meiqia.inactivity", "meiqia.answer_sweep",
                    "meiqia.answer_retrier"):
        if sweeper in app.extensions:  # a test that turned one on
            app.extensions[sweeper].stop()
    from meiqia.channels import registry as channel_registry

    channel_registry.stop_all(app)  # channels' pollers
    app.extensions["meiqia.jobs"].close()
    app.extensions["meiqia.hub"].close()
    app.extensions["meiqia.plugin_runtime"].close()
    if not database.is_closed():
        database.close()
    db = app.extensions["meiqia.db"]
    if isinstance(db, peewee.SqliteDatabase):
        # Only the idle ones: a server thread of the test may still be finishing a
        # query (a websocket's last presence update), and closing a SQLite
        # connection under a running statement crashed the process (a segfault in
        # CI). Connections in use go back to the pool and are freed with it.
        db.close_idle()
    elif hasattr(db, "close_all"):
        db.close_all()
