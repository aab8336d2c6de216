"""Rules of docs/protocol.md that a client written from the docs alone found broken
(2026-12-05, a visitor and an agent client against ``meiqia run``):

- a resume position beyond the conversation's last ``seq`` was kept: every later
  message at or below it was dropped as "sent already", so the client's own
  messages were stored but never acknowledged and no live message came, without a
  word. Now it is taken as the last ``seq``, on both sockets;
- a malformed visitor ``after_seq`` was ignored (the whole conversation replayed);
  numbers past the database's range were accepted in the agent's list. Both are
  refused at connect now, like every connect refusal: one error frame with
  ``"ref": "connect"``, then the socket closes;
- ``ref`` echoed invalid ``client_msg_id`` values back, and the visitor socket's
  "another conversation" error named the frame's type instead of its valid id;
- agent frames without ``conversation_id`` answered ``not_found`` (the lookup of
  conversation 0) instead of saying what was missing; an agent ``typing`` frame's
  ``preview`` was not checked.
"""

from __future__ import annotations

from tests.api.test_conversations import start
from tests.ws.conftest import Socket
from tests.ws.conftest import cookie_of


def _chat(api):
    api.without_bot()
    li = api.online_agent(limit=3)
    _client, token, cid, _ = start(api.app, api.team["id"])
    return li, token, cid


def test_a_visitor_position_past_the_last_seq_still_gets_acks_and_live_messages(api, live):
    li, token, cid = _chat(api)
    agent = Socket(live.url("/ws/agent"), cookie_of(li))
    agent.expect("hello")
    first = Socket(live.url(f"/ws/visitor?token={token}"))
    first.expect("hello")
    first.send("message", {"body": "第一条", "client_msg_id": "p-1"})
    last = first.expect("ack")["data"]["message"]["seq"]
    first.close()
    for position in (last + 1, 1000, 2147483647):
        visitor = Socket(live.url(f"/ws/visitor?token={token}&after_seq={position}"))
        visitor.expect("hello")
        assert visitor.quiet("message", 0.3)  # nothing to replay
        visitor.send("message", {"body": f"从 {position} 续传", "client_msg_id": f"p-{position}"})
        ack = visitor.expect("ack", where=lambda d, p=position: d["client_msg_id"] == f"p-{p}")
        agent.send("message", {"conversation_id": cid, "body": f"回复 {position}",
                               "client_msg_id": f"r-{position}"})
        reply = visitor.expect("message", where=lambda d, p=position: d["body"] == f"回复 {p}")
        assert reply["data"]["seq"] == ack["data"]["message"]["seq"] + 1
        visitor.close()


def test_an_agent_position_past_the_last_seq_is_taken_as_it(api, live):
    li, token, cid = _chat(api)
    visitor = Socket(live.url(f"/ws/visitor?token={token}"))
    visitor.expect("hello")
    visitor.send("message", {"body": "在吗", "client_msg_id": "q-1"})
    visitor.expect("ack")
    agent = Socket(live.url(f"/ws/agent?after_seq={cid}:1000"), cookie_of(li))
    agent.expect("hello")
    assert agent.quiet("message", 0.3)
    agent.send("message", {"conversation_id": cid, "body": "在的", "client_msg_id": "a-1"})
    assert agent.expect("ack")["data"]["message"]["body"] == "在的"
    visitor.send("message", {"body": "好的", "client_msg_id": "q-2"})
    assert agent.expect("message", where=lambda d: d["body"] == "好的")


