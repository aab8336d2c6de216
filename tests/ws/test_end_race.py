"""A message is never stored after its conversation ended, however the two race.

The visitor's (and the agent's) message checked "not ended" when the frame came in,
then ran the redaction plugins, then stored. An end in between (the agent pressed
"end" while a redactor was slow) let the message land after the ``ended`` line: the
visitor saw an ack for a chat that was over, and history showed his words after its
end. The check is now made again under the conversation's lock, in the statement
that takes the message's position (``post_message(refuse_ended=True)``), and the
sender gets the same refusal as before the race: ``conflict``.

The end happens exactly in that window: a ``before_message_saved`` plugin (a
redactor, third-party code) lets the test's other thread end the chat, and waits for
it, before it answers.
"""

from __future__ import annotations

import threading
import types

import pytest

from meiqia.hookspecs import hookimpl
from meiqia.testing.clients import AgentClient
from meiqia.testing.clients import VisitorClient
from meiqia.testing.sockets import LiveServer
from tests.conftest import close_app
from tests.conftest import make_app
from tests.conftest import truncate_all
from tests.ws.conftest import Socket

LAST = "结束前的最后一句"


class EndWhileRedacting:
    """A redactor that, on ``LAST``, lets the chat be ended before it answers."""

    def __init__(self) -> None:
        self.redacting = threading.Event()
        self.ended = threading.Event()

    @hookimpl
    def before_message_saved(self, message, conversation):
        if LAST in message["body"]:
            self.redacting.set()
            self.ended.wait(4)  # within the test's budget (5 s)
        return None


@pytest.fixture(params=["sqlite", "postgres"])
def racing(request, tmp_path):
    """On SQLite (the position UPDATE, then the INSERT) and on PostgreSQL (one
    statement: the refusal is in its WHERE)."""
    redactor = EndWhileRedacting()
    plugin = types.ModuleType("end_while_redacting")
    plugin.before_message_saved = redactor.before_message_saved
    extra = {} if request.param == "sqlite" else {
        "DATABASE_URL": request.getfixturevalue("pg_database_url")}
    app = make_app(tmp_path, plugins=(plugin,), HOOK_BUDGETS={"before_message_saved": 5.0},
                   **extra)
    if request.param == "postgres":
        truncate_all(extra["DATABASE_URL"])
    live = LiveServer(app)
    with app.app_context():
        yield app, live, redactor
    Socket.close_all()
    live.stop()
    close_app(app)


def _ending(admin: AgentClient, cid: int, redactor: EndWhileRedacting, answers: list):
    def end() -> None:
        if redactor.redacting.wait(10):
            answers.append(admin.post(f"/api/v1/conversations/{cid}/end"))
        redactor.ended.set()
    thread = threading.Thread(target=end)
    thread.start()
    return thread


def _served(live: LiveServer, admin: AgentClient) -> VisitorClient:
    visitor = VisitorClient(live, admin.team["id"]).start()
    assert visitor.post(f"/api/v1/widget/conversations/{visitor.conversation_id}/human"
                        ).json()["status"] == "open"
    return visitor


def _after_the_end(admin: AgentClient, cid: int) -> list[dict]:
    stored = admin.get(f"/api/v1/conversations/{cid}/messages").json()["messages"]
    ended = [m["id"] for m in stored if (m.get("payload") or {}).get("event") == "ended"]
    assert ended, stored
    return [m for m in stored if m["id"] > ended[0]]


def test_a_visitor_message_racing_the_end_is_refused_not_stored(racing):
    _app, live, redactor = racing
    admin = AgentClient(live).register()
    admin.patch(f"/api/v1/agents/{admin.agent['id']}", json={"max_concurrent": 50})
    admin.go_online()
    for trial in range(3):
        redactor.redacting.clear()
        redactor.ended.clear()
        visitor = _served(live, admin)
        answers: list = []
        ender = _ending(admin, visitor.conversation_id, redactor, answers)
        socket = visitor.socket()
        socket.send("message", {"body": LAST, "client_msg_id": f"last-{trial}"})
        error = socket.expect("error", 15)["data"]
        ender.join(10)
        assert answers and answers[0].status_code == 200, answers
        assert error["code"] == "conflict", error
        assert not [f for f in socket.seen if f["type"] == "ack"], socket.seen
        assert [m["body"] for m in _after_the_end(admin, visitor.conversation_id)] == []
        assert LAST not in [m["body"] for m in visitor.messages()]
        visitor.close()


def test_an_agent_reply_racing_the_end_is_refused_not_stored(racing):
    _app, live, redactor = racing
    admin = AgentClient(live).register()
    admin.patch(f"/api/v1/agents/{admin.agent['id']}", json={"max_concurrent": 50})
    admin.go_online()
    visitor = _served(live, admin)
    cid = visitor.conversation_id
    answers: list = []
    ender = _ending(admin, cid, redactor, answers)
    reply = admin.post(f"/api/v1/conversations/{cid}/messages",
                       json={"body": LAST, "client_msg_id": "agent-last"})
    ender.join(10)
    assert answers and answers[0].status_code == 200, answers
    assert reply.status_code == 409, reply
    assert reply.json()["error"]["code"] == "conflict"
    assert _after_the_end(admin, cid) == []
    # An internal note may still be added to the ended chat.
    note = admin.post(f"/api/v1/conversations/{cid}/messages",
                      json={"body": "结束后的备注", "mode": "internal",
                            "client_msg_id": "note-after"})
    assert note.status_code == 201, note
