"""A message waits for SQLite's write lock at most DATABASE_BUSY_TIMEOUT in all.

Found from docs/protocol.md ("The database busy": a message waits at most the busy
timeout, then the REST send routes answer 503): alone, the widget's send answered
503 after the timeout; with the bot's job for an earlier message in flight, after
twice the timeout; with more writers queued, not before the client gave up, and the
message was stored after that. Each wait had the whole timeout: the writer's turn in
the process (``db._WriterTurn``), then SQLite's busy_timeout, then again for each
later write. Now a unit of work (a request) has one budget of waiting for all of
them (``ImmediateSqliteDatabase._locking``).

Here on a real SQLite file: another connection holds the write lock (BEGIN
IMMEDIATE, as another process would); writers of the same process, each in its own
unit of work as a bot job or a socket frame is, are queued first and hold the turn
while they wait; then the visitor's HTTP send. Its 503 comes within its own budget:
under one and a half timeouts, where it came after two (the queued writer's whole
wait, then its own whole wait).
"""

from __future__ import annotations

import threading
import time

import peewee
import pytest

from meiqia.db import connection
from meiqia.db import database
from meiqia.models import Team
from tests.conftest import close_app
from tests.conftest import make_app
from tests.helpers import wait_until
from tests.reliability.test_database_faults import bodies
from tests.reliability.test_database_faults import open_chat
from tests.reliability.test_database_faults import say
from tests.reliability.test_database_faults import sqlite_lock

#: The busy timeout of these tests, in seconds: long enough that a loaded machine's
#: slowness (the request's own work, a thread waiting for a core) stays far inside
#: the half timeout between one budget and the old two.
BOUND = 2.0


def queued_writer(app, refused: list) -> threading.Thread:
    """A writer in its own unit of work (a bot job, a socket frame), started: it
    takes the turn and waits for the lock, or waits for the turn."""

    def write() -> None:
        with app.app_context(), connection():
            try:
                Team.update(name=Team.name).execute()
            except peewee.OperationalError as exc:
                refused.append(exc)

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("queued", [1, 2])
def test_the_send_waits_one_timeout_in_all_behind_queued_writers(tmp_path, queued):
    app = make_app(tmp_path, DATABASE_BUSY_TIMEOUT=BOUND)
    try:
        with app.app_context():
            api, visitor, token, cid = open_chat(app)
            assert say(visitor, token, cid, "第一句", "m1").status_code == 201
            holder = sqlite_lock(app)
            turn = database.obj._writer
            refused: list = []
            first = queued_writer(app, refused)
            # The first writer holds the turn and waits for SQLite's lock.
            wait_until(lambda: turn._owner == first.ident, timeout=30)
            writers = [first] + [queued_writer(app, refused) for _ in range(queued - 1)]
            started = time.monotonic()
            response = say(visitor, token, cid, "第二句", "m2")
            waited = time.monotonic() - started
            assert response.status_code == 503, response.get_json()
            assert response.get_json()["error"]["code"] == "unavailable"
            # One budget: not the queued writer's whole wait and then its own.
            assert waited < 1.5 * BOUND, waited
            for writer in writers:
                writer.join(30)
            assert len(refused) == queued  # they were refused too, each within its own
            holder.execute("ROLLBACK")
            holder.close()
            # Nothing of the refused message lands later; its resend is stored once.
            assert bodies(api, cid) == ["第一句"]
            again = say(visitor, token, cid, "第二句", "m2")
            assert again.status_code == 201 and not again.get_json()["duplicate"]
            assert bodies(api, cid) == ["第一句", "第二句"]
    finally:
        close_app(app)



def test_a_socket_frame_s_wait_at_the_gate_comes_out_of_its_budget(db_app):
    """A socket frame first waits for its turn at the process's gate
    (``ws.socket_unit``, WS_DB_CONCURRENCY turns) and then, on SQLite, for the
    writers' line and the lock, on PostgreSQL for a row lock. The gate's wait had a
    timeout of its own before the lock's whole one: two timeouts in all. Here the
    gate is full for at least HELD seconds; once in, the frame may wait only what
    is left (``db_wait``; on PostgreSQL the ``lock_timeout`` its store sends)."""
    from meiqia.db import is_postgres
    from meiqia.db import lock_bound
    from meiqia.web.ws import socket_unit

    held_for = 0.5
    budget = db_app.config["DATABASE_BUSY_TIMEOUT"]
    gate = db_app.extensions["meiqia.ws_gate"]
    taken = 0
    while gate.acquire(blocking=False):
        taken += 1
    seen: dict = {}
    asking = threading.Event()

    def frame() -> None:
        with db_app.app_context():
            asking.set()
            with socket_unit():
                seen["left"] = database.obj.wait_left()
                seen["bound"] = lock_bound()

    thread = threading.Thread(target=frame, daemon=True)
    thread.start()
    assert asking.wait(30)
    since = time.monotonic()
    wait_until(lambda: time.monotonic() - since >= held_for, timeout=30)  # the gate held
    for _ in range(taken):
        gate.release()
    thread.join(30)
    assert seen["left"] <= budget - held_for, seen
    if is_postgres():
        millis = int(seen["bound"].split("=")[1].split(";")[0])
        assert millis <= (budget - held_for) * 1000, seen
