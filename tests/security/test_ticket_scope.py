"""Issue 15 §1: a ticket is no way around the conversation scope.

The attack: an agent limited to his own conversations (scope ``self``) opens
the ticket a visitor left from someone else's conversation, and reads its
transcript and the visitor's contacts; unassigned tickets were the whole team's.
Here he tries every ticket route, the ticket page, the list and its search,
the customer sidebar, and is refused (404, empty lists) each time, while the
agents whose scope covers the ticket still see it (so there was something to see).
The socket side is in tests/ws/test_ticket_events.py, the rule's cases in
tests/unit/test_permissions.py.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from meiqia.models import Conversation
from meiqia.models.base import utcnow
from tests.api.test_conversations import start
from tests.factories import make_conversation
from tests.factories import make_visitor
from tests.helpers import new_client_id

SECRET = "机密订单Z9"
PHONE = "13912345678"


def text(response: Any) -> str:
    return json.dumps(response.get_json(), ensure_ascii=False)


@pytest.fixture
def world(api):
    """The admin holds a chat; its visitor leaves a message from it (unassigned,
    no group). li (self) and qian (groups: 售后) hold none of it."""
    api.without_bot()
    group = api.post("/api/v1/groups", json={"name": "售后"}).get_json()
    api.patch(f"/api/v1/agents/{api.agent['id']}", json={"status": "online",
                                                         "max_concurrent": 5})
    api.workspace_open()  # routing serves agents with a workspace open
    li = api.new_agent(email="li@example.com", name="李客服", scope="self")
    qian = api.new_agent(email="qian@example.com", name="钱客服", scope="groups",
                         groups=[group["id"]])
    client, token, cid, _ = start(api.app, api.team["id"], name="访客甲")
    headers = {"X-Visitor-Token": token}
    assert Conversation.get_by_id(cid).handler_id == api.agent["id"]
    sent = client.post(f"/api/v1/widget/conversations/{cid}/messages", headers=headers,
                       json={"body": f"我的订单号是{SECRET}",
                             "client_msg_id": new_client_id()})
    assert sent.status_code == 201, sent.get_json()
    left = client.post("/api/v1/widget/tickets", headers=headers, json={
        "conversation_id": cid, "content": "请回电", "phone": PHONE})
    assert left.status_code == 201, left.get_json()
    return {"api": api, "li": li, "qian": qian, "group": group["id"], "cid": cid,
            "ticket": left.get_json()["id"],
            "visitor_id": Conversation.get_by_id(cid).visitor_id}


def test_an_agent_cannot_open_a_ticket_of_someone_elses_conversation(world):
    li, api, tid = world["li"], world["api"], world["ticket"]
    seen = api.get(f"/api/v1/tickets/{tid}")
    assert seen.status_code == 200 and SECRET in text(seen) and PHONE in text(seen)
    attempts = [
        li.get(f"/api/v1/tickets/{tid}"),
        li.patch(f"/api/v1/tickets/{tid}", json={"assignee_id": li.agent["id"]}),
        li.patch(f"/api/v1/tickets/{tid}", json={"status": "solved"}),
        li.post(f"/api/v1/tickets/{tid}/comments", json={"body": "越权", "visibility": "public"}),
        li.get(f"/tickets/{tid}"),  # the ticket page
    ]
    for response in attempts:
        assert response.status_code == 404, (response.request.path, response.status_code)
        assert SECRET not in response.get_data(as_text=True)
        assert PHONE not in response.get_data(as_text=True)
    assert api.get(f"/api/v1/tickets/{tid}").get_json()["status"] == "open"  # untouched


def test_lists_search_and_sidebar_show_no_ticket_outside_the_scope(world):
    li, api, tid = world["li"], world["api"], world["ticket"]
    for query in ("", "?assignee_id=none", f"?q={PHONE}", "?q=请回电", "?status=open",
                  "?source=after_end", "?source=all_busy", "?source=no_agent_online"):
        found = li.get(f"/api/v1/tickets{query}")
        assert found.status_code == 200, (query, found.get_json())
        assert found.get_json()["total"] == 0 and found.get_json()["items"] == [], query
        assert sum(found.get_json()["counts"].values()) == 0, query
        assert PHONE not in text(found)
    assert tid in [t["id"] for t in api.get(f"/api/v1/tickets?q={PHONE}").get_json()["items"]]
    hidden = li.get(f"/api/v1/visitors/{world['visitor_id']}/tickets")  # not his visitor
    assert hidden.status_code == 404 and PHONE not in text(hidden)
    assert [t["id"] for t in api.get(f"/api/v1/visitors/{world['visitor_id']}/tickets")
            .get_json()] == [tid]


def test_a_group_sees_its_pool_and_an_agent_his_own_conversations_tickets(world):
    li, qian, api, tid = world["li"], world["qian"], world["api"], world["ticket"]
    assert qian.get(f"/api/v1/tickets/{tid}").status_code == 404
    # put into 售后: qian's group pool now, still not li's
    assert api.patch(f"/api/v1/tickets/{tid}", json={"group_id": world["group"]}
                     ).status_code == 200
    assert qian.get(f"/api/v1/tickets/{tid}").status_code == 200
    assert li.get(f"/api/v1/tickets/{tid}").status_code == 404
    # assigned to li: his, with the transcript he needs to answer
    assert api.patch(f"/api/v1/tickets/{tid}", json={"assignee_id": li.agent["id"]}
                     ).status_code == 200
    mine = li.get(f"/api/v1/tickets/{tid}")
    assert mine.status_code == 200 and SECRET in text(mine)
    assert qian.get(f"/api/v1/tickets/{tid}").status_code == 404  # assigned: not the pool
    # a ticket from li's own conversation, unassigned: his
    team = api.team["id"]
    own = make_conversation(team, make_visitor(team, name="老客户"), handler=li.agent["id"],
                            messages=[("visitor", "我的快递丢了", 0)])
    made = api.post("/api/v1/tickets", json={"conversation_id": own.id})
    assert made.status_code == 201, made.get_json()
    ticket = li.get(f"/api/v1/tickets/{made.get_json()['id']}")
    assert ticket.status_code == 200 and "我的快递丢了" in text(ticket)
    assert qian.get(f"/api/v1/tickets/{made.get_json()['id']}").status_code == 404


def test_a_ticket_routed_with_its_conversation_to_a_group(world):
    """Unassigned, no group of its own: its conversation's group decides."""
    api, li, qian = world["api"], world["li"], world["qian"]
    team = api.team["id"]
    routed = make_conversation(team, make_visitor(team), group=world["group"],
                               status="queued", messages=[("visitor", "退货地址？", 0)])
    made = api.post("/api/v1/tickets", json={"conversation_id": routed.id}).get_json()
    assert qian.get(f"/api/v1/tickets/{made['id']}").status_code == 200
    assert li.get(f"/api/v1/tickets/{made['id']}").status_code == 404


