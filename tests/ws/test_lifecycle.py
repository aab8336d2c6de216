"""The conversation's life over real sockets: reply modes as the visitor sees
them, presence, live queue positions, end and rating, mentions, an agent that
reconnects, and frames that try to reach another conversation."""

from __future__ import annotations

import pytest

from meiqia.models import Conversation
from meiqia.models import Message
from meiqia.models import Visitor
from tests.api.test_conversations import start
from tests.api.test_conversations import vpost
from tests.helpers import new_client_id
from tests.ws.conftest import Socket
from tests.ws.conftest import cookie_of


@pytest.fixture
def team(api):
    return api.without_bot()


def online(api, limit=2, **fields):
    return api.online_agent(limit, **fields)


def visitor_socket(live, token, after=0):
    socket = Socket(live.url(f"/ws/visitor?token={token}&after={after}"))
    hello = socket.expect("hello")
    return socket, hello["data"]


def test_reply_modes_as_the_visitor_socket_sees_them(team, live):
    li = online(team, email="li@example.com", name="李客服")
    _client, token, cid, _ = start(team.app, team.team["id"])
    visitor, _ = visitor_socket(live, token)
    admin = Socket(live.url("/ws/agent"), cookie_of(team))
    admin.expect("hello")
    admin.send("message", {"conversation_id": cid, "body": "主管匿名回复", "mode": "anonymous",
                           "client_msg_id": "x1"})
    assert admin.expect("ack")["data"]["message"]["anonymous"] is True
    got = visitor.expect("message", where=lambda d: d.get("body") == "主管匿名回复")["data"]
    assert got["sender_name"] == "李客服"
    assert "agent_id" not in got and "anonymous" not in got and "visibility" not in got
    admin.send("message", {"conversation_id": cid, "body": "内部：请 @李客服 跟进",
                           "mode": "internal", "client_msg_id": "x2"})
    admin.expect("ack")
    li.post(f"/api/v1/conversations/{cid}/messages", json={"client_msg_id": new_client_id(), "body": "公开回复"})
    visitor.expect("message", where=lambda d: d.get("body") == "公开回复")
    assert all("内部" not in str(frame) for frame in visitor.seen)
    # A reconnect with after=0 replays the conversation, still without the note.
    visitor.close()
    again, _ = visitor_socket(live, token)
    # (After the stored handover line "李客服 为您服务".)
    bodies = [again.expect("message", where=lambda d: d["kind"] != "event")["data"]["body"]
              for _ in range(2)]
    assert bodies == ["主管匿名回复", "公开回复"]
    assert again.quiet("message", 0.5)
    for s in (again, admin):
        s.close()


def test_frames_cannot_reach_another_conversation(team, live):
    online(team)
    _c1, token1, cid1, _ = start(team.app, team.team["id"])
    _c2, token2, cid2, _ = start(team.app, team.team["id"])
    other, _ = visitor_socket(live, token2)
    mine, hello = visitor_socket(live, token1)
    assert hello["conversation_id"] == cid1
    mine.send("message", {"conversation_id": cid2, "body": "串台", "client_msg_id": "z1"})
    error = mine.expect("error")["data"]
    assert error["code"] == "not_found"
    mine.send("read", {"conversation_id": cid2, "up_to": 10**6})
    assert mine.expect("error")["data"]["code"] == "not_found"
    assert Message.select().where(Message.body == "串台").count() == 0
    assert other.quiet("message", 0.5, where=lambda d: d.get("body") == "串台")
    for s in (mine, other):
        s.close()


def test_presence_is_pushed_and_listed(team, live):
    li = online(team)
    _client, token, cid, _ = start(team.app, team.team["id"])
    agent = Socket(live.url("/ws/agent"), cookie_of(li))
    agent.expect("hello")
    first, _ = visitor_socket(live, token)
    came = agent.expect("presence")["data"]
    assert came["online"] is True and came["conversation_id"] == cid
    assert li.get("/api/v1/conversations").get_json()["mine"][0]["visitor"]["online"] is True
    second, _ = visitor_socket(live, token)  # a second tab
    first.close()
    assert agent.quiet("presence", 0.7)  # still one tab open: still online
    assert Visitor.get_by_id(came["visitor_id"]).online_until is not None
    assert li.get("/api/v1/conversations").get_json()["mine"][0]["visitor"]["online"] is True
    second.close()
    left = agent.expect("presence", timeout=15)["data"]  # a busy machine: give it time
    assert left["online"] is False and left["visitor_id"] == came["visitor_id"]
    assert li.get("/api/v1/conversations").get_json()["mine"][0]["visitor"]["online"] is False
    agent.close()


