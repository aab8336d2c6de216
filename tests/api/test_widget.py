"""The visitor's REST API (the web widget): sessions, visits, asking for a human,
leaving the queue, rating, and bad input that changes nothing."""

from __future__ import annotations

import sys

import pytest

from meiqia.models import Conversation
from meiqia.models import Message
from meiqia.models import Visit
from meiqia.models import Visitor
from meiqia.services import conversations
from tests.api.test_conversations import start
from tests.api.test_conversations import vpost
from tests.helpers import new_client_id

SESSION = "/api/v1/widget/session"


def vget(client, token, url):
    return client.get(url, headers={"X-Visitor-Token": token})


@pytest.fixture
def team(api):
    return api.without_bot()


def online_agent(api, limit=2, **fields):
    return api.online_agent(limit, **fields)


def test_session_records_the_visit_and_custom_info(team):
    client, token, cid, data = start(team.app, team.team["id"], name="  陈女士 ",
                                     phone="13912345678",
                                     custom={"会员等级": "金卡", "积分": 1200},
                                     title="退款说明")
    visitor = Visitor.get(Visitor.uid.is_null(False))
    assert visitor.name == "陈女士" and visitor.phone == "13912345678"
    assert visitor.attributes == {"会员等级": "金卡", "积分": "1200"}
    visit = Visit.get(Visit.visitor == visitor)
    assert visit.source == "search_engine" and visit.search_keyword == "退款"
    assert visit.platform == "mobile_web" and visit.landing_page.endswith("/p/1")
    assert visit.custom_info == {"会员等级": "金卡", "积分": "1200"}
    assert visit.trail[0]["title"] == "退款说明"
    assert data["conversation"]["status"] == "bot"  # nobody online: stays, form offered
    assert data["conversation"]["availability"] == "nobody_online"

    # The same token resumes the visitor: a second visit, the same conversation.
    again = client.post(SESSION, json={"team_id": team.team["id"], "token": token,
                                       "name": "别的名字"}).get_json()
    assert again["conversation"]["conversation_id"] == cid
    assert Visitor.select().count() == 1 and Visit.select().count() == 2
    assert Visitor.get_by_id(visitor.id).name == "陈女士"  # the page does not overwrite


def test_session_bad_input_changes_nothing(team):
    client = team.app.test_client()
    cases = [
        ({"team_id": 999}, 404, None),
        ({}, 422, "team_id"),
        ({"team_id": team.team["id"], "colour": "red"}, 422, "colour"),
        ({"team_id": team.team["id"], "custom": {"地址": {"省": "浙江"}}}, 422, "custom.地址"),
        ({"team_id": team.team["id"], "name": "名" * 121}, 422, "name"),
    ]
    for body, status, field in cases:
        response = client.post(SESSION, json=body)
        assert response.status_code == status, (body, response.get_json())
        error = response.get_json()["error"]
        assert error["message"]
        if field:
            assert error["field"] == field, error
    assert client.post(SESSION, data="not json", content_type="application/json"
                       ).status_code in (400, 422)
    assert Visitor.select().count() == 0 and Conversation.select().count() == 0


def test_a_phone_that_is_no_phone_is_dropped_with_a_warning_not_stored(team):
    """Found from outside: the session stored any text as the customer's phone
    (``138<img src=x onerror=alert(1)>``) while the leave-a-message form refuses it.
    The same rule now; the chat still starts, the phone is not kept, and the answer
    says why in the caller's language."""
    from tests.api.test_tickets import leave

    client = team.app.test_client()
    bad = "138<img src=x onerror=alert(1)>"
    answer = client.post(SESSION, json={"team_id": team.team["id"], "name": "王先生",
                                        "phone": bad, "email": "wang@example.com"},
                         headers={"X-Meiqia-Lang": "zh-CN"})
    assert answer.status_code == 200, answer.get_json()
    data = answer.get_json()
    visitor = Visitor.get()
    assert visitor.phone == "" and visitor.name == "王先生"
    assert visitor.email == "wang@example.com"
    # Said as the leave-a-message form says it (one validator), in his language.
    refused = leave(client, data["token"], phone=bad)
    assert refused.status_code == 422
    [warning] = data["warnings"]
    assert warning == {**refused.get_json()["error"], "message": warning["message"],
                       "message_en": warning["message_en"]}
    assert warning["field"] == "phone" and warning["code"] == "invalid"
    assert warning["message"].startswith("电话：电话号码不正确")
    assert warning["message_en"] == refused.get_json()["error"]["message"]
    english = client.post(SESSION, json={"team_id": team.team["id"], "phone": "12345"},
                          headers={"X-Meiqia-Lang": "en"}).get_json()["warnings"]
    assert [w["message"] for w in english] == [refused.get_json()["error"]["message"]]
    # A real number is kept, as the form keeps it (spaces gone); no warnings.
    kept = client.post(SESSION, json={"team_id": team.team["id"], "token": data["token"],
                                      "phone": " 138 0013 8000 "}).get_json()
    assert kept["warnings"] == []
    assert Visitor.get_by_id(visitor.id).phone == "13800138000"


