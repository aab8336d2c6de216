"""A whole conversation through the REST API: widget and agent sides."""

from __future__ import annotations

import pytest

from meiqia.models import Agent
from meiqia.models import Conversation
from meiqia.models import Message
from meiqia.models import Team
from tests.helpers import new_client_id


def start(app, team_id, **extra):
    client = app.test_client()
    response = client.post(
        "/api/v1/widget/session",
        json={"team_id": team_id, "landing_page": "https://shop.example.com/p/1",
              "referrer": "https://www.baidu.com/s?wd=%E9%80%80%E6%AC%BE", **extra},
        headers={"User-Agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) "
                 "AppleWebKit/605.1.15 Mobile/15E148 MicroMessenger/8.0.45"},
    )
    assert response.status_code == 200, response.get_json()
    data = response.get_json()
    return client, data["token"], data["conversation"]["conversation_id"], data


def vpost(client, token, url, **kw):
    return client.post(url, headers={"X-Visitor-Token": token}, **kw)


@pytest.fixture
def team(db_api):
    return db_api.without_bot()


def test_visitor_and_agent_hold_a_conversation(team):
    app = team.app
    li = team.new_agent(max_concurrent=2)
    li.go_online()
    client, token, cid, data = start(app, team.team["id"], name="张三",
                                     custom={"订单号": "A1001"})
    assert data["conversation"]["status"] == "open"  # bot off: straight to routing
    assert Conversation.get_by_id(cid).handler_id == li.agent["id"]

    sent = vpost(client, token, f"/api/v1/widget/conversations/{cid}/messages",
                 json={"body": "你好，我的订单还没发货", "client_msg_id": "c1"})
    assert sent.status_code == 201
    again = vpost(client, token, f"/api/v1/widget/conversations/{cid}/messages",
                  json={"body": "你好，我的订单还没发货", "client_msg_id": "c1"})
    assert again.get_json()["duplicate"] is True
    assert Message.select().where(Message.sender_kind == "visitor").count() == 1

    lists = li.get("/api/v1/conversations").get_json()
    assert [c["id"] for c in lists["mine"]] == [cid] and lists["mine"][0]["unread"] == 1
    li.post(f"/api/v1/conversations/{cid}/messages", json={"client_msg_id": new_client_id(), "body": "马上为您查询", "mode": "reply"})
    li.post(f"/api/v1/conversations/{cid}/messages",
            json={"client_msg_id": new_client_id(), "body": "内部：仓库缺货 @王管理", "mode": "internal"})
    team.post(f"/api/v1/conversations/{cid}/messages",
              json={"client_msg_id": new_client_id(), "body": "已为您加急", "mode": "anonymous"})

    seen = client.get(f"/api/v1/widget/conversations/{cid}/messages",
                      headers={"X-Visitor-Token": token}).get_json()["messages"]
    bodies = [m["body"] for m in seen if m["kind"] == "text"]
    assert bodies == ["你好，我的订单还没发货", "马上为您查询", "已为您加急"]
    anonymous = seen[-1]
    assert anonymous["sender_name"] == "李客服"  # shown as the handler
    assert "agent_id" not in anonymous and "visibility" not in anonymous

    agent_view = li.get(f"/api/v1/conversations/{cid}/messages").get_json()["messages"]
    note = next(m for m in agent_view if m["visibility"] == "internal")
    assert note["body"].startswith("内部")
    anon = next(m for m in agent_view if m["body"] == "已为您加急")
    assert anon["anonymous"] and anon["agent_id"] == team.agent["id"]
    assert team.get("/api/v1/conversations").get_json()["at_me"][0]["id"] == cid

    card = li.get(f"/api/v1/conversations/{cid}").get_json()["customer"]
    assert card["name"] == "张三" and card["attributes"] == {"订单号": "A1001"}
    assert card["visit"]["search_keyword"] == "退款" and card["visit"]["platform"] == "mobile_web"

    assert li.post(f"/api/v1/conversations/{cid}/end").get_json()["status"] == "ended"
    ended = Conversation.get_by_id(cid)
    assert ended.ended_by_id == li.agent["id"]
    assert ended.visitor_message_count == 1 and ended.agent_message_count == 2
    assert ended.first_response_s is not None and not ended.is_missed
    rated = vpost(client, token, f"/api/v1/widget/conversations/{cid}/rating",
                  json={"rating": "good", "comment": "很快"})
    assert rated.get_json()["rating"] == "good"
    again = vpost(client, token, f"/api/v1/widget/conversations/{cid}/messages",
                  json={"client_msg_id": new_client_id(), "body": "还在吗"})
    assert again.status_code == 409


