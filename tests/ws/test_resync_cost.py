"""An agent socket's resync costs statements for the conversations actually
behind, not for every conversation it knows.

Before, a resync filled every conversation with a message in the window or a
position on the stream (three statements each): in a busy team every agent
socket of a process resyncing at once (a hub peer thought silent) took the
database turns chat frames waited for, and the collapse fed itself
(docs/benchmarks.md, "Production at 300 msg/s"). Here an agent knows 41 live
conversations, one message of one of them was stored and never published, and a
resync of every subscription in the process must bring exactly that message,
once, in a handful of statements.
"""

from __future__ import annotations

import logging
import threading

from meiqia.models import Conversation
from tests.reliability.test_database_faults import open_chat
from tests.ws.conftest import Socket
from tests.ws.conftest import cookie_of
from tests.ws.test_resend_republish import store_without_publishing


class StatementCounter(logging.Handler):
    """Counts the statements peewee sends from one thread (it logs each at DEBUG)."""

    def __init__(self, thread_name_prefix: str) -> None:
        super().__init__(logging.DEBUG)
        self.prefix = thread_name_prefix
        self.count = 0
        self.counting = threading.Lock()  # not ``lock``: logging.Handler holds that one in emit

    def emit(self, record: logging.LogRecord) -> None:
        if not record.threadName.startswith(self.prefix):
            with self.counting:
                self.count += 1


def test_a_resync_reads_only_what_is_behind(app, live):
    from meiqia.services import conversations
    from meiqia.services import visitors

    api, _, token, cid = open_chat(app)
    team_id = Conversation.get_by_id(cid).team_id
    agent = Socket(live.url("/ws/agent"), cookie_of(api))
    agent.expect("hello")
    # 40 conversations with a message each, heard live by the agent socket.
    others = []
    for n in range(40):
        visitor, visit = visitors.start_session({"team_id": team_id}, "127.0.0.1", "test", None)
        conversation, _ = conversations.start_or_resume(visitor, visit)
        conversations.visitor_message(visitor, conversation, f"第{n}位访客", f"v{n}")
        others.append(conversation.id)
    for n in range(40):
        agent.expect("message", where=lambda d, n=n: d.get("body") == f"第{n}位访客", timeout=30)
    # One message stored behind the hub's back, then every subscription resyncs.
    visitor_id = Conversation.get_by_id(others[7]).visitor_id
    missed = store_without_publishing(others[7], visitor_id, "没人听到的一句", "lost-1")
    counter = StatementCounter("MainThread")
    peewee_log = logging.getLogger("peewee")
    old_level = peewee_log.level
    peewee_log.addHandler(counter)
    peewee_log.setLevel(logging.DEBUG)
    try:
        app.extensions["meiqia.hub"]._resync_all(0.0)
        frame = agent.expect("message", where=lambda d: d.get("id") == missed, timeout=30)
    finally:
        peewee_log.removeHandler(counter)
        peewee_log.setLevel(old_level)
    assert frame["data"]["body"] == "没人听到的一句"
    # The scoped look-up, then one fill of the one conversation behind (its scope
    # check and its messages), give or take the socket's own bookkeeping: 6 when
    # written, against 30 for the fill of every conversation in the window before
    # (which grows with the team's traffic; this does not).
    assert counter.count <= 12, counter.count
    visitor = Socket(live.url(f"/ws/visitor?token={token}"))
    visitor.expect("hello")
    visitor.send("message", {"body": "之后", "client_msg_id": "after"})
    agent.expect("message", where=lambda d: d.get("body") == "之后", timeout=30)
    assert [f["data"].get("id") for f in agent.seen if f["type"] == "message"].count(missed) == 1
