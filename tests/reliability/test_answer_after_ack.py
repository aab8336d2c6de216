"""An acknowledged question is answered once the database is back, exactly once,
without the client's help (docs/protocol.md, "Guarantees" 1).

Found from outside: a visitor's message got its ``ack``; right after it another
connection held the write lock (SQLite ``BEGIN IMMEDIATE``; PostgreSQL ``SELECT …
FOR UPDATE`` on the conversation row) past the busy timeout, the bot's answer
failed to store, ``ws._after_answer`` logged and dropped the step, and no answer
ever came (his resend neither). Here the lock is taken for real at that moment:
an answerer plugin (test code, the bot's own extension point) tells the test when
the bot is thinking, the test takes the lock from another connection, and lets
the answerer go on. Also: the server killed -9 between the ``ack`` and the answer
(``meiqia run``), answered by the next process's sweep.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sqlite3
import threading
import types
import urllib.request
from urllib.parse import urlparse

import psycopg2
import pytest

from meiqia.hookspecs import hookimpl
from meiqia.models import Message
from meiqia.testing.api import ApiClient
from meiqia.testing.api import wait_until
from tests.conftest import truncate_all
from tests.integration.test_embedded_server import embedded  # noqa: F401 - the fixture
from tests.reliability.test_database_faults import served

ASK = "锁住之后请回答"
ANSWER = "锁后的答案"
TRIALS = 3
#: Seconds a store waits for the lock before it fails (short, to keep the test short).
BOUND = 0.5


class Gate:
    """The answerer's meeting point with the test: it says when it is asked and
    waits until the test holds the lock."""

    def __init__(self) -> None:
        self.asked = threading.Event()
        self.locked = threading.Event()


class Answerer:
    name = "lock-gate"

    def __init__(self, holder: types.SimpleNamespace) -> None:
        self.holder = holder

    def answer(self, question, conversation):  # noqa: ANN001, ANN201
        if ASK not in question:
            return []
        gate = self.holder.gate
        if not gate.asked.is_set():  # the first ask only: a retry goes straight on
            gate.asked.set()
            gate.locked.wait(20)
        return [{"entry_id": "lock", "question": ASK, "answer": ANSWER, "score": 0.99}]


class Failures(logging.Handler):
    """Records the log lines that say an answering step failed on the database."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.name in {"meiqia.web.ws", "meiqia.services.answering"} and \
                "database failed" in text:
            self.lines.append(text)


def _lock(app, url: str | None, cid: int):  # noqa: ANN001, ANN202
    """Another connection holding the write lock (SQLite) or the row (PostgreSQL);
    returns its release."""
    if url:
        holder = psycopg2.connect(url)
        with holder.cursor() as cur:
            cur.execute("SELECT id FROM conversation WHERE id = %s FOR UPDATE", (cid,))
        return lambda: (holder.rollback(), holder.close())
    path = urlparse(app.config["DATABASE_URL"]).path[1:]
    lite = sqlite3.connect(path, isolation_level=None)
    lite.execute("BEGIN IMMEDIATE")
    lite.execute("UPDATE team SET name = name")
    return lambda: (lite.execute("ROLLBACK"), lite.close())


@contextlib.contextmanager
def lock_gate_server(tmp_path, request, engine: str):  # noqa: ANN001, ANN201
    """A served app on ``engine`` with the lock-gate answerer and a handler of the
    answering failures: (app, server, PostgreSQL url or None, holder, handler)."""
    url = request.getfixturevalue("pg_database_url") if engine == "postgres" else None
    if url:
        truncate_all(url)
    plugin = types.ModuleType("lock_gate_answerer")
    holder = types.SimpleNamespace(gate=Gate())
    plugin.register_answerers = hookimpl(lambda app: [Answerer(holder)])
    handler = Failures()
    logging.getLogger().addHandler(handler)
    extra = {"DATABASE_URL": url} if url else {}
    try:
        with served(tmp_path, plugins=(plugin,), DATABASE_BUSY_TIMEOUT=BOUND, **extra) as (
                app, server):
            yield app, server, url, holder, handler
    finally:
        logging.getLogger().removeHandler(handler)


