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
from tests.ws.conftest import Socket


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


@pytest.fixture
def one_turn(api, live):
    """The live server's sockets share one database turn, waited for 0.3 s; the
    test takes that turn itself to make every socket meet a busy database."""
    from tests.api.test_conversations import start

    api.app.extensions["meiqia.ws_gate"] = threading.BoundedSemaphore(1)
    api.app.config["DATABASE_BUSY_TIMEOUT"] = 0.3
    _client, token, _cid, _ = start(api.app, api.team["id"], name="访客甲")
    yield api.app.extensions["meiqia.ws_gate"], live.url(f"/ws/visitor?token={token}")
    Socket.close_all()


def test_a_connect_without_a_database_turn_is_told_to_come_back_with_1013(one_turn):
    import simple_websocket

    gate, url = one_turn
    assert gate.acquire(timeout=10)  # the database is "busy"
    try:
        for _ in range(3):  # each refusal's hint is its own (jittered)
            refused = Socket(url)
            frame = refused.expect("error", 10)["data"]
            assert frame["code"] == "unavailable" and frame["ref"] == "connect", frame
            assert 1000 <= frame["retry_after_ms"] <= 5000, frame
            with pytest.raises(simple_websocket.ConnectionClosed) as closed:
                while True:
                    refused.ws.receive(timeout=10)
            assert closed.value.reason == 1013
    finally:
        gate.release()
    again = Socket(url)  # the turn is back: the same client gets in
    again.expect("hello", 10)
    again.close()


def test_a_ping_needs_no_database_turn(one_turn):
    gate, url = one_turn
    visitor = Socket(url)
    visitor.expect("hello", 10)
    assert gate.acquire(timeout=10)
    try:
        for _ in range(3):
            visitor.send("ping")
            visitor.expect("pong", 10)
        assert not any(f["type"] == "error" for f in visitor.seen), visitor.seen
    finally:
        gate.release()
    visitor.close()


def test_an_agent_scope_serves_a_little_longer_while_the_database_is_busy(gated):
    """An agent socket's cached scope that is due for a refresh while every
    database turn is taken keeps answering (its pump must not stall while its
    queue fills); once it is older than SCOPE_STALE_SECONDS it decides nothing
    without the database."""
    from meiqia.web import ws
    from tests.factories import make_agent
    from tests.factories import make_team

    with gated.app_context():
        team = make_team()
        me, other = make_agent(team, "我"), make_agent(team, "别人")
        scope = ws._Scope(me)
        mine = {"type": "message", "data": {"conversation_id": 1, "handler_id": me.id}}
        theirs = {"type": "message", "data": {"conversation_id": 2, "handler_id": other.id}}
        topic = f"team:{team.id}"
        assert scope.prefilter(topic, mine)  # never loaded: the pump decides
        assert scope.allow(topic, mine) and not scope.allow(topic, theirs)
        scope.until = 0.0  # due for a refresh
        gate = gated.extensions["meiqia.ws_gate"]
        assert gate.acquire(timeout=1) and gate.acquire(timeout=1)
        try:
            assert scope.allow(topic, mine) and not scope.allow(topic, theirs)
            assert not scope.prefilter(topic, theirs)
            scope.loaded_at -= ws.SCOPE_STALE_SECONDS  # too old now
            scope.until = 0.0  # and the retry a second later is due
            assert scope.prefilter(topic, theirs)  # undecided without the database
            with pytest.raises(ws.DATABASE_ERRORS):
                scope.allow(topic, theirs)
        finally:
            gate.release()
            gate.release()
        assert scope.allow(topic, mine) and not scope.allow(topic, theirs)
