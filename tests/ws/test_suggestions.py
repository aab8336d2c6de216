"""The agent's ``suggestions`` frame over real sockets, on both databases.

In a chat an agent handles, the bot ranks every visitor message for the agent
(docs/protocol.md, ``suggestions``): the frame names the message, the handler and
the answers, and each shown suggestion is logged (outcome ``ignored`` until the
agent uses it). The ranking runs after the visitor's ``ack``: an answerer plugin
holds it here until the test has the ack. On the threaded test server the hub
sends that ack as soon as the message is published, so this does not tell the
order apart; under gevent it does (tests/integration/test_suggestions_after_ack.py).
"""

from __future__ import annotations

import logging
import threading
import types

import peewee
import pytest

from meiqia.hookspecs import hookimpl
from meiqia.models import SuggestionLog
from meiqia.testing.clients import VisitorClient
from meiqia.web import ws
from tests.ws.conftest import served_team

HELD = "这个问题请慢慢想"


class HeldAnswerer:
    """Suggests one entry for every question; on ``HELD`` it first waits for
    ``released`` (within the answer budget of 2 s) and records whether it was
    released or gave up."""

    name = "held-answerer"

    def __init__(self) -> None:
        self.released = threading.Event()
        self.answered = threading.Event()
        self.was_released: list[bool] = []

    def answer(self, question, conversation):
        if HELD in question:
            self.was_released.append(self.released.wait(1.5))
            self.answered.set()
        return [{"entry_id": "held", "question": "慢慢想的问题", "answer": "想好的回答",
                 "score": 0.99}]


@pytest.mark.parametrize("db", ["sqlite", "postgres"])
def test_the_visitor_is_acknowledged_before_the_agent_gets_suggestions(request, tmp_path, db):
    answerer = HeldAnswerer()
    plugin = types.ModuleType("held_answerer")
    plugin.register_answerers = hookimpl(lambda app: [answerer])
    url = None if db == "sqlite" else request.getfixturevalue("pg_database_url")
    with served_team(tmp_path, (plugin,), url) as (_app, live, admin):
        for trial in range(3):
            answerer.released.clear()
            answerer.answered.clear()
            visitor = VisitorClient(live, admin.team["id"]).start()
            cid = visitor.conversation_id
            assert admin.get(f"/api/v1/conversations/{cid}").get_json()["status"] == "open"

            sent = visitor.send(f"{HELD} {trial}")  # waits for the ack
            # The ack came while the answerer was still holding the ranking.
            assert not answerer.answered.is_set(), trial
            answerer.released.set()
            frame = admin.expect("suggestions", where=lambda d, m=sent["id"]:
                                 d["message_id"] == m)["data"]
            assert frame["conversation_id"] == cid
            assert frame["handler_id"] == admin.agent["id"]
            assert [s["entry_id"] for s in frame["suggestions"]] == ["held"]
            assert frame["suggestions"][0]["answer"] == "想好的回答"
            assert answerer.was_released[-1] is True, trial
            shown = SuggestionLog.select().where(SuggestionLog.message_id == sent["id"])
            assert [(s.entry_key, s.outcome) for s in shown] == [("held", "ignored")]

            # An ordinary message: its suggestions too, after its ack.
            plain = visitor.send("普通的问题")
            again = admin.expect("suggestions", where=lambda d, m=plain["id"]:
                                 d["message_id"] == m)["data"]
            assert [s["entry_id"] for s in again["suggestions"]] == ["held"]
            visitor.close()


def test_a_step_after_the_answer_that_fails_is_logged_and_the_next_still_runs(caplog):
    ran: list[str] = []

    def database_down() -> None:
        ran.append("database")
        raise peewee.OperationalError("server closed the connection unexpectedly")

    def broken() -> None:
        ran.append("broken")
        raise RuntimeError("a bug")

    with caplog.at_level(logging.WARNING, logger="meiqia.web.ws"):
        ws._after_answer([database_down, broken, lambda: ran.append("last")], "message")
    assert ran == ["database", "broken", "last"]
    said = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert ("WARNING", "ws: after a message frame: the database failed (OperationalError)") \
        in said
    assert ("ERROR", "ws: after a message frame: a step failed") in said
    # The database's own words (which may name hosts) are not logged.
    assert not any("server closed" in message for _, message in said)
