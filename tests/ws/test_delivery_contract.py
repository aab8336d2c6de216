"""The delivery contract of docs/protocol.md, one rule at a time (issue 13, items 1, 3, 4).

- the sending socket gets its own message as the ``ack`` only, many times over,
  while the sender's second tab gets it as a ``message``;
- a message without ``client_msg_id`` is refused on both sockets and both HTTP
  routes, in the client's language, and nothing is stored;
- the agent socket resumes by ``after_seq`` pairs; a malformed list is refused.
"""

from __future__ import annotations

from meiqia.models import Message
from tests.api.test_conversations import start
from tests.ws.conftest import Socket
from tests.ws.conftest import cookie_of


def _setup(api, live):
    api.without_bot()
    li = api.online_agent(limit=3)
    client, token, cid, _ = start(api.app, api.team["id"])
    return li, client, token, cid


def test_the_sender_gets_the_ack_only_and_his_second_tab_the_message(api, live):
    li, _client, token, cid = _setup(api, live)
    tab = Socket(live.url(f"/ws/visitor?token={token}&after_seq=0"))
    other_tab = Socket(live.url(f"/ws/visitor?token={token}&after_seq=0"))
    agent = Socket(live.url("/ws/agent"), cookie_of(li))
    agent2 = Socket(live.url("/ws/agent"), cookie_of(li))
    for s in (tab, other_tab, agent, agent2):
        s.expect("hello")
    for n in range(10):
        tab.send("message", {"body": f"第{n}条", "client_msg_id": f"v-{n}"})
        agent.send("message", {"conversation_id": cid, "body": f"回复{n}",
                               "client_msg_id": f"a-{n}"})
    for n in range(10):
        tab.expect("ack", where=lambda d, n=n: d["client_msg_id"] == f"v-{n}")
        agent.expect("ack", where=lambda d, n=n: d["client_msg_id"] == f"a-{n}")
        other_tab.expect("message", where=lambda d, n=n: d.get("client_msg_id") == f"v-{n}")
        agent2.expect("message", where=lambda d, n=n: d.get("client_msg_id") == f"a-{n}")
    tab.quiet("message", 0.5)
    agent.quiet("message", 0.3)
    assert not [f for f in tab.seen if f["type"] == "message"
                and f["data"]["sender_kind"] == "visitor"]
    assert not [f for f in agent.seen if f["type"] == "message"
                and f["data"].get("client_msg_id", "").startswith("a-")]
    # Every socket saw the conversation's positions in increasing order, none twice.
    for s in (tab, other_tab, agent, agent2):
        seqs = [(f["data"].get("message") or f["data"])["seq"] for f in s.seen
                if f["type"] in {"message", "ack"}]
        assert seqs == sorted(set(seqs)), seqs


def test_a_message_without_client_msg_id_is_refused_everywhere(api, live):
    li, client, token, cid = _setup(api, live)
    visitor = Socket(live.url(f"/ws/visitor?token={token}&lang=zh-CN"))
    visitor.expect("hello")
    visitor.send("message", {"body": "没有编号"})
    error = visitor.expect("error")["data"]
    assert error["code"] == "invalid" and error["message"] == "client_msg_id：必填"
    assert error["message_en"] == "client_msg_id: is required"
    agent = Socket(live.url("/ws/agent?lang=en"), cookie_of(li))
    agent.expect("hello")
    agent.send("message", {"conversation_id": cid, "body": "no id"})
    assert agent.expect("error")["data"]["message"] == "client_msg_id: is required"
    refused = client.post(f"/api/v1/widget/conversations/{cid}/messages",
                          json={"body": "没有编号"},
                          headers={"X-Visitor-Token": token, "Accept-Language": "zh-CN"})
    assert refused.status_code == 422, refused.get_json()
    assert refused.get_json()["error"]["message"] == "client_msg_id：必填"
    refused = li.post(f"/api/v1/conversations/{cid}/messages", json={"body": "no id"})
    assert refused.status_code == 422
    assert refused.get_json()["error"]["field"] == "client_msg_id"
    assert Message.select().where(Message.body.in_(["没有编号", "no id"])).count() == 0
    # With one, a resend is stored once.
    for _ in range(2):
        ok = li.post(f"/api/v1/conversations/{cid}/messages",
                     json={"body": "有编号", "client_msg_id": "same-1"})
        assert ok.status_code == 201
    assert Message.select().where(Message.body == "有编号").count() == 1


def test_the_agent_socket_resumes_each_named_conversation_after_its_position(api, live):
    li, _client, token, cid = _setup(api, live)
    visitor = Socket(live.url(f"/ws/visitor?token={token}"))
    visitor.expect("hello")
    seqs = []
    for n in range(4):
        visitor.send("message", {"body": f"问{n}", "client_msg_id": f"q-{n}"})
        seqs.append(visitor.expect("ack")["data"]["message"]["seq"])
    back = Socket(live.url(f"/ws/agent?after_seq={cid}:{seqs[1]}"), cookie_of(li))
    back.expect("hello")
    got = [back.expect("message")["data"]["seq"] for _ in range(2)]
    assert got == seqs[2:]
    assert back.quiet("message", 0.5)
    bad = Socket(live.url("/ws/agent?after_seq=1:x"), cookie_of(li))
    assert bad.expect("error")["data"]["code"] == "invalid"