def test_foreign_or_forged_tokens_start_a_new_visitor(team):
    from meiqia.models import Team

    _, token, cid, _ = start(team.app, team.team["id"])
    other = Team.create(name="另一个团队")
    client = team.app.test_client()
    elsewhere = client.post(SESSION, json={"team_id": other.id, "token": token}).get_json()
    assert elsewhere["conversation"]["conversation_id"] != cid
    forged = client.post(SESSION, json={"team_id": team.team["id"], "token": "x.y.z"})
    assert forged.get_json()["conversation"]["conversation_id"] != cid
    assert Visitor.select().count() == 3


@pytest.mark.parametrize("words", ["转人工", "人工！", "人工客服", "ＨＵＭＡＮ", "Agent?",
                                   "  我要人工  ", "talk to a human"])
def test_words_that_ask_for_a_human(api, words):
    """With the bot on (the default), these words route at once."""
    agent = online_agent(api)
    client, token, cid, data = start(api.app, api.team["id"])
    assert data["conversation"]["status"] == "bot"
    vpost(client, token, f"/api/v1/widget/conversations/{cid}/messages", json={"client_msg_id": new_client_id(), "body": words})
    conversation = Conversation.get_by_id(cid)
    assert conversation.status == "open" and conversation.handler_id == agent.agent["id"]


def test_questions_that_mention_the_words_stay_with_the_bot(api):
    online_agent(api)
    assert not conversations.wants_human("人工费多少钱")
    assert not conversations.wants_human("how do I become an agent of your brand")
    client, token, cid, _ = start(api.app, api.team["id"])
    vpost(client, token, f"/api/v1/widget/conversations/{cid}/messages",
          json={"client_msg_id": new_client_id(), "body": "人工费多少钱"})
    assert Conversation.get_by_id(cid).status == "bot"
    last = Message.select().where(Message.conversation == cid).order_by(Message.id.desc()).get()
    assert last.sender_kind == "bot"


def test_without_the_bot_module_a_question_is_unrecognised_and_routed(api, monkeypatch):
    agent = online_agent(api)
    client, token, cid, _ = start(api.app, api.team["id"])
    import meiqia.services

    # The bot module not installed: the import fails.
    monkeypatch.setitem(sys.modules, "meiqia.services.bot", None)
    monkeypatch.delattr(meiqia.services, "bot", raising=False)
    vpost(client, token, f"/api/v1/widget/conversations/{cid}/messages",
          json={"client_msg_id": new_client_id(), "body": "你们几点下班"})
    bot = Message.get(Message.conversation == cid, Message.sender_kind == "bot")
    assert bot.payload["bot"] == "unrecognised" and bot.payload["offer_human"]
    assert Conversation.get_by_id(cid).handler_id == agent.agent["id"]


def test_human_button_when_everybody_is_busy_and_the_queue_is_off(team):
    online_agent(team, limit=1)
    team.patch("/api/v1/team", json={"settings": {"queue_enabled": False}})
    start(team.app, team.team["id"])  # takes the only place
    client, token, cid, data = start(team.app, team.team["id"])
    assert data["conversation"]["status"] == "bot"
    assert data["conversation"]["availability"] == "all_busy"
    human = vpost(client, token, f"/api/v1/widget/conversations/{cid}/human").get_json()
    assert human["outcome"] == "nobody" and human["status"] == "bot"
    event = Message.get(Message.conversation == cid, Message.kind == "event")
    assert event.payload == {"event": "leave_message", "reason": "all_busy"}


