"""Visitors and agents over real websockets against a real server."""

from __future__ import annotations

import pytest

from meiqia.models import Conversation
from meiqia.models import Message
from tests.api.test_conversations import start
from tests.ws.conftest import Socket
from tests.ws.conftest import cookie_of


@pytest.fixture
def setup(api, live):
    api.patch("/api/v1/team", json={"settings": {"bot_enabled": False}})
    li = api.new_agent(max_concurrent=3)
    li.go_online()
    client, token, cid, _ = start(api.app, api.team["id"], name="访客甲")
    visitor = Socket(live.url(f"/ws/visitor?token={token}"))
    visitor.expect("hello")
    agent = Socket(live.url("/ws/agent"), cookie_of(li))
    agent.expect("hello")
    yield {"api": api, "li": li, "cid": cid, "token": token, "visitor": visitor,
           "agent": agent, "live": live}
    visitor.close()
    agent.close()


def test_whole_conversation_over_sockets(setup):
    visitor, agent, cid = setup["visitor"], setup["agent"], setup["cid"]
    visitor.send("message", {"body": "你好，在吗？", "client_msg_id": "v-1"})
    ack = visitor.expect("ack")
    assert ack["data"]["client_msg_id"] == "v-1" and ack["data"]["message"]["id"] > 0
    got = agent.expect("message", where=lambda d: d.get("body") == "你好，在吗？")
    assert got["data"]["conversation_id"] == cid

    agent.send("typing", {"conversation_id": cid})
    visitor.expect("typing", where=lambda d: d["who"] == "agent")
    agent.send("message", {"conversation_id": cid, "body": "在的，请讲", "client_msg_id": "a-1"})
    agent.expect("ack")
    reply = visitor.expect("message", where=lambda d: d.get("body") == "在的，请讲")
    assert reply["id"] == reply["data"]["id"] and reply["data"]["sender_name"] == "李客服"
    # "delivered" comes from the visitor's pump, so it may beat the ack to the agent.
    is_reply = lambda d: reply["id"] in d["message_ids"]  # noqa: E731
    delivered = agent.saw("delivered", is_reply) or agent.expect("delivered", where=is_reply)
    assert delivered["data"]["conversation_id"] == cid

    agent.send("message", {"conversation_id": cid, "body": "内部备注：老客户",
                           "mode": "internal", "client_msg_id": "a-2"})
    agent.expect("ack")
    assert visitor.quiet("message", 0.7, where=lambda d: "内部" in d.get("body", ""))
    assert all("内部" not in str(f) for f in visitor.seen)

    visitor.send("read", {"up_to": reply["id"]})
    agent.expect("read", where=lambda d: d["reader"] == "visitor")
    assert Message.get_by_id(reply["id"]).read_at is not None


def test_a_read_frame_past_the_last_message_is_clamped_to_it(setup):
    visitor, agent, cid = setup["visitor"], setup["agent"], setup["cid"]
    visitor.send("message", {"body": "在吗", "client_msg_id": "v-1"})
    asked = visitor.expect("ack")["data"]["message"]["id"]
    agent.send("read", {"conversation_id": cid, "up_to": asked + 500})
    told = visitor.expect("read", where=lambda d: d["reader"] == "agent")
    assert told["data"]["up_to"] == asked
    assert Conversation.get_by_id(cid).agent_read_id == asked
    agent.send("message", {"conversation_id": cid, "body": "在的", "client_msg_id": "a-1"})
    answered = agent.expect("ack")["data"]["message"]["id"]
    visitor.send("read", {"up_to": 2**31 - 1})
    told = agent.expect("read", where=lambda d: d["reader"] == "visitor")
    assert told["data"]["up_to"] == answered
    assert Conversation.get_by_id(cid).visitor_read_id == answered