def test_positions_that_are_no_positions_are_refused_at_connect(api, live):
    li, token, cid = _chat(api)
    for query in ("abc", "-1", "1.5", "2147483648", ""):
        visitor = Socket(live.url(f"/ws/visitor?token={token}&after_seq={query}&lang=zh-CN"))
        error = visitor.expect("error")["data"]
        assert error["code"] == "invalid" and error["ref"] == "connect", (query, error)
        assert error["message_en"] == "after_seq: a whole number from 0 to 2147483647"
        assert error["message"] == "续传位置：须为 0 到 2147483647 之间的整数"
        assert visitor.saw("hello") is None
    for query in (f"{cid}:99999999999", "99999999999:1", "1:x"):
        agent = Socket(live.url(f"/ws/agent?after_seq={query}"), cookie_of(li))
        error = agent.expect("error")["data"]
        assert error["code"] == "invalid" and error["ref"] == "connect", (query, error)
        assert agent.saw("hello") is None
    # The legacy ?after=<message id> too (found from outside: -5 and abc replayed
    # the whole conversation without a word), on both sockets.
    for query in ("abc", "-5", "1.5", "2147483648"):
        visitor = Socket(live.url(f"/ws/visitor?token={token}&after={query}&lang=zh-CN"))
        error = visitor.expect("error")["data"]
        assert error["code"] == "invalid" and error["ref"] == "connect", (query, error)
        assert error["message"] == "续传的消息编号：须为 0 到 2147483647 之间的整数"
        assert visitor.saw("hello") is None
        agent = Socket(live.url(f"/ws/agent?after={query}"), cookie_of(li))
        error = agent.expect("error")["data"]
        assert error["code"] == "invalid" and error["ref"] == "connect", (query, error)
        assert error["message"] == "after: a whole number from 0 to 2147483647"
        assert agent.saw("hello") is None


def test_connect_refusals_name_connect_as_their_ref(api, live):
    for url in ("/ws/visitor", "/ws/visitor?token=forged", "/ws/agent"):
        socket = Socket(live.url(url))
        error = socket.expect("error")["data"]
        assert error["code"] == "unauthorized" and error["ref"] == "connect", (url, error)


def test_ref_echoes_only_a_valid_client_msg_id(api, live):
    li, token, cid = _chat(api)
    visitor = Socket(live.url(f"/ws/visitor?token={token}"))
    visitor.expect("hello")
    for bad in ("a b", "<b>", "x" * 65, "坏\n"):
        visitor.send("message", {"body": "你好", "client_msg_id": bad})
        error = visitor.expect("error")["data"]
        assert error["code"] == "invalid" and error["ref"] == "message", (bad, error)
    visitor.send("message", {"body": "你好", "client_msg_id": 5})
    assert visitor.expect("error")["data"]["ref"] == "message"
    # Another conversation's id: refused, named by the frame's valid id.
    visitor.send("message", {"body": "你好", "client_msg_id": "e-4", "conversation_id": cid + 99})
    error = visitor.expect("error")["data"]
    assert (error["code"], error["ref"]) == ("not_found", "e-4")


def test_agent_frames_say_that_conversation_id_is_missing(api, live):
    li, token, cid = _chat(api)
    agent = Socket(live.url("/ws/agent?lang=en"), cookie_of(li))
    agent.expect("hello")
    for kind, data in (("message", {"body": "hi", "client_msg_id": "m-1"}),
                       ("typing", {"typing": True}), ("read", {"up_to": 1}), ("replay", {})):
        agent.send(kind, data)
        error = agent.expect("error")["data"]
        assert (error["code"], error["message"]) == (
            "invalid", "conversation_id: is required"), (kind, error)
    agent.send("typing", {"conversation_id": cid, "typing": True, "preview": 5})
    error = agent.expect("error")["data"]
    assert (error["code"], error["message"]) == ("invalid", "preview: expected string")
    agent.send("ping", {})
    agent.expect("pong")


def test_a_note_on_an_ended_chat_nobody_handled_stays_out_of_a_scoped_socket(api, live):
    """An ended conversation nobody handled, in no group, is no shared pool
    (docs/security.md §1), nor is one still with the bot: an admin's internal note
    on either must not reach an agent of scope ``self`` over his socket, while a
    note on a chat waiting in the queue (the pool) does."""
    import datetime

    from tests.factories import make_conversation
    from tests.factories import make_visitor

    api.without_bot()
    li = api.new_agent(email="li@example.com", name="李客服", scope="self")
    team = api.team["id"]
    ended = make_conversation(team, make_visitor(team, "王五"),
                              ended_at=datetime.datetime(2026, 12, 5, 9, 0),
                              messages=[("visitor", "旧问题", 0)])
    with_bot = make_conversation(team, make_visitor(team, "孙七"),
                                 messages=[("visitor", "我的手机号13900001111", 0)])
    waiting = make_conversation(team, make_visitor(team, "赵六"), status="queued",
                                messages=[("visitor", "在吗", 0)])
    socket = Socket(live.url("/ws/agent"), cookie_of(li))
    socket.expect("hello")
    for cid, body in ((ended.id, "已结束对话的备注"), (with_bot.id, "机器人对话的备注"),
                      (waiting.id, "等待中对话的备注")):
        sent = api.post(f"/api/v1/conversations/{cid}/messages", json={
            "body": body, "mode": "internal", "client_msg_id": f"n-{cid}"})
        assert sent.status_code == 201, sent.get_json()
    socket.expect("message", where=lambda d: d["body"] == "等待中对话的备注")
    socket.quiet("message", 0.5)
    for body in ("已结束对话的备注", "机器人对话的备注"):
        assert socket.saw("message", where=lambda d, b=body: d["body"] == b) is None