def test_an_ended_chat_nobody_handled_is_no_shared_pool(api):
    """Found by a client written from the docs alone: the ticket a visitor left
    while nobody was online was refused to scoped agents, but the conversation it
    came from, ended and never handled, was still in their shared pool: its
    transcript and the customer card (phone, e-mail) through the conversation
    routes, the history list and the sidebar. Now such a conversation is for admins
    and ``all`` agents, like its ticket; one routed to a group stays its group's,
    and a conversation still waiting stays in the pool."""
    import datetime

    api.without_bot()
    group = api.post("/api/v1/groups", json={"name": "售后"}).get_json()
    li = api.new_agent(email="li@example.com", name="李客服", scope="self")
    qian = api.new_agent(email="qian@example.com", name="钱客服", scope="groups",
                         groups=[group["id"]])
    team = api.team["id"]
    ended_at = datetime.datetime(2026, 12, 5, 9, 0)
    stranger = make_visitor(team, "王五", phone=PHONE, email="wangwu@example.com")
    ended = make_conversation(team, stranger, ended_at=ended_at,
                              messages=[("visitor", f"我的订单号是{SECRET}", 0)])
    grouped = make_conversation(team, make_visitor(team, "孙七", phone="13700000000"),
                                ended_at=ended_at, group=group["id"],
                                messages=[("visitor", "售后的问题", 0)])
    waiting = make_conversation(team, make_visitor(team, "赵六"), status="queued",
                                messages=[("visitor", "在吗", 0)])
    # Still with the bot, with the customer's contact: the same (a message left
    # while nobody was online does not end the chat).
    talker = make_visitor(team, "周八", phone=PHONE, email="zhouba@example.com")
    with_bot = make_conversation(team, talker, messages=[("visitor", f"订单{SECRET}", 0)])
    assert Conversation.get_by_id(with_bot.id).status == "bot"
    refused = [f"/api/v1/conversations/{ended.id}",
               f"/api/v1/conversations/{ended.id}/messages",
               f"/api/v1/visitors/{stranger.id}/conversations",
               f"/api/v1/conversations/{with_bot.id}",
               f"/api/v1/conversations/{with_bot.id}/messages",
               f"/api/v1/visitors/{talker.id}/conversations"]
    for agent in (li, qian):
        for path in refused:
            response = agent.get(path)
            body = response.get_data(as_text=True)
            assert SECRET not in body and PHONE not in body, (path, body)
            assert response.status_code == 404 or response.get_json() == [], path
        history = agent.get("/api/v1/history").get_json()["items"]
        assert ended.id not in {row["id"] for row in history}
        assert agent.get(f"/api/v1/conversations/{waiting.id}").status_code == 200
    assert qian.get(f"/api/v1/conversations/{grouped.id}").status_code == 200
    assert li.get(f"/api/v1/conversations/{grouped.id}").status_code == 404
    seen = api.get(f"/api/v1/conversations/{ended.id}/messages")
    assert seen.status_code == 200 and SECRET in text(seen)
    assert PHONE in text(api.get(f"/api/v1/conversations/{ended.id}"))


