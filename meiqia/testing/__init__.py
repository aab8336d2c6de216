"""Testing meiqia plugins, and meiqia itself (docs/plugins.md, "Testing your plugin").

The pytest fixtures are in ``meiqia.testing.plugin``, registered as a pytest
plugin through the ``pytest11`` entry point: installing meiqia makes
``meiqia_app``, ``make_meiqia_app``, ``meiqia_server``, ``meiqia_admin``,
``meiqia_agent``, ``meiqia_visitor`` and ``meiqia_clock`` available to every
test. The pieces they are built from are importable for tests that need more:

* ``make_app``, ``close_app``, ``base_config``: an app on a new SQLite file;
* ``LiveServer``, ``Socket``: a real server on a free port, a websocket client;
* ``AgentClient``, ``VisitorClient``: an agent and a widget visitor speaking
  the real protocol (HTTP and websockets) to a ``LiveServer``;
* ``ApiClient``: an agent through Flask's test client (no server);
* ``Clock``: the clock meiqia reads, moved by a test;
* ``wait_until``: wait for a state (a deadline, not a timing claim).

meiqia's own suite (tests/) is built on the same pieces.
"""

from meiqia.testing.api import ApiClient
from meiqia.testing.api import new_client_id
from meiqia.testing.api import wait_until
from meiqia.testing.app import base_config
from meiqia.testing.app import close_app
from meiqia.testing.app import make_app
from meiqia.testing.clients import AgentClient
from meiqia.testing.clients import VisitorClient
from meiqia.testing.clock import Clock
from meiqia.testing.sockets import LiveServer
from meiqia.testing.sockets import Socket

__all__ = ["AgentClient", "ApiClient", "Clock", "LiveServer", "Socket", "VisitorClient",
           "base_config", "close_app", "make_app", "new_client_id", "wait_until"]