def test_a_read_past_the_last_message_stops_at_the_last_message(team):
    """``up_to`` beyond the conversation's last message is clamped to it: messages
    that come later are unread, for the agent and for the visitor alike."""
    li = team.new_agent(max_concurrent=2)
    li.go_online()
    client, token, cid, _ = start(team.app, team.team["id"])
    first = vpost(client, token, f"/api/v1/widget/conversations/{cid}/messages",
                  json={"client_msg_id": new_client_id(), "body": "第一条"}).get_json()
    last = Conversation.get_by_id(cid).last_message_id
    assert last == first["message"]["id"]
    read = li.post(f"/api/v1/conversations/{cid}/read", json={"up_to": last + 1000})
    assert read.status_code == 200 and read.get_json() == {"marked": 1}
    assert Conversation.get_by_id(cid).agent_read_id == last
    later = vpost(client, token, f"/api/v1/widget/conversations/{cid}/messages",
                  json={"client_msg_id": new_client_id(), "body": "第二条"}).get_json()
    assert later["message"]["id"] <= last + 1000  # the old up_to would have covered it
    assert li.get("/api/v1/conversations").get_json()["mine"][0]["unread"] == 1
    reply = li.post(f"/api/v1/conversations/{cid}/messages",
                    json={"client_msg_id": new_client_id(), "body": "好的"}).get_json()
    vpost(client, token, f"/api/v1/widget/conversations/{cid}/read", json={"up_to": 2**31 - 1})
    assert Conversation.get_by_id(cid).visitor_read_id == reply["message"]["id"]
    # A read never moves back.
    li.post(f"/api/v1/conversations/{cid}/read", json={"up_to": 0})
    assert Conversation.get_by_id(cid).agent_read_id == last


def test_bot_answers_then_visitor_asks_for_a_human(db_api):
    app = db_api.app
    import io
    from pathlib import Path

    kb = Path(__file__).resolve().parents[2] / "knowledge_base" / "shop.zh-CN.yaml"
    db_api.post("/api/v1/knowledge/import", data={"file": (io.BytesIO(kb.read_bytes()),
                "kb.yaml")}, content_type="multipart/form-data")
    li = db_api.new_agent(max_concurrent=1)
    li.go_online()
    client, token, cid, data = start(app, db_api.team["id"])
    assert data["conversation"]["status"] == "bot"
    vpost(client, token, f"/api/v1/widget/conversations/{cid}/messages",
          json={"client_msg_id": new_client_id(), "body": "退貨運費誰出？"})
    msgs = client.get(f"/api/v1/widget/conversations/{cid}/messages",
                      headers={"X-Visitor-Token": token}).get_json()["messages"]
    assert msgs[-1]["sender_kind"] == "bot" and "运费" in msgs[-1]["body"]
    vpost(client, token, f"/api/v1/widget/conversations/{cid}/messages", json={"client_msg_id": new_client_id(), "body": "转人工"})
    conversation = Conversation.get_by_id(cid)
    assert conversation.status == "open" and conversation.handler_id == li.agent["id"]

    # The agent gets suggestions for the next visitor question.
    vpost(client, token, f"/api/v1/widget/conversations/{cid}/messages",
          json={"client_msg_id": new_client_id(), "body": "能开专票吗"})
    from meiqia.models import SuggestionLog

    shown = SuggestionLog.select().where(SuggestionLog.conversation == cid)
    assert shown.count() >= 1 and shown[0].entry_key == "invoice-vat"
    visitor_msg = Message.select().where(Message.conversation == cid).order_by(
        Message.id.desc()).where(Message.sender_kind == "visitor").first()
    # A workspace opened after the frame (a reload) asks for them again: the same words.
    again = li.get(f"/api/v1/conversations/{cid}/suggestions").get_json()
    assert again["message_id"] == visitor_msg.id and again["handler_id"] == li.agent["id"]
    assert [s["entry_id"] for s in again["suggestions"]] == [r.entry_key for r in shown]
    assert "专票" in again["suggestions"][0]["question"] + again["suggestions"][0]["answer"]
    outsider = db_api.new_agent(name="外组客服", email="outsider@example.com", scope="self")
    assert outsider.get(f"/api/v1/conversations/{cid}/suggestions").status_code == 404
    li.post(f"/api/v1/conversations/{cid}/messages", json={"client_msg_id": new_client_id(),
        "body": shown[0].entry_key, "suggestion": {"message_id": visitor_msg.id,
                                                   "entry_id": "invoice-vat"}})
    assert SuggestionLog.get(SuggestionLog.entry_key == "invoice-vat").outcome == "accepted"
    # Answered: nothing left to suggest for it.
    assert li.get(f"/api/v1/conversations/{cid}/suggestions").get_json()["suggestions"] == []