def test_resend_and_reconnect_lose_and_repeat_nothing(setup):
    visitor, agent, cid, live = setup["visitor"], setup["agent"], setup["cid"], setup["live"]
    visitor.send("message", {"body": "第一条", "client_msg_id": "m1"})
    first = visitor.expect("ack")["data"]["message"]["id"]
    visitor.close()  # the connection drops
    # Meanwhile the agent writes twice.
    for n, text in enumerate(("回复一", "回复二")):
        agent.send("message", {"conversation_id": cid, "body": text, "client_msg_id": f"r{n}"})
        agent.expect("ack")
    again = Socket(live.url(f"/ws/visitor?token={setup['token']}&after={first}"))
    again.expect("hello")
    bodies = [again.expect("message")["data"]["body"] for _ in range(2)]
    assert bodies == ["回复一", "回复二"]
    # A resend of the first message (its ack was lost) is acknowledged, stored once.
    again.send("message", {"body": "第一条", "client_msg_id": "m1"})
    ack = again.expect("ack")["data"]
    assert ack["duplicate"] is True and ack["message"]["id"] == first
    assert Message.select().where(Message.client_msg_id == "m1").count() == 1
    assert again.quiet("message", 0.5, where=lambda d: d["body"] == "回复一")
    again.close()


@pytest.mark.parametrize(
    ("raw", "code"),
    [("not json", "bad_frame"), ('["list"]', "bad_frame"), ('{"type": "dance"}', "unknown_type"),
     ('{"type": "message", "data": []}', "bad_frame"), ("x" * 70000, "bad_frame")],
)
def test_bad_frames_get_an_error_and_change_nothing(setup, raw, code):
    visitor = setup["visitor"]
    before = Message.select().count()
    visitor.ws.send(raw)
    assert visitor.expect("error")["data"]["code"] == code
    visitor.send("message", {"body": "", "client_msg_id": "e1"})
    assert visitor.expect("error")["data"]["code"] == "invalid"
    assert Message.select().count() == before
    visitor.send("ping")
    visitor.expect("pong")  # the socket still works


def test_bad_tokens_are_refused(live):
    socket = Socket(live.url("/ws/visitor?token=forged"))
    assert socket.expect("error")["data"]["code"] == "unauthorized"
    agent = Socket(live.url("/ws/agent"))
    assert agent.expect("error")["data"]["code"] == "unauthorized"


def test_agent_outside_scope_hears_nothing_of_the_conversation(setup):
    api, live, cid = setup["api"], setup["live"], setup["cid"]
    outsider = api.new_agent(email="zhao@example.com", name="赵客服", scope="self")
    socket = Socket(live.url("/ws/agent"), cookie_of(outsider))
    socket.expect("hello")
    setup["visitor"].send("message", {"body": "只给李客服看", "client_msg_id": "s1"})
    setup["agent"].expect("message", where=lambda d: d.get("body") == "只给李客服看")
    assert socket.quiet("message", 0.7)
    socket.send("message", {"conversation_id": cid, "body": "插一句", "client_msg_id": "o-1"})
    assert socket.expect("error")["data"]["code"] == "not_found"
    socket.close()


def test_frame_size_limits(setup):
    """Over 64 KB of UTF-8 (not characters): an error frame, the socket stays. Over
    262,144 characters the server does not read the message at all: it closes
    the socket with 1009 (what protocol.md says)."""
    import json

    import simple_websocket

    visitor = setup["visitor"]
    chinese = json.dumps({"type": "message", "data": {"body": "你" * 22_000,
                                                      "client_msg_id": "big-1"}},
                         ensure_ascii=False)
    assert len(chinese) < 64 * 1024 < len(chinese.encode())
    visitor.ws.send(chinese)
    error = visitor.expect("error")["data"]
    assert error["code"] == "bad_frame" and "65536 bytes" in error["message"]
    visitor.send("ping")
    visitor.expect("pong")
    assert Message.select().where(Message.client_msg_id == "big-1").count() == 0

    visitor.ws.send("x" * (256 * 1024 + 1))
    try:
        while True:
            assert visitor.ws.receive(timeout=10) is not None, "the socket stayed open"
    except simple_websocket.ConnectionClosed as closed:
        assert closed.reason == 1009