def test_a_ticket_is_no_window_on_a_chat_that_left_the_scope(api):
    """Found by a docs-only attacker: an agent of scope ``self`` opened a ticket on a
    chat of the shared pool, assigned to himself; the chat went to a colleague
    outside his scope, and the ticket went on showing its new messages (the
    transcript is read live). Now a viewer who cannot see the conversation reads
    the transcript as it was when the ticket was made."""
    api.without_bot()
    li = api.new_agent(email="li@example.com", name="李客服", scope="self")
    zhao = api.new_agent(email="zhao@example.com", name="赵客服", scope="all")
    client, token, cid, _ = start(api.app, api.team["id"], name="访客乙")
    headers = {"X-Visitor-Token": token}

    def visitor_says(body: str) -> None:
        sent = client.post(f"/api/v1/widget/conversations/{cid}/messages", headers=headers,
                           json={"body": body, "client_msg_id": new_client_id()})
        assert sent.status_code == 201, sent.get_json()

    visitor_says("我想退货")
    # Waiting in the queue (every agent busy): the shared pool.
    Conversation.update(status="queued", queued_at=utcnow()).where(
        Conversation.id == cid).execute()
    assert Conversation.get_by_id(cid).handler_id is None
    made = li.post("/api/v1/tickets", json={"subject": "退货", "content": "回访",
                                             "conversation_id": cid,
                                             "assignee_id": li.agent["id"]})
    assert made.status_code == 201, made.get_json()
    tid = made.get_json()["id"]
    # A transfer goes to someone who is there; invisible: routing gives him nothing.
    assert zhao.patch(f"/api/v1/agents/{zhao.agent['id']}",
                      json={"status": "invisible"}).status_code == 200
    zhao.workspace_open()
    moved = api.post(f"/api/v1/conversations/{cid}/transfer", json={"agent_id": zhao.agent["id"]})
    assert moved.status_code == 200, moved.get_json()
    assert li.get(f"/api/v1/conversations/{cid}").status_code == 404
    visitor_says(f"我的身份证是{SECRET}")
    zhao.post(f"/api/v1/conversations/{cid}/messages", json={
        "body": "机密回复", "client_msg_id": new_client_id()})
    mine = li.get(f"/api/v1/tickets/{tid}")
    assert mine.status_code == 200
    bodies = [line["body"] for line in mine.get_json()["transcript"]]
    assert "我想退货" in bodies
    assert SECRET not in text(mine) and "机密回复" not in text(mine)
    full = api.get(f"/api/v1/tickets/{tid}").get_json()["transcript"]
    assert {f"我的身份证是{SECRET}", "机密回复"} <= {line["body"] for line in full}


def test_no_agent_can_take_a_colleagues_name_and_with_it_his_mentions(api):
    """Found by a docs-only attacker: an agent of scope ``self`` renamed himself to
    a colleague's name, got the colleague's @mentions, and through them his
    conversations. Names and nicknames are now unique in a team (case ignored),
    and a name two older accounts share mentions neither."""
    from meiqia.services.messages import mentioned_agents

    li = api.new_agent(email="li@example.com", name="李客服", scope="self")
    api.new_agent(email="ding@example.com", name="Ding", nickname="小丁", scope="self")
    for field, value in (("nickname", "ding"), ("name", "小丁"), ("nickname", api.agent["name"])):
        refused = li.patch(f"/api/v1/agents/{li.agent['id']}", json={field: value})
        assert refused.status_code == 409, (field, value, refused.get_json())
        assert refused.get_json()["error"]["field"] == field
    assert li.patch(f"/api/v1/agents/{li.agent['id']}",
                    json={"name": "李客服", "nickname": "小李"}).status_code == 200
    created = api.post("/api/v1/agents", json={
        "email": "copy@example.com", "name": "DING", "password": "copy-pass-123"})
    assert created.status_code == 409 and created.get_json()["error"]["field"] == "name"
    # Two older accounts with one name: a mention of it goes to neither.
    assert mentioned_agents("@王伟 看一下", [(1, "王伟", ""), (2, "王伟", "")]) == []
    assert mentioned_agents("@王伟 看一下 @小丁", [(1, "王伟", ""), (2, "王伟", ""),
                                            (3, "Ding", "小丁")]) == [3]