def test_a_resend_after_the_chat_ended_is_a_duplicate_not_a_refusal(team):
    """His message was stored but its ack lost; the agent ended the chat before he
    sent it again: the resend is acknowledged as the duplicate it is (docs/protocol.md,
    guarantee 2), not refused as new; a new message is still refused."""
    li = team.new_agent(max_concurrent=1)
    li.go_online()
    client, token, cid, _ = start(team.app, team.team["id"])
    path = f"/api/v1/widget/conversations/{cid}/messages"
    first = vpost(client, token, path, json={"client_msg_id": "lost-ack-1", "body": "发票抬头写错了"})
    assert first.status_code == 201 and first.get_json()["duplicate"] is False
    assert li.post(f"/api/v1/conversations/{cid}/end").status_code == 200
    again = vpost(client, token, path, json={"client_msg_id": "lost-ack-1", "body": "发票抬头写错了"})
    assert again.status_code == 201, again.get_json()
    assert again.get_json()["duplicate"] is True
    assert again.get_json()["message"]["id"] == first.get_json()["message"]["id"]
    new = vpost(client, token, path, json={"client_msg_id": "after-end-2", "body": "还在吗"})
    assert new.status_code == 409
    assert Message.select().where(Message.conversation == cid,
                                  Message.sender_kind == "visitor").count() == 1


def test_nobody_online_offers_leave_a_message(team):
    client, token, cid, data = start(team.app, team.team["id"])
    assert data["conversation"]["availability"] == "nobody_online"
    human = vpost(client, token, f"/api/v1/widget/conversations/{cid}/human").get_json()
    assert human["outcome"] == "nobody"
    last = Message.select().where(Message.conversation == cid).order_by(Message.id.desc()).first()
    assert last.payload["event"] == "leave_message"


def test_queue_positions_and_assignment_when_a_place_frees(team):
    app = team.app
    li = team.new_agent(max_concurrent=1)
    li.go_online()
    first = start(app, team.team["id"])
    second = start(app, team.team["id"])
    third = start(app, team.team["id"])
    assert first[3]["conversation"]["status"] == "open"
    assert second[3]["conversation"]["queue_position"] == 1
    assert third[3]["conversation"]["queue_position"] == 2
    li.post(f"/api/v1/conversations/{first[2]}/end")
    assert Conversation.get_by_id(second[2]).handler_id == li.agent["id"]
    state = third[0].get(f"/api/v1/widget/conversations/{third[2]}/messages",
                         headers={"X-Visitor-Token": third[1]}).get_json()["conversation"]
    assert state["queue_position"] == 1
    # Raising the limit assigns the queue head at once.
    team.patch(f"/api/v1/agents/{li.agent['id']}", json={"max_concurrent": 2})
    assert Conversation.get_by_id(third[2]).status == "open"


def test_transfer_respects_limits_and_team(team):
    app = team.app
    li = team.new_agent(max_concurrent=1, email="li@example.com", name="李客服")
    wang = team.new_agent(max_concurrent=1, email="wang@example.com", name="王客服")
    for a in (li, wang):
        a.go_online()
    a = start(app, team.team["id"])
    b = start(app, team.team["id"])
    handler_a = Conversation.get_by_id(a[2]).handler_id
    other = wang if handler_a == li.agent["id"] else li
    mine = li if other is wang else wang
    full = mine.post(f"/api/v1/conversations/{a[2]}/transfer", json={"agent_id": other.agent["id"]})
    assert full.status_code == 409 and "limit" in full.get_json()["error"]["message"]
    assert Conversation.get_by_id(a[2]).handler_id == handler_a
    # The receiver himself (who sees the team's conversations) may accept over his limit.
    team.patch(f"/api/v1/agents/{other.agent['id']}", json={"scope": "all"})
    taken = other.post(f"/api/v1/conversations/{a[2]}/transfer",
                       json={"agent_id": other.agent["id"], "accept_over_limit": True})
    assert taken.status_code == 200
    assert Conversation.get_by_id(a[2]).handler_id == other.agent["id"]
    outsider_team = Team.create(name="别的团队")
    outsider = Agent.create(team=outsider_team, email="x@y.cn", name="外人", password_hash="x")
    bad = other.post(f"/api/v1/conversations/{a[2]}/transfer", json={"agent_id": outsider.id})
    assert bad.status_code == 422 and bad.get_json()["error"]["field"] == "agent_id"
    assert b  # second conversation exists


