"""PostgreSQL: a message waits for its conversation's row lock at most
DATABASE_BUSY_TIMEOUT, as a SQLite writer waits for the write lock.

Found from outside (hproto row_lock.py): with another transaction holding the
conversation's row (``SELECT … FOR UPDATE``, 20 s) a visitor's message waited
the whole 20 s, and its socket answered nothing meanwhile, where SQLite answers
``unavailable`` after its busy timeout. Now the store's lock wait is bounded
(``lock_timeout``, for the store's statement or transaction only), the frame gets
``unavailable`` in the reader's language, the REST route 503, nothing is stored,
the socket stays open, and the resend (same ``client_msg_id``) is stored once.
"""

from __future__ import annotations

import time

import psycopg2

from meiqia.models import Message
from tests.conftest import truncate_all
from tests.reliability.test_database_faults import bodies
from tests.reliability.test_database_faults import open_chat
from tests.reliability.test_database_faults import served

#: The bound in these tests (seconds); the default is 10.
BOUND = 1.0
UNAVAILABLE_ZH = "数据库繁忙或无法连接：请重新发送"


def hold_row(url: str, cid: int):
    """Another connection holding the conversation's row lock (an open transaction)."""
    holder = psycopg2.connect(url)
    with holder.cursor() as cur:
        cur.execute("SELECT id FROM conversation WHERE id = %s FOR UPDATE", (cid,))
    return holder


def refused(socket, client_msg_id: str) -> tuple[dict, float]:
    """The error frame of the message just sent, and how long it took."""
    started = time.monotonic()
    frame = socket.expect("error", timeout=BOUND + 7,
                          where=lambda d: d.get("ref") == client_msg_id)
    return frame["data"], time.monotonic() - started


def test_a_message_waits_for_the_row_lock_at_most_the_bound_then_is_resent_once(
        tmp_path, pg_database_url):
    from meiqia.testing.sockets import Socket
    from meiqia.testing.sockets import cookie_of

    truncate_all(pg_database_url)
    with served(tmp_path, DATABASE_URL=pg_database_url, DATABASE_BUSY_TIMEOUT=BOUND) as (
            app, server):
        api, visitor, token, cid = open_chat(app)
        sockets = {
            "visitor": Socket(server.url(f"/ws/visitor?token={token}&lang=zh-CN")),
            "agent": Socket(server.url("/ws/agent?lang=zh-CN"), cookie=cookie_of(api)),
        }
        for socket in sockets.values():
            socket.expect("hello")
        frames = {  # the agent's note with an @ is stored in a transaction (mentions)
            "visitor": {"body": "锁住时发的", "client_msg_id": "pg-lock-v"},
            "agent": {"conversation_id": cid, "body": "锁住时 @某人 看一下",
                      "client_msg_id": "pg-lock-a", "mode": "internal"},
        }
        widget = {"X-Visitor-Token": token, "X-Meiqia-Lang": "zh-CN"}
        rest = {"body": "锁住时用接口发的", "client_msg_id": "pg-lock-r"}
        note = {"body": "锁住时的备注", "client_msg_id": "pg-lock-n", "mode": "internal"}
        before = Message.select().where(Message.conversation == cid).count()
        holder = hold_row(pg_database_url, cid)
        try:
            for who, socket in sockets.items():
                socket.send("message", frames[who])
                error, waited = refused(socket, frames[who]["client_msg_id"])
                assert error == {"code": "unavailable", "message": UNAVAILABLE_ZH,
                                 "ref": frames[who]["client_msg_id"],
                                 "message_en": "the database is busy or unreachable; "
                                               "send it again"}, (who, error)
                assert waited >= BOUND * 0.9, (who, waited)  # it did wait for the lock
                socket.send("ping")  # the socket stays open and answers
                socket.expect("pong")
            response = visitor.post(f"/api/v1/widget/conversations/{cid}/messages",
                                    headers=widget, json=rest)
            assert response.status_code == 503, response.get_json()
            assert response.headers["Retry-After"]
            assert response.get_json()["error"]["code"] == "unavailable"
            assert response.get_json()["error"]["message"] == "数据库繁忙或无法连接：请稍后再试"
            response = api.post(f"/api/v1/conversations/{cid}/messages", json=note)
            assert response.status_code == 503, response.get_json()
            assert response.get_json()["error"]["code"] == "unavailable"
            assert Message.select().where(Message.conversation == cid).count() == before
        finally:
            holder.rollback()
            holder.close()
        # The lock gone, each resend (same client_msg_id) is stored, once.
        for who, socket in sockets.items():
            socket.send("message", frames[who])
            ack = socket.expect("ack", timeout=30)["data"]
            assert ack["client_msg_id"] == frames[who]["client_msg_id"]
            assert not ack["duplicate"]
        response = visitor.post(f"/api/v1/widget/conversations/{cid}/messages",
                                headers=widget, json=rest)
        assert response.status_code == 201 and not response.get_json()["duplicate"]
        assert api.post(f"/api/v1/conversations/{cid}/messages",
                        json=note).status_code == 201
        stored = [m.client_msg_id for m in Message.select().where(
            Message.conversation == cid, Message.client_msg_id.startswith("pg-lock-"))]
        assert sorted(stored) == ["pg-lock-a", "pg-lock-n", "pg-lock-r", "pg-lock-v"]
        assert "锁住时发的" in bodies(api, cid)


def test_the_bound_stays_with_the_store(tmp_path, pg_database_url):
    """The bound is the store's own: the connection goes back to the pool without
    it, and a caller that stores a message inside a transaction of its own keeps
    its own lock waits (the bound is set only where the store owns its statement
    or transaction)."""
    from meiqia.db import database
    from meiqia.models import Agent
    from meiqia.models import Conversation
    from meiqia.services import messages

    truncate_all(pg_database_url)
    with served(tmp_path, DATABASE_URL=pg_database_url, DATABASE_BUSY_TIMEOUT=BOUND) as (
            app, server):
        _, _, _, cid = open_chat(app)
        conversation = Conversation.get_by_id(cid)

        def lock_timeout() -> str:
            return database.execute_sql("SHOW lock_timeout").fetchone()[0]

        assert lock_timeout() == "0"
        messages.post_message(conversation, "visitor", "一句话", client_msg_id="b-1")
        assert lock_timeout() == "0"
        admin = Agent.select().first()  # an agent's note with an @: in a transaction
        messages.post_message(conversation, "agent", "有 @ 的备注", visibility="internal",
                              agent=admin, client_msg_id="b-2")
        assert lock_timeout() == "0"
        with database.atomic():
            messages.post_message(conversation, "visitor", "事务里的一句", client_msg_id="b-3")
            assert lock_timeout() == "0"
