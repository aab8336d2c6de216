"""Socket work takes turns for the database (``meiqia.web.ws.socket_unit``).

Thousands of sockets share a pool of DATABASE_POOL_SIZE connections; a burst
of frames must wait in line behind WS_DB_CONCURRENCY units, not exhaust the
pool and fail.
"""

from __future__ import annotations

import threading

import pytest
from playhouse.pool import MaxConnectionsExceeded

from meiqia.models import Team
from meiqia.web.ws import socket_unit
from tests.conftest import close_app
from tests.conftest import make_app
from tests.helpers import wait_until


@pytest.fixture
def gated(tmp_path):
    app = make_app(tmp_path, WS_DB_CONCURRENCY=2, DATABASE_BUSY_TIMEOUT=0.5)
    yield app
    close_app(app)


def test_no_more_than_the_configured_units_use_the_database_at_once(gated):
    inside, most, lock = [0], [0], threading.Lock()
    release = threading.Event()
    done = []

    def frame():
        with gated.app_context(), socket_unit():
            with lock:
                inside[0] += 1
                most[0] = max(most[0], inside[0])
            Team.select().count()  # really uses the connection
            release.wait(10)
            with lock:
                inside[0] -= 1
        done.append(True)

    threads = [threading.Thread(target=frame) for _ in range(6)]
    for t in threads:
        t.start()
    wait_until(lambda: inside[0] == 2, 10, "two units inside the gate")
    assert most[0] == 2  # the other four wait in line
    release.set()
    for t in threads:
        t.join(10)
    assert len(done) == 6 and most[0] == 2


def test_a_unit_inside_a_unit_shares_its_turn(gated):
    with gated.app_context(), socket_unit(), socket_unit(), socket_unit():
        assert Team.select().count() == 0


def test_waiting_past_the_busy_timeout_is_reported_as_an_exhausted_pool(gated):
    holding, release = threading.Event(), threading.Event()

    def hold():
        with gated.app_context(), socket_unit():
            holding.set()
            release.wait(10)

    holders = [threading.Thread(target=hold) for _ in range(2)]
    for t in holders:
        t.start()
    try:
        wait_until(holding.is_set, 10, "a unit holding the gate")
        wait_until(lambda: _gate_full(gated), 10, "both turns taken")
        with gated.app_context(), pytest.raises(MaxConnectionsExceeded):
            with socket_unit():
                pass
    finally:
        release.set()
        for t in holders:
            t.join(10)
    with gated.app_context(), socket_unit():  # the turns came back
        assert Team.select().count() == 0


def _gate_full(app) -> bool:
    gate = app.extensions["meiqia.ws_gate"]
    if gate.acquire(blocking=False):
        gate.release()
        return False
    return True
