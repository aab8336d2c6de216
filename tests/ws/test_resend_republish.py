"""A resend of a message that was stored but never published (its COMMIT went
through, then the connection or the process failed before the hub heard of it,
so the client saw an error and sends it again with the same ``client_msg_id``).

The resend is acknowledged as a duplicate and the message's events are
published again: every socket of the conversation gets it once, in its place,
the stored ones mixed at random with ones never stored, and nothing is
replayed to agent sockets from the database (the team-wide resync this used to
trigger cost every agent socket of every process a database replay per resend).
"""

from __future__ import annotations

import random

import pytest

from meiqia.db import connection
from meiqia.db import database
from meiqia.models import Conversation
from meiqia.models import Message
from meiqia.models.base import utcnow
from meiqia.services import delivery
from tests.reliability.test_database_faults import open_chat
from tests.reliability.test_database_faults import served
from tests.reliability.test_database_faults import sqlite_lock
from tests.ws.conftest import Socket
from tests.ws.conftest import cookie_of


def store_without_publishing(cid: int, visitor_id: int, body: str, client_msg_id: str) -> int:
    """What post_message commits, with nothing published after it."""
    with connection(), database.atomic():
        seq = delivery.next_position(cid)[0]
        message = Message.create(conversation=cid, sender_kind="visitor", body=body,
                                 client_msg_id=client_msg_id, created_at=utcnow(), seq=seq)
        Conversation.update(last_message_id=message.id).where(Conversation.id == cid).execute()
    return message.id


@pytest.mark.parametrize("trial", range(4))
def test_resent_unpublished_messages_reach_every_socket_once_in_place(tmp_path, trial):
    rng = random.Random(trial)
    with served(tmp_path, DATABASE_BUSY_TIMEOUT=0.3) as (app, server):
        api, _, token, cid = open_chat(app)
        visitor_id = Conversation.get_by_id(cid).visitor_id
        agent = Socket(server.url("/ws/agent"), cookie_of(api))
        agent.expect("hello")
        visitor = Socket(server.url(f"/ws/visitor?token={token}"))
        visitor.expect("hello")
        # Six messages sent while the database refuses them (``unavailable``). At
        # random, some were stored all the same and never published (the COMMIT
        # went through, then the connection was lost); the others were not.
        ids = [f"u{n}" for n in range(6)]
        holder = sqlite_lock(app)
        for client_msg_id in ids:
            visitor.send("message", {"body": f"第{client_msg_id}句",
                                     "client_msg_id": client_msg_id})
            error = visitor.expect("error", timeout=30)["data"]
            assert error["code"] == "unavailable" and error["ref"] == client_msg_id
        holder.execute("ROLLBACK")
        holder.close()
        stored = {c: store_without_publishing(cid, visitor_id, f"第{c}句", c)
                  for c in ids if rng.random() < 0.6}
        # The client sends them again in order, as the widget's outbox does.
        for client_msg_id in ids:
            visitor.send("message", {"body": f"第{client_msg_id}句",
                                     "client_msg_id": client_msg_id})
            ack = visitor.expect("ack", where=lambda d, c=client_msg_id: d["client_msg_id"] == c,
                                 timeout=30)["data"]
            if client_msg_id in stored:
                assert ack["message"]["id"] == stored[client_msg_id]
        visitor.send("message", {"body": "之后的一句", "client_msg_id": "after"})
        visitor.expect("ack", where=lambda d: d["client_msg_id"] == "after", timeout=30)
        last = agent.expect("message", where=lambda d: d.get("body") == "之后的一句", timeout=30)
        seen = [f["data"] for f in agent.seen if f["type"] == "message"
                and f["data"]["conversation_id"] == cid]
        bodies = [m["body"] for m in seen]
        for client_msg_id in ids:
            assert bodies.count(f"第{client_msg_id}句") == 1, (client_msg_id, bodies)
        seqs = [m["seq"] for m in seen]
        assert seqs == sorted(seqs) and len(seqs) == len(set(seqs))  # in place, once
        assert last["data"]["seq"] == seqs[-1]
        # The sending socket gets its own messages as acks only (docs/protocol.md,
        # rule 4), each once, even those that reached it filling a gap.
        assert not [f for f in visitor.seen if f["type"] == "message"
                    and f["data"].get("client_msg_id") in ids]
        acked = [f["data"]["client_msg_id"] for f in visitor.seen if f["type"] == "ack"]
        assert sorted(set(acked)) == sorted([*ids, "after"])
