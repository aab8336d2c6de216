"""A real server in a thread and websocket clients against it (``meiqia.testing.sockets``)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest

from meiqia.testing.sockets import Client  # noqa: F401 - tests import it from here
from meiqia.testing.sockets import LiveServer
from meiqia.testing.sockets import Socket
from meiqia.testing.sockets import cookie_of  # noqa: F401 - tests import it from here


@pytest.fixture
def live(app):
    server = LiveServer(app)
    yield server
    Socket.close_all()  # a failed test must not leave client threads running
    server.stop()


@contextlib.contextmanager
def live_apps(apps: list[Any]) -> Iterator[list[LiveServer]]:
    """A real server for each of ``apps`` (once its hub is ready), inside the first
    app's context: two processes of one deployment when they share a Redis. All are
    stopped and closed after."""
    from tests.conftest import close_app

    for app in apps:
        hub = app.extensions["meiqia.hub"]
        if hasattr(hub, "wait_ready"):
            assert hub.wait_ready()
    servers = [LiveServer(app) for app in apps]
    try:
        with apps[0].app_context():
            yield servers
    finally:
        Socket.close_all()
        for server in servers:
            server.stop()
        for app in apps:
            close_app(app)


@contextlib.contextmanager
def served_team(tmp_path: Any, plugins: tuple = (), database_url: str | None = None,
                bot: bool = False, **settings: Any) -> Iterator[tuple[Any, LiveServer, Any]]:
    """A real server of an app with ``plugins`` (SQLite, or the PostgreSQL at
    ``database_url``, emptied first) and its registered admin, online with his
    workspace open and the bot off unless ``bot``: ``(app, live, admin)``, inside the
    app's context; everything is stopped after."""
    from meiqia.testing.clients import AgentClient
    from tests.conftest import close_app
    from tests.conftest import make_app
    from tests.conftest import truncate_all

    extra = {"DATABASE_URL": database_url} if database_url else {}
    app = make_app(tmp_path, plugins=plugins, **extra, **settings)
    if database_url:
        truncate_all(database_url)
    live = LiveServer(app)
    try:
        with app.app_context():
            admin = AgentClient(live).register()
            if not bot:
                admin.set_team_settings(bot_enabled=False)
            admin.go_online()
            yield app, live, admin
    finally:
        Socket.close_all()
        live.stop()
        close_app(app)
