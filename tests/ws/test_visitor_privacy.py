"""What a visitor may see: the agent's display name, nothing else about accounts.

One conversation walks every visitor-facing frame and route (issue 13, item 6):
the widget session, the socket's hello, message, ack, conversation and typing
frames, the human request, an anonymous reply, an internal note, a transfer, the
end, the rating, the HTTP message list and the tickets. Every answer is searched
for account fields (agent ids, who ended or transferred, e-mails) and for the
agents' account names and e-mail addresses: the agents have nicknames, so their
names never need to appear.
"""

from __future__ import annotations

import json
from typing import Any

from meiqia.services.visitor_privacy import ACCOUNT_KEYS
from tests.api.test_conversations import start
from tests.helpers import new_client_id
from tests.ws.conftest import Socket
from tests.ws.conftest import cookie_of

SECRETS = ("李卫明", "li.weiming@example.com", "王建国", "wang.jianguo@example.com")


def _keys(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in _keys(v)}
    if isinstance(value, list):
        return {k for v in value for k in _keys(v)}
    return set()


def _leaks(where: str, value: Any) -> list[str]:
    found = [f"{where}: key {k!r}" for k in _keys(value) & ACCOUNT_KEYS]
    text = json.dumps(value, ensure_ascii=False)
    found += [f"{where}: {s!r}" for s in SECRETS if s in text]
    handler = value.get("handler") if isinstance(value, dict) else None
    if isinstance(handler, dict) and set(handler) - {"name"}:
        found.append(f"{where}: handler {handler}")
    return found


def test_no_visitor_route_or_frame_carries_account_fields(api, live):
    api.without_bot()
    li = api.online_agent(limit=5, name="李卫明", nickname="小李",
                          email="li.weiming@example.com")
    wang = api.online_agent(limit=5, name="王建国", nickname="老王",
                            email="wang.jianguo@example.com")
    client, token, cid, session = start(api.app, api.team["id"], name="访客甲")
    headers = {"X-Visitor-Token": token}
    seen: list[tuple[str, Any]] = [("session", session)]

    visitor = Socket(live.url(f"/ws/visitor?token={token}&after_seq=0"))
    visitor.expect("hello")
    handler = api.get(f"/api/v1/conversations/{cid}").get_json()["handler_id"]
    agent = li if handler == li.agent["id"] else wang
    other = wang if agent is li else li
    agent_socket = Socket(live.url("/ws/agent"), cookie_of(agent))
    agent_socket.expect("hello")

    visitor.send("message", {"body": "你好，我的订单", "client_msg_id": "p-1"})
    visitor.expect("ack")
    visitor.send("human", {})
    visitor.expect("conversation")
    agent_socket.send("typing", {"conversation_id": cid, "typing": True})
    visitor.expect("typing")
    for mode, body in (("reply", "您好，马上查"), ("anonymous", "已加急"),
                       ("internal", "内部：老客户")):
        agent_socket.send("message", {"conversation_id": cid, "body": body, "mode": mode,
                                      "client_msg_id": new_client_id()})
        agent_socket.expect("ack")
    visitor.expect("message", where=lambda d: d.get("body") == "已加急")
    moved = agent.post(f"/api/v1/conversations/{cid}/transfer",
                       json={"agent_id": other.agent["id"]})
    assert moved.status_code == 200, moved.get_json()
    visitor.expect("conversation", where=lambda d: d.get("handler") is not None
                   and d["handler"].get("name") == ("老王" if other is wang else "小李"))
    other.post(f"/api/v1/conversations/{cid}/messages",
               json={"body": "我接手了", "client_msg_id": new_client_id()})
    visitor.expect("message", where=lambda d: d.get("body") == "我接手了")
    ended = other.post(f"/api/v1/conversations/{cid}/end")
    assert ended.status_code == 200
    visitor.expect("message", where=lambda d: (d.get("payload") or {}).get("event") == "ended")
    visitor.quiet("message", 0.5)
    seen += [("socket", frame) for frame in visitor.seen]

    for path in (f"/api/v1/widget/conversations/{cid}/messages",
                 f"/api/v1/widget/conversations/{cid}/messages?after_seq=0"):
        response = client.get(path, headers=headers)
        assert response.status_code == 200
        seen.append((path, response.get_json()))
    rated = client.post(f"/api/v1/widget/conversations/{cid}/rating",
                        json={"rating": "good"}, headers=headers)
    seen.append(("rating", rated.get_json()))
    again = client.post("/api/v1/widget/session", json={"team_id": api.team["id"],
                                                        "token": token})
    seen.append(("session again", again.get_json()))

    ticket = client.post("/api/v1/widget/tickets", headers=headers,
                         json={"content": "周末能发货吗？", "email": "guest@example.com"})
    assert ticket.status_code == 201, ticket.get_json()
    ticket_id = ticket.get_json()["id"]
    # A ticket left from the widget is the admins' to triage until assigned
    # (docs/security.md §1): the admin gives it to the agent who answers it.
    assigned = api.patch(f"/api/v1/tickets/{ticket_id}", json={"assignee_id": other.agent["id"]})
    assert assigned.status_code == 200, assigned.get_json()
    replied = other.post(f"/api/v1/tickets/{ticket_id}/comments",
                         json={"body": "可以的", "visibility": "public"})
    assert replied.status_code == 201, replied.get_json()
    for path in ("/api/v1/widget/tickets", f"/api/v1/widget/tickets/{ticket_id}",
                 "/api/v1/widget/ticket-form"):
        seen.append((path, client.get(path, headers=headers).get_json()))

    # The walk really reached the frames that used to leak.
    kinds = {frame["type"] for where, frame in seen if where == "socket"}
    assert {"hello", "ack", "message", "conversation", "typing"} <= kinds
    bodies = json.dumps([v for _w, v in seen], ensure_ascii=False)
    assert "已加急" in bodies and "可以的" in bodies and "小李" in bodies
    assert "内部：老客户" not in bodies
    leaks = [leak for where, value in seen for leak in _leaks(where, value)]
    assert leaks == []
    for s in (visitor, agent_socket):
        s.close()