def test_random_resume_positions_lose_nothing_and_repeat_nothing(api, live):
    """Many reconnects from random positions, below, at and beyond the last ``seq``,
    while the agent writes: each socket gets exactly the messages after
    min(position, last seq), once, in order, then its own ack and the next reply."""
    import random

    rng = random.Random(29)
    li, token, cid = _chat(api)
    agent = Socket(live.url("/ws/agent"), cookie_of(li))
    agent.expect("hello")
    last = 0
    for trial in range(15):
        agent.send("message", {"conversation_id": cid, "body": f"回复{trial}",
                               "client_msg_id": f"r{trial}"})
        last = agent.expect("ack", where=lambda d, t=trial: d["client_msg_id"] == f"r{t}")[
            "data"]["message"]["seq"]
        position = rng.choice([rng.randint(0, last), last, last + rng.randint(1, 100)])
        visitor = Socket(live.url(f"/ws/visitor?token={token}&after_seq={position}"))
        visitor.expect("hello")
        replayed = [visitor.expect("message")["data"]["seq"]
                    for _ in range(max(0, last - min(position, last)))]
        assert replayed == list(range(min(position, last) + 1, last + 1)), (position, last)
        visitor.send("message", {"body": f"问{trial}", "client_msg_id": f"q{trial}"})
        mine = visitor.expect("ack")["data"]["message"]["seq"]
        assert mine == last + 1
        assert visitor.quiet("message", 0.1)
        last = mine
        visitor.close()


def test_a_chat_with_the_bot_in_no_group_reaches_no_scoped_socket(api, live):
    """Found by a docs-only attacker: every agent socket got the ``conversation.started``
    and ``message`` frames of chats still with the bot (and with them the ids that
    opened the conversation API on their transcript and contact). A chat nobody
    handles in no group is a scoped agent's only while it waits in the queue; an
    agent of scope ``all`` still sees it all."""
    li = api.new_agent(email="li@example.com", name="李客服", scope="self")
    zhao = api.new_agent(email="zhao@example.com", name="赵客服", scope="all")
    scoped = Socket(live.url("/ws/agent"), cookie_of(li))
    scoped.expect("hello")
    everyone = Socket(live.url("/ws/agent"), cookie_of(zhao))
    everyone.expect("hello")
    _client, token, cid, _ = start(api.app, api.team["id"])
    visitor = Socket(live.url(f"/ws/visitor?token={token}"))
    visitor.expect("hello")
    visitor.send("message", {"body": "我的手机号是13900001111", "client_msg_id": "b-1"})
    visitor.expect("ack")
    everyone.expect("message", where=lambda d: d["conversation_id"] == cid
                    and d["body"] == "我的手机号是13900001111")
    assert scoped.quiet("message", 1.0)
    for kind in ("conversation.started", "message", "conversation"):
        assert scoped.saw(kind, where=lambda d: d.get("conversation_id") == cid) is None, kind
    # Waiting in the queue (every agent busy): the shared pool, his too.
    from meiqia.models import Conversation
    from meiqia.models.base import utcnow

    Conversation.update(status="queued", queued_at=utcnow()).where(
        Conversation.id == cid).execute()
    visitor.send("message", {"body": "还在吗", "client_msg_id": "b-2"})
    got = scoped.expect("message", where=lambda d: d["body"] == "还在吗")
    assert got["data"]["conversation_status"] == "queued"