def test_no_agent_can_take_a_colleagues_mentions_with_a_name_that_runs_on_from_his(api):
    """Found from outside: an agent nicknamed himself "<colleague's name> please" (or
    the colleague's name and a zero-width space); "@x2 please check" then went to
    him, the longer match, and with it a chat outside his scope. A name that is a
    colleague's run on by a space, a sign or a Chinese character is refused, and so
    is one with invisible characters; a numbered colleague (李客服2) is not."""
    from meiqia.services.messages import mentioned_agents

    api.new_agent(email="x2@example.com", name="x2", scope="self")
    api.new_agent(email="li@example.com", name="李客服", scope="self")
    x1 = api.new_agent(email="x1@example.com", name="x1", scope="self")
    for field, value, status in (("nickname", "x2 please", 409), ("nickname", "X2-check", 409),
                                 ("name", "李客服看一下", 409), ("nickname", "李客服（主管）", 409),
                                 ("nickname", "x2\u200b", 422), ("name", "\u200b李客服", 422)):
        refused = x1.patch(f"/api/v1/agents/{x1.agent['id']}", json={field: value})
        assert refused.status_code == status, (field, value, refused.get_json())
        assert refused.get_json()["error"]["field"] == field
    zh = x1.patch(f"/api/v1/agents/{x1.agent['id']}", json={"nickname": "李客服看一下"},
                  headers={"Accept-Language": "zh-CN"}).get_json()["error"]["message"]
    assert "@提及时无法区分" in zh, zh
    # A numbered colleague and a name that only shares letters are fine.
    for value in ("李客服2", "x22", "x2a"):
        assert x1.patch(f"/api/v1/agents/{x1.agent['id']}", json={"nickname": value}
                        ).status_code == 200, value
    team = [(1, "x2", ""), (2, "李客服", ""), (3, "x1", "x22")]
    assert mentioned_agents("@x2 please check", team) == [1]
    assert mentioned_agents("好的@李客服看一下这个单", team) == [2]


def test_a_message_left_from_a_chat_with_the_bot_shows_no_scoped_agent_its_contact(api):
    """Found by a docs-only attacker (4 of 4): a visitor still with the bot asked for
    a person while nobody was online and left a message with his name, phone and
    e-mail. The ticket was refused to agents of scope ``self`` and ``groups``, but
    the conversation, which a message left from a chat with the bot does not end,
    was still in their shared pool: the customer card with the contact and the
    whole transcript through the conversation routes, and a transfer to himself
    that made him its handler. A chat nobody handles in no group is in the pool
    only while it waits in the queue."""
    li = api.new_agent(email="li@example.com", name="李客服", scope="self")
    group = api.post("/api/v1/groups", json={"name": "售后"}).get_json()
    qian = api.new_agent(email="qian@example.com", name="钱客服", scope="groups",
                         groups=[group["id"]])
    client, token, cid, _ = start(api.app, api.team["id"], name="访客甲")
    headers = {"X-Visitor-Token": token}
    said = client.post(f"/api/v1/widget/conversations/{cid}/messages", headers=headers,
                       json={"body": f"我的订单号{SECRET}，收货地址北京市朝阳区",
                             "client_msg_id": new_client_id()})
    assert said.status_code == 201, said.get_json()
    human = client.post(f"/api/v1/widget/conversations/{cid}/human", headers=headers)
    assert human.get_json()["availability"] == "nobody_online", human.get_json()
    left = client.post("/api/v1/widget/tickets", headers=headers, json={
        "conversation_id": cid, "content": "请回电", "name": "王秘密",
        "phone": PHONE, "email": "secret@example.com"})
    assert left.status_code == 201, left.get_json()
    assert Conversation.get_by_id(cid).status == "bot"  # the chat goes on with the bot
    for agent in (li, qian):
        assert agent.get(f"/api/v1/tickets/{left.get_json()['id']}").status_code == 404
        for path in (f"/api/v1/conversations/{cid}", f"/api/v1/conversations/{cid}/messages"):
            response = agent.get(path)
            assert response.status_code == 404, (path, response.get_json())
            assert PHONE not in text(response) and SECRET not in text(response)
        taken = agent.post(f"/api/v1/conversations/{cid}/transfer",
                           json={"agent_id": agent.agent["id"]})
        assert taken.status_code == 404, taken.get_json()
    assert PHONE in text(api.get(f"/api/v1/conversations/{cid}"))
