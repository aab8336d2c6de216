"""Ticket events reach only the agent sockets whose scope covers the ticket.

They carry old and new values and public reply bodies, so they follow the
ticket rule (``permissions.ticket_visible``, the rule of ``ticket_filter``): the
assignee is in the agent's scope; unassigned, its group, else its conversation's
handler or group is; nothing of that: admins only.
"""

from __future__ import annotations

from tests.ws.conftest import Socket
from tests.ws.conftest import cookie_of


def agent_socket(live, api):
    socket = Socket(live.url("/ws/agent"), cookie_of(api))
    socket.expect("hello")
    return socket


def test_ticket_events_follow_the_ticket_scope(api, live):
    group = api.post("/api/v1/groups", json={"name": "售后组"}).get_json()
    li = api.new_agent(email="li@example.com", name="李客服", scope="self")
    zhao = api.new_agent(email="zhao@example.com", name="赵客服", scope="self")
    qian = api.new_agent(email="qian@example.com", name="钱客服", scope="groups",
                         groups=[group["id"]])
    sockets = {name: agent_socket(live, who) for name, who in
               (("admin", api), ("li", li), ("zhao", zhao), ("qian", qian))}

    marks = {}

    def mark():
        """Frames from here on belong to the next action."""
        marks.update({name: len(s.seen) for name, s in sockets.items()})

    def expect(kind, ticket_id, names):
        """Everyone in scope gets the event; nobody else does (checked after the
        in-scope sockets had theirs: one hub delivers to all of them)."""
        def match(d):
            return d["ticket_id"] == ticket_id
        for name in names:
            sockets[name].expect(kind, where=match)
        for name in set(sockets) - set(names):
            assert sockets[name].quiet(kind, 0.5, where=match), name
        heard = {name for name, s in sockets.items()
                 if any(f["type"] == kind and match(f["data"]) for f in s.seen[marks[name]:])}
        assert heard == set(names)
        mark()

    mark()
    # Assigned to li: li and the admin hear it, zhao (self) and qian (groups) do not.
    mine = api.post("/api/v1/tickets", json={
        "content": "客户要求退款，订单 A1001", "assignee_id": li.agent["id"]}).get_json()
    expect("ticket.created", mine["id"], {"admin", "li"})
    reply = li.post(f"/api/v1/tickets/{mine['id']}/comments",
                    json={"body": "已退款，请查收", "visibility": "public"})
    assert reply.status_code == 201, reply.get_json()
    expect("ticket.updated", mine["id"], {"admin", "li"})
    assert not any("已退款" in str(f) for f in sockets["zhao"].seen + sockets["qian"].seen)
    got = sockets["li"].saw("ticket.updated", lambda d: d["ticket_id"] == mine["id"])["data"]
    assert got["assignee_id"] == li.agent["id"] and got["changes"]["reply"][1] == "已退款，请查收"

    # Unassigned in the group: the pool of that group (qian), not of zhao or li.
    pooled = api.post("/api/v1/tickets", json={
        "content": "发票抬头写错了", "group_id": group["id"]}).get_json()
    expect("ticket.created", pooled["id"], {"admin", "qian"})
    # Unassigned, no group, no conversation: no shared pool (a ticket carries the
    # customer's contact); admins (and agents of scope all) triage it.
    shared = api.post("/api/v1/tickets", json={"content": "物流一直没更新"}).get_json()
    expect("ticket.created", shared["id"], {"admin"})
    # Assigned to li afterwards: from then on li hears it.
    taken = api.patch(f"/api/v1/tickets/{shared['id']}", json={"assignee_id": li.agent["id"]})
    assert taken.status_code == 200, taken.get_json()
    expect("ticket.updated", shared["id"], {"admin", "li"})

    # Moved to zhao: li hears that it left him, and from then on it is zhao's alone.
    moved = api.patch(f"/api/v1/tickets/{mine['id']}", json={"assignee_id": zhao.agent["id"]})
    assert moved.status_code == 200, moved.get_json()
    expect("ticket.updated", mine["id"], {"admin", "zhao", "li"})
    told = sockets["li"].saw("ticket.updated", lambda d: d["ticket_id"] == mine["id"]
                             and "assignee" in d["changes"])["data"]
    assert told["previous_assignee_id"] == li.agent["id"]
    assert told["assignee_id"] == zhao.agent["id"]
    assert told["changes"] == {"assignee": [str(li.agent["id"]), str(zhao.agent["id"])]}
    later = zhao.post(f"/api/v1/tickets/{mine['id']}/comments",
                      json={"body": "已转交财务处理", "visibility": "public"})
    assert later.status_code == 201, later.get_json()
    expect("ticket.updated", mine["id"], {"admin", "zhao"})
    assert not any("已转交财务" in str(f) for f in sockets["li"].seen)


def test_a_ticket_event_follows_its_conversation_when_unassigned(api, live):
    """Issue 15 §1: the ticket of li's conversation reaches li; that of the admin's
    conversation does not (it once reached every agent, with the customer's words)."""
    from tests.factories import make_conversation
    from tests.factories import make_visitor

    li = api.new_agent(email="li@example.com", name="李客服", scope="self")
    sockets = {"admin": agent_socket(live, api), "li": agent_socket(live, li)}
    team = api.team["id"]
    for handler, words, heard in ((li.agent["id"], "李的客户要退款", {"admin", "li"}),
                                  (api.agent["id"], "管理员的客户要发票", {"admin"})):
        conversation = make_conversation(team, make_visitor(team), handler=handler,
                                         messages=[("visitor", words, 0)])
        made = api.post("/api/v1/tickets", json={"conversation_id": conversation.id})
        assert made.status_code == 201, made.get_json()
        tid = made.get_json()["id"]

        def match(d, tid=tid):
            return d["ticket_id"] == tid
        for name in heard:
            got = sockets[name].expect("ticket.created", where=match)["data"]
            assert got["conversation_handler_id"] == handler
        for name in set(sockets) - heard:
            assert sockets[name].quiet("ticket.created", 0.5, where=match), name
