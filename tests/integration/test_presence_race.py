"""Whoever is shown online is served, on SQLite and on PostgreSQL.

A full run's browser test waited until the agent list showed the admin ``online``
and then asked for a person: routing found nobody. The list went by his socket's
row while routing also requires ``Agent.connected``, and the socket's open wrote
the two one after the other; a reader between them saw him online while no chat
could reach him. Here, many times over, his workspace opens while another writer
keeps taking his agent row (as his own status change or a colleague's edit does,
which widens the gap between the two writes to a real length), and the moment the
list would show him online, routing is asked whether it would serve him.
"""

from __future__ import annotations

import random
import threading
import time

from meiqia.db import database
from meiqia.models import Agent
from meiqia.models.base import utcnow
from meiqia.services import capacity
from meiqia.services import presence
from tests.helpers import wait_until

TRIALS = 60


def test_an_agent_shown_online_is_one_routing_serves(db_api):
    app = db_api.app
    app.config["AGENT_AWAY_GRACE_SECONDS"] = 0  # a closed workspace is gone at once
    li = db_api.online_agent(2, connected=False, name="李客服")
    agent_id, team_id = li.agent["id"], db_api.team["id"]
    stop = threading.Event()
    errors: list[BaseException] = []

    def in_app(work):
        def run() -> None:
            try:
                with app.app_context():
                    work()
            except BaseException as exc:  # noqa: BLE001 - reported by the assert
                errors.append(exc)
            finally:
                database.close()
        return run

    def other_writer() -> None:
        rng = random.Random(7)
        while not stop.is_set():
            with database.atomic():
                Agent.update(last_seen_at=utcnow()).where(Agent.id == agent_id).execute()
                time.sleep(rng.uniform(0, 0.004))  # the row held, as a write in progress holds it
            stop.wait(rng.uniform(0, 0.002))

    writer = threading.Thread(target=in_app(other_writer))
    writer.start()
    seen_online = 0
    wrong: list[int] = []
    try:
        for trial in range(TRIALS):
            shown = threading.Event()

            def opens_and_closes(shown: threading.Event = shown) -> None:
                agent = Agent.get_by_id(agent_id)
                socket_id = presence.agent_connected(agent)
                shown.wait(10)
                presence.agent_disconnected(agent, socket_id)

            workspace = threading.Thread(target=in_app(opens_and_closes))
            workspace.start()
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not errors:
                if presence.agent_presence(Agent.get_by_id(agent_id)) == "online":
                    seen_online += 1
                    if agent_id not in {seat.id for seat in capacity.seats(team_id)}:
                        wrong.append(trial)
                    break
            shown.set()
            workspace.join(20)
            assert not workspace.is_alive()
            wait_until(lambda: presence.agent_presence(Agent.get_by_id(agent_id)) == "away")
    finally:
        stop.set()
        writer.join(20)
    assert not errors, errors
    assert seen_online == TRIALS
    assert not wrong, f"shown online but not served in trials {wrong} of {TRIALS}"