@pytest.mark.parametrize("resend", [False, True], ids=["no-resend", "resend"])
@pytest.mark.parametrize("engine", ["sqlite", "postgres"])
def test_an_acked_question_is_answered_once_the_lock_goes(tmp_path, request, engine, resend):
    from meiqia.testing.sockets import Socket

    with lock_gate_server(tmp_path, request, engine) as (app, server, url, holder, handler):
        api = ApiClient.registered(app)
        assert api.patch("/api/v1/team", json={"settings": {"bot_enabled": True}}
                         ).status_code == 200
        for trial in range(TRIALS):
            gate = holder.gate = Gate()
            session = app.test_client().post(
                "/api/v1/widget/session", json={"team_id": api.team["id"]}).get_json()
            cid = session["conversation"]["conversation_id"]
            socket = Socket(server.url(f"/ws/visitor?token={session['token']}"))
            socket.expect("hello")
            frame = {"body": f"{ASK} {trial}", "client_msg_id": f"m-{trial}"}
            socket.send("message", frame)
            ack = socket.expect("ack", timeout=30)["data"]
            assert ack["duplicate"] is False
            assert gate.asked.wait(30)  # the bot is thinking: the ack is out
            failed = len(handler.lines)
            release = _lock(app, url, cid)
            try:
                gate.locked.set()
                # The bot's answer failed to store (the lock outlived the bound).
                wait_until(lambda: len(handler.lines) > failed, 30,  # noqa: B023
                           "the answering step to fail on the lock")
            finally:
                release()
            if resend:  # the client's resend, the lock gone: a duplicate, answered
                socket.send("message", frame)
                again = socket.expect("ack", timeout=30)["data"]
                assert again["duplicate"] is True
            answer = socket.expect("message", timeout=30, where=lambda d: d.get(
                "sender_kind") == "bot" and d.get("body") == ANSWER)
            assert answer["data"]["conversation_id"] == cid
            stored = list(Message.select().where(Message.conversation == cid,
                                                 Message.sender_kind == "bot",
                                                 Message.body == ANSWER))
            assert len(stored) == 1, trial  # exactly once
            socket.close()


KILLER = '''
"""A test answerer that kills its own process (SIGKILL) the first time it is
asked, between the visitor's ack and the bot's answer."""
import os
import signal
from pathlib import Path

from meiqia.hookspecs import hookimpl

ASK = "请在回答前杀掉我"
MARK = Path(__file__).with_name("killed-once")


class Killer:
    name = "killer-answerer"

    def answer(self, question, conversation):
        if ASK not in question:
            return []
        if not MARK.exists():
            MARK.write_text("killed")
            os.kill(os.getpid(), signal.SIGKILL)
        return [{"entry_id": "kill", "question": ASK, "score": 0.99,
                 "answer": "杀掉之后的答案"}]


@hookimpl
def register_answerers(app):
    return [Killer()]
'''


def test_a_process_killed_between_the_ack_and_the_answer_is_answered_by_the_sweep(
        tmp_path, embedded):  # noqa: F811 - the fixture
    import asyncio
    import json

    from websockets.asyncio.client import connect

    from tests.helpers import run_coroutine
    from tests.integration.test_drop_after_ack import _stored_bodies
    from tests.integration.test_drop_after_ack import with_the_bot
    from tests.integration.test_embedded_server import Http
    from tests.integration.test_embedded_server import frames

    sweep = {"ANSWER_SWEEP_SECONDS": "0.5", "ANSWER_SWEEP_AFTER": "1"}
    server, team_id = with_the_bot(lambda: embedded(**sweep), tmp_path, "killer", KILLER)
    session = Http(server.base).call("POST", "/api/v1/widget/session", {"team_id": team_id})

    async def ask() -> dict:
        ws = await connect(f"ws://127.0.0.1:{server.port}/ws/visitor?token={session['token']}",
                           compression=None, ping_interval=None)
        seen: list[dict] = []
        reader = asyncio.create_task(frames(ws, seen))
        await ws.send(json.dumps({"type": "message", "data": {
            "body": "请在回答前杀掉我", "client_msg_id": "k-1"}}, ensure_ascii=False))
        await reader  # the server died: the socket closed
        return next(f["data"] for f in seen if f["type"] == "ack")

    ack = run_coroutine(ask)
    assert ack["duplicate"] is False
    wait_until(lambda: server.proc.poll() is not None, 30, "the server to die")
    assert server.proc.returncode == -signal.SIGKILL
    server.log.close()
    cid = ack["message"]["conversation_id"]
    again = embedded(**sweep)  # the same instance and database
    with urllib.request.urlopen(again.base + "/healthz", timeout=10):
        pass  # a request starts the process's sweepers
    try:
        wait_until(lambda: "杀掉之后的答案" in _stored_bodies(again, cid, session["token"]),
                   60, "the sweep to answer the message")
    except AssertionError:
        raise AssertionError(again.output()[-3000:]) from None
    assert _stored_bodies(again, cid, session["token"]).count("杀掉之后的答案") == 1
    assert os.path.exists(tmp_path / "instance" / "plugins" / "killed-once")


def _bot_chat(app, api=None):  # noqa: ANN001, ANN202
    """A visitor talking to the bot: (api, conversation)."""
    from meiqia.models import Conversation

    if api is None:
        api = ApiClient.registered(app)
        assert api.patch("/api/v1/team", json={"settings": {"bot_enabled": True}}
                         ).status_code == 200
    session = app.test_client().post("/api/v1/widget/session",
                                     json={"team_id": api.team["id"]}).get_json()
    return api, Conversation.get_by_id(session["conversation"]["conversation_id"])


