"""Resume is lossless by construction: the race of issue 13, made on purpose.

Visitors and agents send at the same moment (agents in bursts of three), sockets
drop at random moments, often right after sending (before the sender's own ack),
and every client resumes with ``after_seq`` as docs/protocol.md tells it to. Every
client must end with every position of its conversations exactly once, in order,
and never see its own message as a ``message`` frame. The long run with 10,000
messages on both hub kinds is benchmarks/ws_stress.py (docs/benchmarks.md).
"""

from __future__ import annotations

import random
import threading

import pytest

from benchmarks.ws_stress import stress_against
from meiqia.models import Conversation
from meiqia.services import delivery


def test_racing_senders_and_random_drops_lose_repeat_and_reorder_nothing(app, live):
    tally, _seconds = stress_against(f"http://127.0.0.1:{live.port}",
                                     f"ws://127.0.0.1:{live.port}", conversations=6,
                                     messages=600, drop=0.15, seed=random.randrange(10**6))
    assert tally.errors == []
    assert tally.sent >= 590 and tally.acked == tally.sent
    assert tally.drops_at_ack > 10 and tally.resumes > 20  # the race really ran
    assert (tally.lost, tally.duplicated, tally.out_of_order, tally.echoes) == (0, 0, 0, 0)


def test_racing_senders_and_random_drops_on_postgres(pg_app):
    """The same race on PostgreSQL, where each message is stored with its position
    by one statement (``delivery.store_at_next_position``): a resend after a drop
    meets the unique index inside that statement, which must undo its position."""
    from meiqia.testing.sockets import LiveServer

    live = LiveServer(pg_app)
    try:
        tally, _seconds = stress_against(f"http://127.0.0.1:{live.port}",
                                         f"ws://127.0.0.1:{live.port}", conversations=6,
                                         messages=600, drop=0.15,
                                         seed=random.randrange(10**6))
    finally:
        live.stop()
    assert tally.errors == []
    assert tally.sent >= 590 and tally.acked == tally.sent
    assert tally.drops_at_ack > 10 and tally.resumes > 20  # the race really ran
    assert (tally.lost, tally.duplicated, tally.out_of_order, tally.echoes) == (0, 0, 0, 0)
    from meiqia.db import connection
    from meiqia.models import Message

    with pg_app.app_context(), connection():  # no gap, no repeat left by a resend
        for conversation in Conversation.select():
            seqs = [seq for (seq,) in Message.select(Message.seq).where(
                Message.conversation == conversation.id).order_by(Message.seq).tuples()]
            assert seqs == list(range(1, conversation.last_seq + 1)), conversation.id


def test_stream_fills_a_gap_and_never_sends_twice():
    """The hub hands seq 3 before seq 2 (two publishers raced): 2 comes from the
    database first, then 3; the late 2 and a repeated 3 are dropped."""
    sent: list[tuple[str, int]] = []
    stored = {1: {"conversation_id": 7, "seq": 1, "id": 11},
              2: {"conversation_id": 7, "seq": 2, "id": 12, "client_msg_id": "mine"},
              3: {"conversation_id": 7, "seq": 3, "id": 13}}

    def fill(cid, after, before, limit):
        return [stored[s] for s in sorted(stored) if after < s and (before is None or s < before)]

    stream = delivery.Stream(lambda kind, data, _id: sent.append((kind, data["seq"] if kind
                                                                 == "message" else
                                                                 data["message"]["seq"])),
                             fill, start=lambda cid: 1)
    stream.expect_own(7, "mine")
    stream.deliver(stored[3])
    stream.deliver(stored[2])
    stream.ack(stored[2], duplicate=False)
    stream.deliver(stored[3])
    assert sent == [("ack", 2), ("message", 3)]
    assert stream.position(7) == 3


@pytest.mark.parametrize("trial", range(2))
def test_concurrent_writers_get_distinct_seqs_in_commit_order(db_app, trial):
    """Eight threads post into one conversation at once, on SQLite (one writer) and on
    PostgreSQL (the conversation's row lock): seqs 1..n, no repeat, and id order is
    seq order (the lock is taken before the INSERT)."""
    app = db_app
    from meiqia.db import connection
    from meiqia.models import Message
    from meiqia.services import messages
    from tests.factories import make_conversation
    from tests.factories import make_team
    from tests.factories import make_visitor

    with app.app_context():
        team = make_team()
        conversation = make_conversation(team, make_visitor(team))
    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            with app.app_context(), connection():
                conv = Conversation.get_by_id(conversation.id)
                for k in range(10):
                    messages.post_message(conv, "visitor", f"并发{n}-{k}",
                                          client_msg_id=f"c{trial}-{n}-{k}")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    with app.app_context():
        rows = list(Message.select(Message.id, Message.seq).where(
            Message.conversation == conversation.id).order_by(Message.id).tuples())
        assert [seq for _id, seq in rows] == list(range(1, 81))
        assert Conversation.get_by_id(conversation.id).last_seq == 80


def test_a_resync_catch_up_never_sends_an_acked_message_again():
    """A hub resync runs in the pump while the frame loop acks the socket's own
    message: the catch-up reads and uses the position under one lock, so the
    ack that moved it is not followed by the same message as a ``message``."""
    sent: list[tuple[str, int]] = []
    stored = {1: {"conversation_id": 7, "seq": 1, "id": 11},
              2: {"conversation_id": 7, "seq": 2, "id": 12, "client_msg_id": "mine"}}

    def fill(cid, after, before, limit):
        return [stored[s] for s in sorted(stored) if after < s and (before is None or s < before)]

    stream = delivery.Stream(lambda kind, data, _id: sent.append((kind, data["seq"] if kind
                                                                 == "message" else
                                                                 data["message"]["seq"])),
                             fill, start=lambda cid: 1)
    before = stream.position(7)  # what a resync that read the position first saw
    stream.ack(stored[2], duplicate=False)  # the frame loop, meanwhile
    stream.catch_up(7)
    assert sent == [("ack", 2)] and stream.position(7) == 2
    stream.resume(7, before)  # the old way: the position moved back, 2 went out again
    assert sent == [("ack", 2), ("message", 2)]
