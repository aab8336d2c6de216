"""A visitor socket stores his messages with the conversation's row it already has,
and whatever changed the chat since still decides.

A message frame in a chat an agent handles no longer reads the conversation's row
first (one database round trip per message, issue 19): the store's own statement
reads back the status, handler and group and refuses an ended chat. These tests
change the chat between two messages of one socket, and race an end against a
message many times, on SQLite and on PostgreSQL: an ended chat refuses the message
(nothing stored after the end line), a transfer routes the next message to the new
handler's socket, and a redactor (third-party code) still gets the row as it is now.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
import types

import pytest

from meiqia.hookspecs import hookimpl
from meiqia.testing.clients import AgentClient
from meiqia.testing.clients import VisitorClient
from tests.ws.conftest import served_team

TRIALS = 25


def _database(request) -> str | None:
    return None if request.param == "sqlite" else request.getfixturevalue("pg_database_url")


@pytest.fixture(params=["sqlite", "postgres"])
def served(request, tmp_path):
    with served_team(tmp_path, database_url=_database(request)) as running:
        app, live, admin = running
        admin.patch(f"/api/v1/agents/{admin.agent['id']}", json={"max_concurrent": 100})
        yield running


def _open_chat(live, admin: AgentClient) -> tuple[VisitorClient, object]:
    visitor = VisitorClient(live, admin.team["id"]).start()
    assert visitor.post(f"/api/v1/widget/conversations/{visitor.conversation_id}/human"
                        ).json()["status"] == "open"
    socket = visitor.socket()
    socket.send("message", {"body": "第一句", "client_msg_id": "first"})
    socket.expect("ack")  # the socket's row now says "open", handled by the admin
    return visitor, socket


def _stored_after_the_end(admin: AgentClient, cid: int) -> list[str]:
    stored = admin.get(f"/api/v1/conversations/{cid}/messages").json()["messages"]
    ended = [m["id"] for m in stored if (m.get("payload") or {}).get("event") == "ended"]
    assert ended, stored
    return [m["body"] for m in stored if m["id"] > ended[0]]


def test_a_transfer_and_an_end_between_two_messages_still_decide(served):
    _app, live, admin = served
    li = admin.new_agent(name="李客服", email="li@example.com")
    li.go_online()
    li_socket = li.socket()
    visitor, socket = _open_chat(live, admin)
    cid = visitor.conversation_id
    moved = admin.post(f"/api/v1/conversations/{cid}/transfer", json={"agent_id": li.agent["id"]})
    assert moved.status_code == 200, moved.json()
    socket.send("message", {"body": "转给李客服之后", "client_msg_id": "second"})
    socket.expect("ack")
    heard = li_socket.expect("message", where=lambda d: d.get("body") == "转给李客服之后")
    assert heard["data"]["handler_id"] == li.agent["id"]
    assert li.post(f"/api/v1/conversations/{cid}/end").status_code == 200
    socket.send("message", {"body": "结束之后", "client_msg_id": "third"})
    assert socket.expect("error")["data"]["code"] == "conflict"
    assert _stored_after_the_end(admin, cid) == []


def test_a_message_racing_the_end_is_stored_before_it_or_refused(served):
    """No redactor here: the message goes straight from the socket's row to the
    store while another thread ends the chat at a random moment."""
    _app, live, admin = served
    rng = random.Random(19)
    outcomes = {"ack": 0, "error": 0}
    for trial in range(TRIALS):
        visitor, socket = _open_chat(live, admin)
        cid = visitor.conversation_id
        ended: list = []
        ender = threading.Thread(target=lambda cid=cid, ended=ended: ended.append(
            admin.post(f"/api/v1/conversations/{cid}/end")))
        body = f"和结束赛跑的第{trial}句"
        # The end's request starts first; the message follows after a random part
        # of the time the end takes, so either may reach the store first.
        sender = threading.Timer(rng.uniform(0, 0.006), socket.send, args=(
            "message", {"body": body, "client_msg_id": f"race-{trial}"}))
        ender.start()
        sender.start()
        sender.join(10)
        frame = _answer(socket, body)
        ender.join(10)
        assert ended and ended[0].status_code == 200, ended
        outcomes[frame["type"]] += 1
        if frame["type"] == "ack":  # stored before the end line, never after it
            assert body not in _stored_after_the_end(admin, cid), trial
        else:
            assert frame["data"]["code"] == "conflict", frame
            assert body not in [m["body"] for m in visitor.messages()]
            assert _stored_after_the_end(admin, cid) == []
        visitor.close()
    assert sum(outcomes.values()) == TRIALS, outcomes


def _answer(socket, body: str, timeout: float = 10.0) -> dict:
    """The socket's ack of ``body`` or its error frame, whichever comes (read
    with a deadline: frames are read only while a test waits for one)."""
    deadline = time.monotonic() + timeout
    while True:
        for frame in socket.seen:
            if frame["type"] == "error" or (
                    frame["type"] == "ack" and frame["data"]["message"]["body"] == body):
                return frame
        left = deadline - time.monotonic()
        assert left > 0, f"neither an ack nor an error for {body!r}: {socket.seen}"
        with contextlib.suppress(AssertionError):  # reads whatever comes meanwhile
            socket.expect("error", min(0.2, left))


class TagReader:
    """A redactor that notes the tags of the conversation it is given."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, tuple]] = []

    @hookimpl
    def before_message_saved(self, message, conversation):
        self.seen.append((message["body"], tuple(conversation.tags)))
        return None


def test_a_redactor_gets_the_row_as_it_is_now(tmp_path, request):
    reader = TagReader()
    plugin = types.ModuleType("tag_reader")
    plugin.before_message_saved = reader.before_message_saved
    with served_team(tmp_path, plugins=(plugin,)) as (_app, live, admin):
        visitor, socket = _open_chat(live, admin)
        cid = visitor.conversation_id
        tagged = admin.patch(f"/api/v1/conversations/{cid}/summary", json={"tags": ["复购"]})
        assert tagged.status_code == 200, tagged.json()
        socket.send("message", {"body": "打了标签之后", "client_msg_id": "tagged"})
        socket.expect("ack")
        assert ("第一句", ()) in reader.seen
        assert ("打了标签之后", ("复购",)) in reader.seen
