"""Message status over the sockets: messages replayed to a reconnecting visitor
count as delivered, and a channel that cannot report reads shows
"delivered, read state unknown" in frames as in the HTTP lists."""

from __future__ import annotations

import pytest

from meiqia.models import Conversation
from meiqia.models import Message
from meiqia.services import messages
from tests.api.test_conversations import start
from tests.browser import sms_channel
from tests.conftest import close_app
from tests.conftest import make_app
from tests.helpers import ApiClient
from tests.helpers import new_client_id
from tests.ws.conftest import LiveServer
from tests.ws.conftest import Socket
from tests.ws.conftest import cookie_of


@pytest.fixture
def world(tmp_path):
    app = make_app(tmp_path, plugins=(sms_channel,))
    server = None
    with app.app_context():
        admin = ApiClient.registered(app)
        admin.patch("/api/v1/team", json={"settings": {"bot_enabled": False}})
        li = admin.new_agent(max_concurrent=3)
        li.go_online()
        server = LiveServer(app)
        yield admin, li, server
        Socket.close_all()
        server.stop()
    close_app(app)


def agent_socket(server, who, after=0):
    socket = Socket(server.url(f"/ws/agent?after={after}"), cookie_of(who))
    socket.expect("hello")
    return socket


def test_messages_replayed_on_reconnect_are_delivered(world):
    admin, li, server = world
    _client, token, cid, _ = start(admin.app, admin.team["id"])
    agent = agent_socket(server, li)
    ids = [li.post(f"/api/v1/conversations/{cid}/messages", json={"client_msg_id": new_client_id(), "body": text})
           .get_json()["message"]["id"] for text in ("您好", "订单已发货")]
    assert Message.select().where(Message.id.in_(ids), Message.delivered_at.is_null()).count() \
        == 2  # nobody had them yet: the visitor was away
    visitor = Socket(server.url(f"/ws/visitor?token={token}&after=0"))
    visitor.expect("hello")
    assert [visitor.expect("message", where=lambda d: d["kind"] != "event")["data"]["body"]
            for _ in ids] == ["您好", "订单已发货"]
    told = agent.expect("delivered", where=lambda d: d["conversation_id"] == cid)["data"]
    assert told["message_ids"] == ids and told["status"] == "delivered"
    assert Message.select().where(Message.id.in_(ids), Message.delivered_at.is_null()).count() \
        == 0
    # A second reconnect replays them again, but they are not "delivered" twice.
    visitor.close()
    again = Socket(server.url(f"/ws/visitor?token={token}&after=0"))
    again.expect("hello")
    again.expect("message", where=lambda d: d["id"] == ids[-1])
    assert agent.quiet("delivered", 0.5)


def test_a_channel_without_reads_says_so_in_socket_frames(world):
    admin, li, server = world
    _client, _token, cid, _ = start(admin.app, admin.team["id"])
    Conversation.update(channel="sms").where(Conversation.id == cid).execute()
    first = li.post(f"/api/v1/conversations/{cid}/messages", json={"client_msg_id": new_client_id(), "body": "您好"})
    first = first.get_json()["message"]["id"]  # (after=0 asks for no replay)
    agent = agent_socket(server, li)
    agent.send("message", {"conversation_id": cid, "body": "短信回复", "client_msg_id": "s-1"})
    sent = agent.expect("ack")["data"]["message"]
    assert sent["status"] == "sent"
    # The channel delivered it (as an SMS gateway's receipt would tell).
    messages.mark_delivered(Conversation.get_by_id(cid), [sent["id"]])
    told = agent.expect("delivered", where=lambda d: sent["id"] in d["message_ids"])["data"]
    assert told["status"] == "delivered_read_unknown"
    # A resend is acknowledged with the status as it is now.
    agent.send("message", {"conversation_id": cid, "body": "短信回复", "client_msg_id": "s-1"})
    again = agent.expect("ack", where=lambda d: d["duplicate"])["data"]["message"]
    assert again["status"] == "delivered_read_unknown"
    # Replays: on reconnect after an id, and the "replay" frame.
    back = agent_socket(server, li, after=first)
    replayed = back.expect("message", where=lambda d: d["id"] == sent["id"])["data"]
    assert replayed["status"] == "delivered_read_unknown"
    fresh = agent_socket(server, li)
    fresh.send("replay", {"conversation_id": cid, "after": 0})
    history = fresh.expect("replay")["data"]["messages"]
    frame = next(m for m in history if m["id"] == sent["id"])
    assert frame["status"] == "delivered_read_unknown"
    # On the web channel the same message is plainly "delivered".
    Conversation.update(channel="web").where(Conversation.id == cid).execute()
    web = agent_socket(server, li)
    web.send("replay", {"conversation_id": cid, "after_seq": 0})
    history = web.expect("replay")["data"]["messages"]
    assert next(m for m in history if m["id"] == sent["id"])["status"] == "delivered"
