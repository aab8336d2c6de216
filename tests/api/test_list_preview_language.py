"""The workspace's conversation list shows a system event in the agent's language.

A handover is stored as the line the visitor was sent, in his language ("Bob 为您服务"
to a Chinese visitor, "张三 is now serving you" to an English one). Inside the chat the
agent reads it in his own words (message-body.js: "Bob took over" / "张三 开始接待"); the
list's preview (``last_message`` of ``GET /api/v1/conversations``) showed the visitor's
line (found from outside, zh-CN team: shots/after_transfer_bob.png,
zh_agent_list_preview_en.png).
"""

from __future__ import annotations

from meiqia.models import Conversation
from meiqia.models import Message

SESSION = "/api/v1/widget/session"


def _visitor_served(team, lang: str) -> int:
    """A visitor whose widget speaks ``lang`` starts a chat; routing hands it over."""
    client = team.app.test_client()
    data = client.post(SESSION, json={"team_id": team.team["id"]},
                       headers={"X-Meiqia-Lang": lang}).get_json()
    return data["conversation"]["conversation_id"]


def _preview(agent, cid: int, lang: str | None) -> str:
    headers = {"X-Meiqia-Lang": lang} if lang else {}
    rows = agent.get("/api/v1/conversations", headers=headers).get_json()["mine"]
    return next(r["last_message"] for r in rows if r["id"] == cid)


def test_the_handover_preview_is_in_the_agents_language_not_the_visitors(api):
    team = api.without_bot()
    bob = team.online_agent(2, name="Bob")
    cid = _visitor_served(team, "zh-CN")  # a Chinese visitor: he was told "Bob 为您服务"
    assert Conversation.get_by_id(cid).handler_id == bob.agent["id"]
    last = Message.get_by_id(Conversation.get_by_id(cid).last_message_id)
    assert last.body == "Bob 为您服务"

    assert _preview(bob, cid, "en") == "Bob took over"  # the English agent's page
    assert _preview(bob, cid, "zh-CN") == "Bob 开始接待"
    # One conversation (the workspace's card) says the same.
    one = bob.get(f"/api/v1/conversations/{cid}", headers={"X-Meiqia-Lang": "en"}).get_json()
    assert one["last_message"] == "Bob took over"


def test_an_english_visitors_handover_reads_in_chinese_for_a_chinese_agent(api):
    team = api.without_bot()
    zhang = team.online_agent(2, name="张三")
    cid = _visitor_served(team, "en")
    assert Message.get_by_id(Conversation.get_by_id(cid).last_message_id).body \
        == "张三 is now serving you"
    # What the workspace sends (its page's language), and a script that says nothing:
    # his setting, else English, as error messages.
    assert _preview(zhang, cid, "zh-CN") == "张三 开始接待"
    assert _preview(zhang, cid, None) == "张三 took over"
    assert zhang.client.get("/lang/zh-CN").status_code == 302  # he chose Chinese once
    zhang.client.delete_cookie("lang")
    assert _preview(zhang, cid, None) == "张三 开始接待"


def test_a_transfer_and_an_end_are_written_for_the_reader(api):
    team = api.without_bot()
    zhang = team.online_agent(2, name="张三")
    cid = _visitor_served(team, "zh-CN")
    assert Conversation.get_by_id(cid).handler_id == zhang.agent["id"]
    bob = team.online_agent(2, name="Bob", email="bob@example.com")
    moved = zhang.post(f"/api/v1/conversations/{cid}/transfer",
                       json={"agent_id": bob.agent["id"]})
    assert moved.status_code == 200, moved.get_json()
    one = bob.get(f"/api/v1/conversations/{cid}", headers={"X-Meiqia-Lang": "en"}).get_json()
    assert one["last_message"] == "Bob took over", one["last_message"]  # not "Bob 为您服务"
    ended = bob.post(f"/api/v1/conversations/{cid}/end")
    assert ended.status_code == 200, ended.get_json()
    one = bob.get(f"/api/v1/conversations/{cid}", headers={"X-Meiqia-Lang": "en"}).get_json()
    assert one["last_message"] == "Bob ended the conversation", one["last_message"]
    one = bob.get(f"/api/v1/conversations/{cid}", headers={"X-Meiqia-Lang": "zh-CN"}).get_json()
    assert one["last_message"] == "Bob 结束了对话", one["last_message"]


def test_the_openapi_document_says_what_last_message_holds(api):
    doc = api.get("/api/v1/openapi.json").get_json()
    described = doc["paths"]["/api/v1/conversations"]["get"]["description"]
    assert "last_message" in described and "reader's language" in described
