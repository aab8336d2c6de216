"""An open agent socket follows his account as it is now, not as it was at connect.

Found by an outside security check (docs/security.md §1, §3): the agent row read
when the workspace socket opened served every later frame and the event filter,
so an admin demoted to an agent who sees only his own chats, or an agent narrowed
from "all" to "self", kept replaying, writing into and hearing chats REST already
refused him; and a socket that only listens sent no frame before which its
session was checked, so a session ended where no process announced it (the
console's ``meiqia agent passwd`` beside the embedded server, an expired token or
session) kept receiving chats.

Now each agent frame reads his row (``ws._still_active``), the event filter reads
it with its view every SCOPE_CACHE_SECONDS (``_Scope.refresh``), and a credential
not checked for CREDENTIAL_CHECK_SECONDS is checked before the next event goes
out (``_Credential.guard``). Real sockets against a real server.
"""

from __future__ import annotations

import pytest
from simple_websocket import ConnectionClosed

from meiqia.models import AgentSession
from meiqia.models.base import utcnow
from meiqia.web import ws
from tests.api.test_conversations import start
from tests.api.test_conversations import vpost
from tests.ws.conftest import Socket
from tests.ws.conftest import cookie_of


@pytest.fixture
def world(api, live):
    """李 handles a chat; 周, an agent who sees everything, watches the team."""
    api.without_bot()
    li = api.online_agent(2, name="李客服", email="li@example.com")
    client, token, cid, _ = start(api.app, api.team["id"], name="访客甲")
    zhou = api.new_agent(name="周客服", email="zhou@example.com", scope="all",
                         max_concurrent=0)
    socket = Socket(live.url("/ws/agent"), cookie_of(zhou))
    socket.expect("hello")
    yield {"api": api, "li": li, "zhou": zhou, "cid": cid, "client": client,
           "token": token, "socket": socket, "live": live}
    socket.close()


def workspace(world):
    """Another workspace socket of 周客服, opened now."""
    socket = Socket(world["live"].url("/ws/agent"), cookie_of(world["zhou"]))
    socket.expect("hello")
    return socket


def visitor_says(world, body, n):
    response = vpost(world["client"], world["token"],
                     f"/api/v1/widget/conversations/{world['cid']}/messages",
                     json={"body": body, "client_msg_id": f"v-{n}"})
    assert response.status_code == 201, response.get_json()


def answered(socket, kind, data, tries=10):
    """Send a frame and return its error frame's ``data``; a frame answered
    ``unavailable`` (the database busy: a loaded machine) is sent again, as
    docs/protocol.md tells clients to."""
    for _ in range(tries):
        socket.send(kind, data)
        error = socket.expect("error")["data"]
        if error["code"] != "unavailable":
            return error
    raise AssertionError(f"{kind}: unavailable {tries} times")


def stops_hearing(world, socket, prefix, tries=8):
    """The visitor writes until a message of his no longer reaches the agent's socket
    within a second: True if one did not within ``tries``. While the database is too
    busy to read his view again, the old one may serve a little longer
    (``SCOPE_STALE_SECONDS``, ``_Scope.refresh``): a bound, not an instant."""
    for n in range(tries):
        body = f"{prefix} {n} 地址：北京市朝阳区"
        visitor_says(world, body, 10 + n)
        if socket.quiet("message", 1.0, where=lambda d, b=body: d.get("body") == b):
            return True
        socket.quiet("never", 0.5)  # it came: let the view's age run past its limit
    return False


def narrow(world, **fields):
    zhou = world["zhou"]
    changed = world["api"].patch(f"/api/v1/agents/{zhou.agent['id']}", json=fields)
    assert changed.status_code == 200, changed.get_json()
    # REST refuses him at once (404 out of scope; 401 deactivated).
    assert zhou.get(f"/api/v1/conversations/{world['cid']}").status_code in (401, 404)


def test_frames_use_the_scope_as_it_is_now(world):
    socket, cid = world["socket"], world["cid"]
    visitor_says(world, "我的卡号 6222 0000 1111", 1)
    socket.expect("message", where=lambda d: d.get("body", "").startswith("我的卡号"))
    narrow(world, scope="self")

    refused = answered(socket, "replay", {"conversation_id": cid, "after_seq": 0})
    assert refused["code"] == "not_found", refused
    refused = answered(socket, "message", {"conversation_id": cid, "body": "我来回答",
                                           "client_msg_id": "z-1"})
    assert refused["code"] == "not_found", refused
    assert "我来回答" not in str(world["api"].get(
        f"/api/v1/conversations/{cid}/messages").get_json())
    # Nor does he hear the chat any more: the frames above brought his view up to date.
    assert stops_hearing(world, socket, "第二条")