def test_visitor_cannot_touch_another_conversation(team):
    app = team.app
    c1, t1, cid1, _ = start(app, team.team["id"])
    c2, t2, cid2, _ = start(app, team.team["id"])
    response = vpost(c2, t2, f"/api/v1/widget/conversations/{cid1}/messages", json={"client_msg_id": new_client_id(), "body": "x"})
    assert response.status_code == 404
    assert c2.get(f"/api/v1/widget/conversations/{cid1}/messages",
                  headers={"X-Visitor-Token": t2}).status_code == 404
    assert c2.get(f"/api/v1/widget/conversations/{cid1}/messages",
                  headers={"X-Visitor-Token": "forged"}).status_code == 401
    bad = vpost(c1, t1, f"/api/v1/widget/conversations/{cid1}/messages",
                json={"client_msg_id": new_client_id(), "body": "x" * 5001})
    assert bad.status_code == 422
    assert Message.select().where(Message.sender_kind == "visitor").count() == 0


def test_two_tabs_share_one_conversation(team):
    client, token, cid, _ = start(team.app, team.team["id"])
    again = client.post("/api/v1/widget/session", json={"team_id": team.team["id"],
                                                        "token": token}).get_json()
    assert again["conversation"]["conversation_id"] == cid


def test_bot_off_and_nobody_to_take_it_offers_leave_a_message_at_once(team):
    """No "human" button to press first: the session itself brings the offer."""
    client, token, cid, data = start(team.app, team.team["id"])
    offers = [m for m in data["messages"] if m["kind"] == "event"
              and m["payload"]["event"] == "leave_message"]
    assert [m["payload"]["reason"] for m in offers] == ["nobody_online"]
    assert data["conversation"]["availability"] == "nobody_online"
    assert Conversation.get_by_id(cid).handler_id is None
    # A second tab resumes the conversation and is not offered it twice.
    again = client.post("/api/v1/widget/session", json={"team_id": team.team["id"],
                                                        "token": token}).get_json()
    assert [m["payload"].get("event") for m in again["messages"]].count("leave_message") == 1

    # Someone online but busy, and the team does not queue: offered as well.
    li = team.new_agent(max_concurrent=1)
    li.go_online()
    team.patch("/api/v1/team", json={"settings": {"queue_enabled": False}})
    taken = start(team.app, team.team["id"])[3]
    assert taken["conversation"]["status"] == "open"
    assert not [m for m in taken["messages"] if m["payload"].get("event") == "leave_message"]
    busy = start(team.app, team.team["id"])[3]
    assert [m["payload"]["reason"] for m in busy["messages"]
            if m["payload"].get("event") == "leave_message"] == ["all_busy"]


def test_a_visitor_rates_once(team):
    li = team.new_agent(max_concurrent=1)
    li.go_online()
    client, token, cid, _ = start(team.app, team.team["id"])
    url = f"/api/v1/widget/conversations/{cid}/rating"
    li.post(f"/api/v1/conversations/{cid}/rating-invite")
    assert vpost(client, token, url, json={"rating": "bad", "comment": "太慢"}).status_code == 200
    again = vpost(client, token, url, json={"rating": "good"})
    assert again.status_code == 409 and "already" in again.get_json()["error"]["message"]
    li.post(f"/api/v1/conversations/{cid}/end")
    after_end = vpost(client, token, url, json={"rating": "good", "comment": "改好评"})
    assert after_end.status_code == 409
    conversation = Conversation.get_by_id(cid)
    assert (conversation.rating, conversation.rating_comment) == ("bad", "太慢")
