"""Storing a message at its position, on SQLite and on PostgreSQL.

On PostgreSQL a plain chat message is stored by one statement (the position
UPDATE and the INSERT together, ``delivery.store_at_next_position``) instead of
BEGIN, UPDATE, INSERT, COMMIT: a quarter of the round trips of the hottest
write (issue 19). The guarantees of the two-statement store must hold the same:
a resent ``client_msg_id`` stores nothing and leaves no gap in the positions, a
message refused for the conversation's status takes no position, and whatever
else must commit with the message (a channel delivery, mentions) still does.
"""

from __future__ import annotations

import logging

import pytest

from meiqia.db import connection
from meiqia.db import is_postgres
from meiqia.models import Conversation
from meiqia.models import Mention
from meiqia.models import Message
from meiqia.services import messages
from tests.factories import make_agent
from tests.factories import make_conversation
from tests.factories import make_team
from tests.factories import make_visitor


def _chat(status: str = "open"):
    team = make_team()
    agent = make_agent(team)
    conversation = make_conversation(team, make_visitor(team), handler=agent, status=status)
    return team, agent, Conversation.get_by_id(conversation.id)


def _positions(conversation_id: int) -> list[int]:
    return [seq for (seq,) in Message.select(Message.seq).where(
        Message.conversation == conversation_id).order_by(Message.id).tuples()]


def test_a_message_is_one_statement_on_postgres(db_app, caplog):
    _team, agent, conversation = _chat()
    with connection():
        caplog.set_level(logging.DEBUG, logger="peewee")
        caplog.clear()
        message, created = messages.post_message(conversation, "visitor", "你好，在吗？",
                                                 client_msg_id="one")
        sent = [r.msg[0] for r in caplog.records if r.name == "peewee"
                and isinstance(r.msg, tuple)]
    assert created and message.seq == 1 and message.id
    writes = [s for s in sent if not s.lstrip().upper().startswith("SELECT")]
    if is_postgres():
        # one round trip: the store's lock-wait bound goes with it (db.lock_bound)
        assert len(writes) == 1 and writes[0].startswith(
            'SET LOCAL lock_timeout = 10000; WITH "pos" AS (UPDATE'), writes
    else:
        assert len(writes) == 3, writes  # position, INSERT, last message
    stored = Conversation.get_by_id(conversation.id)
    assert (stored.last_seq, stored.last_message_id) == (1, message.id)
    assert stored.last_message_at is not None
    row = Message.get_by_id(message.id)
    assert (row.body, row.seq, row.sender_kind, row.client_msg_id, row.payload) == (
        "你好，在吗？", 1, "visitor", "one", {})
    # The caller's conversation now has the status, handler and group of the row.
    assert (conversation.status, conversation.handler_id) == ("open", agent.id)


def test_a_resend_stores_nothing_and_leaves_no_gap(db_app):
    _team, _agent, conversation = _chat()
    with connection():
        first, created = messages.post_message(conversation, "visitor", "第一条",
                                               client_msg_id="same")
        again, created_again = messages.post_message(conversation, "visitor", "第一条",
                                                     client_msg_id="same")
        assert created and not created_again and again.id == first.id
        nxt, _ = messages.post_message(conversation, "visitor", "第二条", client_msg_id="next")
    assert nxt.seq == 2 and _positions(conversation.id) == [1, 2]
    assert Conversation.get_by_id(conversation.id).last_message_id == nxt.id


@pytest.mark.parametrize("now", ["open", "ended"])
def test_a_message_refused_for_the_status_takes_no_position(db_app, now):
    _team, _agent, conversation = _chat(status=now)
    with connection():
        # The bot's answer to a chat a person took (or ended) meanwhile.
        with pytest.raises(messages.StatusChanged):
            messages.post_message(conversation, "bot", "机器人的回答", while_status="bot")
        stored, _ = messages.post_message(conversation, "visitor", "还在吗", client_msg_id="x")
    assert stored.seq == 1 and _positions(conversation.id) == [1]


def test_what_commits_with_the_message_still_does(db_app):
    """An internal note that mentions a colleague stores its mention with it."""
    team, agent, conversation = _chat()
    colleague = make_agent(team, name="王同事")
    with connection():
        note, _ = messages.post_message(conversation, "agent", "@王同事 请看一下", kind="text",
                                        visibility="internal", agent=agent)
    assert note.seq == 1
    assert [m.agent_id for m in Mention.select().where(Mention.message_id == note.id)] == [
        colleague.id]