def _stored_unanswered(conversation, body, client_msg_id, kind="text", payload=None,
                       age=60):  # noqa: ANN001, ANN202
    """A visitor message stored ``age`` seconds ago whose step never ran (what a
    process killed between the ack and the answer leaves)."""
    import datetime

    from meiqia.models.base import utcnow
    from meiqia.services import messages

    message, _ = messages.post_message(conversation, "visitor", body, kind=kind,
                                       client_msg_id=client_msg_id, payload=payload)
    Message.update(created_at=utcnow() - datetime.timedelta(seconds=age)).where(
        Message.id == message.id).execute()
    return message


def test_the_sweep_answers_an_unanswered_question_once_and_stops(db_app):
    """The sweep's bounds: a question left unanswered is answered once; one too
    young or too old, an image, or one answered already is not touched; a message
    whose step rightly posts nothing (a request for a person whose offer was
    throttled) is tried once, recorded, and never again."""
    import datetime

    from meiqia.models import Conversation
    from meiqia.models.base import utcnow
    from meiqia.models.exports import JobRecord
    from meiqia.services import answering

    api, conversation = _bot_chat(db_app)
    asked = _stored_unanswered(conversation, "你们几点下班", "s-1")
    assert answering.unanswered() == [(conversation.id, asked.id)]
    assert answering.sweep() == 1
    answers = Message.select().where(Message.conversation == conversation.id,
                                     Message.client_msg_id == f"answer-{asked.id}")
    assert answers.count() == 1 and answers.first().sender_kind == "bot"
    assert answering.sweep() == 0  # answered: its answer is the last public message
    assert JobRecord.get_by_id(f"answer-{asked.id}").status == "finished"

    _, other = _bot_chat(db_app, api)
    _stored_unanswered(other, "图片", "s-2", kind="image",
                       payload={"attachment": "none"})
    young = _stored_unanswered(other, "刚发的", "s-3", age=1)
    assert answering.sweep() == 0  # an image is no question; a young one is its step's
    Message.update(created_at=utcnow() - datetime.timedelta(hours=1)).where(
        Message.id == young.id).execute()
    assert answering.sweep() == 0  # too old: past ANSWER_SWEEP_WITHIN

    _, human = _bot_chat(db_app, api)
    Conversation.update(offered_at=utcnow()).where(Conversation.id == human.id).execute()
    wants = _stored_unanswered(human, "转人工", "s-4", age=25)
    Conversation.update(offered_at=wants.created_at).where(
        Conversation.id == human.id).execute()  # offered just before: throttled
    before = Message.select().where(Message.conversation == human.id).count()
    assert answering.sweep() == 1
    assert JobRecord.get_by_id(f"answer-{wants.id}").result == "throttled"
    assert answering.sweep() == 0 and answering.sweep() == 0  # recorded: once
    assert Message.select().where(Message.conversation == human.id).count() == before


@pytest.mark.parametrize("engine", ["sqlite", "postgres"])
def test_the_http_route_answers_a_stored_question_without_a_resend(tmp_path, request, engine):
    """The widget's HTTP route runs the answering step before it answers: a lock
    taken between the store and the bot's answer made the request fail (the
    message stored all the same) and the answer came only with a resend. Now the
    request succeeds (201: stored) and the answer comes once the lock goes."""
    with lock_gate_server(tmp_path, request, engine) as (app, _server, url, holder, handler):
        api, conversation = _bot_chat(app)
        session = app.test_client().post("/api/v1/widget/session",
                                         json={"team_id": api.team["id"]}).get_json()
        cid = session["conversation"]["conversation_id"]
        outcome: dict = {}

        def send() -> None:
            with app.app_context():
                outcome["response"] = app.test_client().post(
                    f"/api/v1/widget/conversations/{cid}/messages",
                    headers={"X-Visitor-Token": session["token"]},
                    json={"body": f"{ASK} http", "client_msg_id": "h-1"})

        sender = threading.Thread(target=send)
        sender.start()
        gate = holder.gate
        assert gate.asked.wait(30)
        release = _lock(app, url, cid)
        try:
            gate.locked.set()
            # The step failed on the lock: logged (retried), or the request failed.
            wait_until(lambda: handler.lines or "response" in outcome, 30,
                       "the answering step to fail on the lock")
        finally:
            release()
        sender.join(60)
        assert outcome["response"].status_code == 201, outcome["response"].get_json()

        def answers() -> int:
            return Message.select().where(Message.conversation == cid,
                                          Message.sender_kind == "bot",
                                          Message.body == ANSWER).count()

        wait_until(answers, 30, "the answer")
        assert answers() == 1
