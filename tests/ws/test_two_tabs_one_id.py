"""Two tabs send the same ``client_msg_id`` at once: each send gets one ``ack``, and
only the one that stored the message says ``"duplicate": false``.

Found from outside on production (gunicorn gevent, PostgreSQL, Redis; 19 of 20
trials): the tab whose store lost the race got ``ack duplicate:false`` and then
``ack duplicate:true`` for its one send, the second sometimes after ``message seq 2``.
The message, stored by the other tab, reached the losing tab's socket while that
socket's own store was still under way; the stream took it for the socket's own
message and sent it as its ack at once, new, and the send's real outcome, a
duplicate, was acknowledged again. Now the message and what follows it in its
conversation wait on that socket until the send's outcome is known.

The race is made on purpose every time: a ``before_message_saved`` plugin (a
redactor, third-party code) holds the losing tab's send before its store, until
the winning tab's message is stored, acknowledged and taken by the losing tab's
socket from the hub. On SQLite and PostgreSQL with the in-process hub, and on
PostgreSQL with the two tabs on two apps sharing one Redis (production's shape).
"""

from __future__ import annotations

import threading
import types

import pytest

from meiqia.hookspecs import hookimpl
from meiqia.hub import wait_for
from meiqia.services import messages
from meiqia.testing.clients import AgentClient
from meiqia.testing.clients import VisitorClient
from tests.conftest import make_app
from tests.conftest import truncate_all
from tests.ws.conftest import Socket
from tests.ws.conftest import live_apps

SAME = "两个标签页同时发的同一句"
TRIALS = 6


class HoldTheFirstSend:
    """A redactor that holds the first send of ``SAME`` of each trial until told."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.taken = False
        self.waiting = threading.Event()
        self.go = threading.Event()

    def reset(self) -> None:
        self.taken = False
        self.waiting.clear()
        self.go.clear()

    @hookimpl
    def before_message_saved(self, message, conversation):
        if message["body"] != SAME:
            return None
        with self.lock:
            first, self.taken = not self.taken, True
        if first:
            self.waiting.set()
            self.go.wait(15)  # within its budget (20 s)
        return None


def taken_by_every_socket(hub, topic: str) -> bool:
    """Every socket of ``topic`` in this process has taken what the hub queued for it
    (its queue is empty and its pump has run dry: the frames went to its stream)."""
    with hub._lock:
        subs = list(hub._subscribers.get(topic, ()))
    return all(sub.queue.empty() and not sub.notify.__self__.running for sub in subs)


@pytest.fixture(params=["sqlite", "postgres", "postgres-redis"])
def two_tabs(request, tmp_path):
    """(winner's server, loser's server and its app, holder): on ``postgres-redis``
    the losing tab is on a second app, which hears the first through Redis."""
    holder = HoldTheFirstSend()
    plugin = types.ModuleType("hold_the_first_send")
    plugin.before_message_saved = holder.before_message_saved
    settings = {"HOOK_BUDGETS": {"before_message_saved": 20.0}}
    if request.param != "sqlite":
        settings["DATABASE_URL"] = request.getfixturevalue("pg_database_url")
    if request.param == "postgres-redis":
        settings["REDIS_URL"] = request.getfixturevalue("redis_url")
        settings["REDIS_PREFIX"] = request.getfixturevalue("redis_prefix")
    apps = [make_app(tmp_path, plugins=(plugin,), **settings)]
    if request.param == "postgres-redis":
        apps.append(make_app(tmp_path, plugins=(plugin,), **settings))
    if "DATABASE_URL" in settings:
        truncate_all(settings["DATABASE_URL"])
    with live_apps(apps) as servers:
        yield servers[0], servers[-1], apps[-1], holder


def test_the_losing_tab_gets_one_ack_and_it_says_duplicate(two_tabs):
    winner_server, loser_server, loser_app, holder = two_tabs
    admin = AgentClient(winner_server).register()
    admin.set_team_settings(bot_enabled=False)
    hub = loser_app.extensions["meiqia.hub"]
    for trial in range(TRIALS):
        holder.reset()
        visitor = VisitorClient(winner_server, admin.team["id"]).start()
        cid, token = visitor.conversation_id, visitor.token
        winner = Socket(winner_server.url(f"/ws/visitor?token={token}"))
        loser = Socket(loser_server.url(f"/ws/visitor?token={token}"))
        # A third tab beside the loser: when it has the message, so has the
        # loser's process (on one app: the publish reached them before the ack).
        beside = Socket(loser_server.url(f"/ws/visitor?token={token}"))
        for tab in (winner, loser, beside):
            tab.expect("hello", timeout=15)
        same = f"same-{trial}"
        loser.send("message", {"body": SAME, "client_msg_id": same})
        assert holder.waiting.wait(15), "the first send never reached the redactor"
        winner.send("message", {"body": SAME, "client_msg_id": same})
        won = winner.expect("ack", timeout=15, where=lambda d, s=same: d["client_msg_id"] == s)
        assert won["data"]["duplicate"] is False
        seq = won["data"]["message"]["seq"]
        beside.expect("message", timeout=15, where=lambda d, s=same: d.get("client_msg_id") == s)
        topic = messages.conversation_topic(cid)
        assert wait_for(lambda t=topic: taken_by_every_socket(hub, t), timeout=15)
        holder.go.set()  # the loser's store now meets the winner's row
        lost = loser.expect("ack", timeout=15, where=lambda d, s=same: d["client_msg_id"] == s)
        assert lost["data"]["duplicate"] is True, (trial, lost, loser.seen)
        assert lost["data"]["message"]["id"] == won["data"]["message"]["id"]
        # The conversation goes on, on every tab, from the message on.
        after = f"next-{trial}"
        winner.send("message", {"body": "然后呢", "client_msg_id": after})
        winner.expect("ack", timeout=15, where=lambda d, a=after: d["client_msg_id"] == a)
        loser.expect("message", timeout=15, where=lambda d: d.get("body") == "然后呢")
        beside.expect("message", timeout=15, where=lambda d: d.get("body") == "然后呢")
        for name, tab in (("winner", winner), ("loser", loser), ("beside", beside)):
            acks = [f["data"] for f in tab.seen if f["type"] == "ack"
                    and f["data"]["client_msg_id"] == same]
            positioned = [(f["type"], (f["data"].get("message") or f["data"])["seq"])
                          for f in tab.seen if f["type"] in ("ack", "message")]
            # Every position once, in order, none missing (a second ack of the
            # message would come in its place, before the next message).
            seqs = [s for _kind, s in positioned]
            assert seqs == list(range(1, len(seqs) + 1)), (trial, name, positioned)
            assert seq in seqs, (trial, name, positioned)
            if name == "beside":  # it sent nothing: the message, as a message
                assert acks == [], (trial, positioned)
            else:  # its one send, one ack, never also as a message
                assert len(acks) == 1, (trial, name, positioned)
                assert ("message", seq) not in positioned, (trial, name, positioned)
        winner.close()
        loser.close()
        beside.close()
