"""pytest fixtures for testing meiqia plugins (registered through the ``pytest11``
entry point, so they exist wherever meiqia is installed; docs/plugins.md,
"Testing your plugin").

* ``make_meiqia_app(plugins=[...], config={...})``: a factory of apps, each on a
  new SQLite file under the test's ``tmp_path``, closed after the test;
* ``meiqia_app``: one such app, with the plugins and config of the test's
  ``@pytest.mark.meiqia(plugins=[...], config={...})`` marker, its app context
  pushed;
* ``meiqia_server``: ``meiqia_app`` served on a free port of 127.0.0.1 (a real
  HTTP and websocket server in a thread);
* ``meiqia_admin``: the first admin of a new team, logged in over HTTP;
* ``meiqia_agent``: an agent of that team, online, his workspace socket open
  (so routing gives him chats);
* ``meiqia_visitor``: a widget visitor of that team, session started;
* ``meiqia_clock``: the clock meiqia reads, to move; put back after the test.

A plugin in ``plugins`` is an object (a module, an instance with hookimpls) or
the name of an installed entry point of the group ``meiqia``, loaded through
that entry point exactly as a server loads it. Test apps load no other
installed entry point.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator
from typing import Any

import pytest

MARKER = "meiqia"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{MARKER}(plugins=[], config={{}}): the plugins (objects or installed "
        "entry-point names) and config of the meiqia_app fixture (meiqia.testing)")


@pytest.fixture
def make_meiqia_app(tmp_path: Any) -> Iterator[Callable[..., Any]]:
    """``make_meiqia_app(plugins=(), config=None, **settings) -> app``."""
    from meiqia.testing.app import close_app
    from meiqia.testing.app import make_app

    made: list[Any] = []

    def make(plugins: Iterable[Any] = (), config: dict[str, Any] | None = None,
             **settings: Any) -> Any:
        folder = tmp_path / f"meiqia-app-{len(made) + 1}"
        folder.mkdir()
        app = make_app(folder, plugins=list(plugins), **{**(config or {}), **settings})
        made.append(app)
        return app

    yield make
    for app in reversed(made):
        close_app(app)


@pytest.fixture
def meiqia_app(request: pytest.FixtureRequest,
               make_meiqia_app: Callable[..., Any]) -> Iterator[Any]:
    """The app of the test's ``@pytest.mark.meiqia(plugins=..., config=...)``."""
    marker = request.node.get_closest_marker(MARKER)
    kwargs = dict(marker.kwargs) if marker is not None else {}
    app = make_meiqia_app(plugins=kwargs.pop("plugins", ()), config=kwargs.pop("config", None))
    if kwargs:
        raise pytest.UsageError(f"@pytest.mark.{MARKER}: unknown arguments {sorted(kwargs)}")
    with app.app_context():
        yield app


@pytest.fixture
def meiqia_server(meiqia_app: Any) -> Iterator[Any]:
    """``meiqia_app`` on a free port: ``.port``, ``.url(path)`` (ws://…), ``.http(path)``."""
    from meiqia.testing.sockets import LiveServer
    from meiqia.testing.sockets import Socket

    server = LiveServer(meiqia_app)
    yield server
    Socket.close_all()  # a failed test must not leave client threads running
    server.stop()


@pytest.fixture
def meiqia_admin(meiqia_server: Any) -> Any:
    """The first admin of a new team (``.team``, ``.agent``), logged in over HTTP."""
    from meiqia.testing.clients import AgentClient

    return AgentClient(meiqia_server).register()


@pytest.fixture
def meiqia_agent(meiqia_admin: Any) -> Iterator[Any]:
    """An agent of the admin's team (limit 3), online with his socket open."""
    agent = meiqia_admin.new_agent(max_concurrent=3).go_online()
    yield agent
    agent.close()


@pytest.fixture
def meiqia_visitor(meiqia_admin: Any, meiqia_server: Any) -> Iterator[Any]:
    """A widget visitor of the admin's team, session started (``.conversation_id``)."""
    from meiqia.testing.clients import VisitorClient

    visitor = VisitorClient(meiqia_server, meiqia_admin.team["id"]).start(name="张三")
    yield visitor
    visitor.close()


@pytest.fixture
def meiqia_clock() -> Iterator[Any]:
    """The clock meiqia reads (``meiqia.clock``), to move; real time again after."""
    from meiqia.testing.clock import Clock

    clock = Clock()
    yield clock
    clock.reset()
