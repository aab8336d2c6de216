"""A real server in a thread and websocket clients against it (``meiqia.testing.sockets``)."""

from __future__ import annotations

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