def test_leaving_the_queue_ends_the_chat_without_a_bot_state_between(team):
    """What the ticket flow does when a queued visitor leaves a message instead: the
    chat goes from queued to ended in one step (a client written from the docs saw
    a ``bot`` state between the two), and the one behind him moves up, live."""
    from meiqia.services import tickets

    online_agent(team, limit=1)
    start(team.app, team.team["id"])
    client, token, cid, data = start(team.app, team.team["id"])
    third = start(team.app, team.team["id"])
    assert data["conversation"]["queue_position"] == 1
    hub = team.app.extensions["meiqia.hub"]
    with hub.subscribe([f"conversation:{third[2]}"]) as behind, \
            hub.subscribe([f"conversation:{cid}"]) as own:
        tickets._leave_queue(Conversation.get_by_id(cid))
        moved = [e["data"] for _t, e in behind.drain() if e["type"] == "conversation"]
        states = [e["data"]["status"] for _t, e in own.drain() if e["type"] == "conversation"]
    assert moved and moved[-1]["queue_position"] == 1
    assert states == ["ended"], states
    ended = Conversation.get_by_id(cid)
    assert ended.status == "ended" and ended.end_reason == "left_ticket"
    assert ended.ended_by_id is None
    assert conversations.system_end(cid, "left_ticket").status == "ended"  # twice: harmless
    tickets._leave_queue(Conversation.get_by_id(cid))  # and leaving again: nothing
    state = vget(client, token, f"/api/v1/widget/conversations/{cid}/messages").get_json()
    assert state["conversation"]["status"] == "ended"
    assert state["messages"][-1]["payload"]["event"] == "ended"
    again = vpost(client, token, f"/api/v1/widget/conversations/{cid}/messages",
                  json={"client_msg_id": new_client_id(), "body": "还有人吗"})
    assert again.status_code == 409


def test_rating_opens_on_invite_or_end_and_visitors_cannot_end(team):
    agent = online_agent(team)
    client, token, cid, _ = start(team.app, team.team["id"])
    url = f"/api/v1/widget/conversations/{cid}/rating"
    early = vpost(client, token, url, json={"rating": "good"})
    assert early.status_code == 403 and "invite" in early.get_json()["error"]["message"]
    bad = vpost(client, token, url, json={"rating": "excellent"})
    assert bad.status_code == 422 and bad.get_json()["error"]["field"] == "rating"
    # There is no way for a visitor to end: no such route, and agent routes refuse him.
    assert vpost(client, token, f"/api/v1/widget/conversations/{cid}/end").status_code in (
        404, 405)
    assert vpost(client, token, f"/api/v1/conversations/{cid}/end").status_code == 401
    assert Conversation.get_by_id(cid).status == "open"

    invite = agent.post(f"/api/v1/conversations/{cid}/rating-invite")
    assert invite.status_code == 201 and invite.get_json()["kind"] == "rating_invite"
    seen = vget(client, token, f"/api/v1/widget/conversations/{cid}/messages").get_json()
    assert seen["messages"][-1]["kind"] == "rating_invite"
    rated = vpost(client, token, url, json={"rating": "neutral", "comment": "还行"})
    assert rated.status_code == 200 and rated.get_json()["rating"] == "neutral"
    conversation = Conversation.get_by_id(cid)
    assert (conversation.rating, conversation.rating_comment) == ("neutral", "还行")


def test_visitor_api_never_shows_internal_notes(team):
    agent = online_agent(team)
    client, token, cid, _ = start(team.app, team.team["id"])
    agent.post(f"/api/v1/conversations/{cid}/messages",
               json={"client_msg_id": new_client_id(), "body": "内部：这位客户投诉过两次", "mode": "internal"})
    team.go_online()  # a transfer goes to someone who is there
    moved = agent.post(f"/api/v1/conversations/{cid}/transfer", json={"agent_id": team.agent["id"]})
    assert moved.status_code == 200, moved.get_json()
    listed = vget(client, token, f"/api/v1/widget/conversations/{cid}/messages").get_json()
    resumed = client.post(SESSION, json={"team_id": team.team["id"], "token": token}).get_json()
    for payload in (listed, resumed):
        text = str(payload)
        assert "投诉" not in text and "transferred" not in text
    assert Message.select().where(Message.visibility == "internal").count() == 2


def test_messages_after_an_id(team):
    agent = online_agent(team)
    client, token, cid, _ = start(team.app, team.team["id"])
    ids = []
    for n in range(3):
        sent = vpost(client, token, f"/api/v1/widget/conversations/{cid}/messages",
                     json={"body": f"第{n}条", "client_msg_id": f"n{n}"})
        ids.append(sent.get_json()["message"]["id"])
    agent.post(f"/api/v1/conversations/{cid}/messages", json={"client_msg_id": new_client_id(), "body": "收到"})
    after = vget(client, token,
                 f"/api/v1/widget/conversations/{cid}/messages?after={ids[0]}").get_json()
    assert [m["body"] for m in after["messages"]] == ["第1条", "第2条", "收到"]
    bad = vget(client, token, f"/api/v1/widget/conversations/{cid}/messages?after=abc")
    assert bad.status_code == 422 and bad.get_json()["error"]["field"] == "after"
    bad_id = vpost(client, token, f"/api/v1/widget/conversations/{cid}/messages",
                   json={"body": "x", "client_msg_id": "有空格 的id"})
    assert bad_id.status_code == 422 and bad_id.get_json()["error"]["field"] == "client_msg_id"