def test_queue_positions_live_then_end_and_rate(team, live):
    li = online(team, limit=1)
    _c1, _t1, first, _ = start(team.app, team.team["id"])
    _c2, token2, second, data2 = start(team.app, team.team["id"])
    client3, token3, third, data3 = start(team.app, team.team["id"])
    assert (data2["conversation"]["queue_position"], data3["conversation"]["queue_position"]) \
        == (1, 2)
    waiting, hello = visitor_socket(live, token3)
    assert hello["status"] == "queued" and hello["queue_position"] == 2
    next_up, _ = visitor_socket(live, token2)
    li.post(f"/api/v1/conversations/{first}/end")
    state = next_up.expect("conversation", where=lambda d: d["status"] == "open")["data"]
    assert state["handler"]["name"] == "李客服"
    moved = waiting.expect("conversation", where=lambda d: d.get("queue_position") == 1)
    assert moved["data"]["status"] == "queued"

    # The agent ends; the visitor is told and may rate, but never end himself.
    next_up.send("end", {})
    assert next_up.expect("error")["data"]["code"] == "unknown_type"
    li.post(f"/api/v1/conversations/{second}/end")
    ended = next_up.expect("message", where=lambda d: d["kind"] == "event")["data"]
    # Who ended it is the team's business (docs/protocol.md, "What a visitor sees").
    assert ended["payload"]["event"] == "ended" and "by" not in ended["payload"]
    next_up.expect("conversation", where=lambda d: d["status"] == "ended")
    rated = vpost(_c2, token2, f"/api/v1/widget/conversations/{second}/rating",
                  json={"rating": "bad", "comment": "等太久了"})
    assert rated.status_code == 200
    assert Conversation.get_by_id(third).handler_id == li.agent["id"]  # the queue moved on
    for s in (waiting, next_up):
        s.close()


def test_mention_reaches_the_colleague_socket_and_an_agent_replays_after_an_id(team, live):
    li = online(team, email="li@example.com", name="李客服")
    zhao = team.new_agent(email="zhao@example.com", name="赵客服", scope="self")
    client, token, cid, _ = start(team.app, team.team["id"])
    z = Socket(live.url("/ws/agent"), cookie_of(zhao))
    z.expect("hello")
    assert z.quiet("message", 0.3)
    li_socket = Socket(live.url("/ws/agent"), cookie_of(li))
    li_socket.expect("hello")
    li_socket.send("message", {"conversation_id": cid, "body": "@赵客服 这单你熟，看一下",
                               "mode": "internal", "client_msg_id": "m1"})
    last_seen = li_socket.expect("ack")["data"]["message"]["id"]
    mention = z.expect("mention")["data"]
    assert mention["conversation_id"] == cid and mention["by"] == "李客服"
    li_socket.close()  # li drops; meanwhile the visitor writes and the admin adds a note
    vpost(client, token, f"/api/v1/widget/conversations/{cid}/messages",
          json={"client_msg_id": new_client_id(), "body": "有人吗？"})
    team.post(f"/api/v1/conversations/{cid}/messages", json={"client_msg_id": new_client_id(), "body": "内部：已知悉",
                                                             "mode": "internal"})
    back = Socket(live.url(f"/ws/agent?after={last_seen}"), cookie_of(li))
    back.expect("hello")
    got = [back.expect("message")["data"] for _ in range(2)]
    assert [m["body"] for m in got] == ["有人吗？", "内部：已知悉"]
    assert got[1]["visibility"] == "internal"
    assert back.quiet("message", 0.5)
    for s in (back, z):
        s.close()


def test_visitor_asks_for_a_human_over_the_socket(api, live):
    """Bot on (the default): typing 转人工 or pressing the button routes."""
    li = online(api)
    _client, token, cid, data = start(api.app, api.team["id"])
    assert data["conversation"]["status"] == "bot"
    visitor, _ = visitor_socket(live, token)
    visitor.send("message", {"body": "转人工", "client_msg_id": "h1"})
    visitor.expect("ack")
    is_open = lambda d: d["status"] == "open"  # noqa: E731
    # The state frame comes from the socket's pump, so it may come before or after
    # the ack (``where=``: a positional second argument would be the timeout).
    state = (visitor.saw("conversation", is_open)
             or visitor.expect("conversation", where=is_open))
    state = state["data"]
    # His display name, never his account id (docs/protocol.md, "What a visitor sees").
    assert state["handler"] == {"name": li.agent["name"]}
    visitor.close()

    _c2, token2, cid2, _ = start(api.app, api.team["id"])
    second, _ = visitor_socket(live, token2)
    second.send("human", {})
    reply = second.expect("conversation", where=lambda d: "outcome" in d)["data"]
    assert reply["outcome"] == "open" and Conversation.get_by_id(cid2).status == "open"
    second.close()


def test_the_inactivity_rule_tells_the_visitor_and_the_agent(team, live):
    import datetime

    from meiqia.models.base import utcnow
    from meiqia.services import inactivity

    li = online(team)
    _client, token, cid, _ = start(team.app, team.team["id"])
    visitor, _ = visitor_socket(live, token)
    agent = Socket(live.url("/ws/agent"), cookie_of(li))
    agent.expect("hello")
    assert team.put("/api/v1/conversation-rules",
                    json={"inactivity_minutes": 20}).status_code == 200
    then = utcnow() - datetime.timedelta(minutes=21)
    Conversation.update(created_at=then, queued_at=then, assigned_at=then,
                        last_message_at=then).where(
        Conversation.id == cid).execute()
    assert inactivity.sweep() == 1
    told = visitor.expect("message", where=lambda d: d["kind"] == "event"
                          and d["payload"]["event"] == "ended")["data"]
    assert told["payload"]["reason"] == "inactivity" and "自动结束" in told["body"]
    visitor.expect("conversation", where=lambda d: d["status"] == "ended")
    agent.expect("conversation", where=lambda d: d["conversation_id"] == cid
                 and d["status"] == "ended")
    for s in (visitor, agent):
        s.close()