@pytest.mark.parametrize("change", [{"scope": "self"}, {"active": False}])
def test_a_socket_that_only_listens_follows_the_change(world, monkeypatch, change):
    """No frame from him at all: the event filter reloads his row with its view."""
    monkeypatch.setattr(ws, "SCOPE_CACHE_SECONDS", 0.3)
    monkeypatch.setattr(ws, "SCOPE_STALE_SECONDS", 0.6)
    monkeypatch.setattr(ws, "CREDENTIAL_CHECK_SECONDS", 0.3)
    # A socket opened now: the fixture's read its view (for 30 s) before the patch.
    socket = workspace(world)
    visitor_says(world, "换范围之前", 1)
    socket.expect("message", where=lambda d: d.get("body") == "换范围之前")
    narrow(world, **change)
    after = lambda d: "换范围之后" in d.get("body", "")  # noqa: E731
    if change == {"active": False}:  # deactivated: his session ended with it, at once
        with pytest.raises(ConnectionClosed):
            socket.quiet("pong", 5.0)
        visitor_says(world, "换范围之后 地址：北京市朝阳区", 2)
        assert socket.saw("error", where=lambda d: d["code"] == "unauthorized")
        assert not socket.saw("message", where=after)
        return
    # Past the cache's age, events are decided on his row as it is now.
    assert stops_hearing(world, socket, "换范围之后")


def test_a_session_ended_where_nobody_announced_it_stops_the_events(world, monkeypatch):
    """The console's password change on another process, a session past its
    lifetime: nothing is published, the session row alone says it has ended."""
    monkeypatch.setattr(ws, "CREDENTIAL_CHECK_SECONDS", 0.3)
    socket, zhou = workspace(world), world["zhou"]
    visitor_says(world, "结束之前", 1)
    socket.expect("message", where=lambda d: d.get("body") == "结束之前")
    ended = AgentSession.update(ended_at=utcnow()).where(
        AgentSession.agent == zhou.agent["id"], AgentSession.ended_at.is_null()).execute()
    assert ended >= 1
    # No frame from him: before an event goes out, past the check's age, his session
    # is read again and the socket ends (a busy database keeps it open a moment more).
    for n in range(8):
        visitor_says(world, f"结束之后 {n} 手机 13800138000", 2 + n)
        try:
            if socket.quiet("message", 1.0, where=lambda d, n=n: d.get("body", "")
                            .startswith(f"结束之后 {n} ")):
                break
            socket.quiet("never", 0.5)  # it came: let the check's age run past its limit
        except ConnectionClosed:
            break
    assert socket.saw("error", where=lambda d: d["code"] == "unauthorized")


def test_a_transfer_out_of_his_view_is_the_last_he_hears_of_it(world):
    """王 sees only his own chats. His chat transferred to 李 reaches his socket as
    a ``conversation`` frame naming him as ``previous_handler_id`` (his workspace
    closes it: it would otherwise stay on screen with its buttons), and nothing of
    it after that. Found by an outside check in Chromium."""
    api, li, cid = world["api"], world["li"], world["cid"]
    wang = api.new_agent(name="王客服", email="wang@example.com", scope="self",
                         max_concurrent=3)
    wang.go_online()  # a transfer goes to someone who is there
    moved = api.post(f"/api/v1/conversations/{cid}/transfer",
                     json={"agent_id": wang.agent["id"]})
    assert moved.status_code == 200, moved.get_json()
    socket = Socket(world["live"].url("/ws/agent"), cookie_of(wang))
    try:
        socket.expect("hello")
        visitor_says(world, "王客服在吗", 1)
        socket.expect("message", where=lambda d: d.get("body") == "王客服在吗")

        back = api.post(f"/api/v1/conversations/{cid}/transfer",
                        json={"agent_id": li.agent["id"]})
        assert back.status_code == 200, back.get_json()
        state = socket.expect("conversation", where=lambda d: d.get("conversation_id") == cid
                              and (d.get("handler") or {}).get("id") == li.agent["id"])
        assert state["data"]["previous_handler_id"] == wang.agent["id"]
        assert wang.get(f"/api/v1/conversations/{cid}").status_code == 404
        visitor_says(world, "地址：北京市朝阳区", 2)
        assert socket.quiet("message", 1.5, where=lambda d: d.get("conversation_id") == cid)
    finally:
        socket.close()
    # The visitor's own socket never learns who had it before (ids are the team's).
    from meiqia.services import visitor_privacy

    assert "previous_handler_id" not in visitor_privacy.event(state["data"])
