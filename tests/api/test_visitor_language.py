"""Every system line a visitor reads is in his widget's language, not the team's.

The team here speaks Chinese (the default); the visitor's widget says ``en`` with
``X-Meiqia-Lang``. Issue 17: he got the Chinese bot and leave-a-message lines.
"""

from __future__ import annotations

import re
import sys

from meiqia.models import Conversation
from meiqia.models import Message
from meiqia.services import conversations
from meiqia.services import inactivity
from tests.helpers import new_client_id

CJK = re.compile(r"[\u3400-\u9fff\uff00-\uffef\u3000-\u303f]")
SESSION = "/api/v1/widget/session"


def _start(app, team_id, lang):
    client = app.test_client()
    data = client.post(SESSION, json={"team_id": team_id},
                       headers={"X-Meiqia-Lang": lang}).get_json()
    return client, data["token"], data["conversation"]["conversation_id"]


def _say(client, token, cid, body):
    return client.post(f"/api/v1/widget/conversations/{cid}/messages",
                       headers={"X-Visitor-Token": token},
                       json={"client_msg_id": new_client_id(), "body": body})


def _system_lines(cid):
    return [m.body for m in Message.select().where(
        Message.conversation == cid, Message.sender_kind.in_(["bot", "system"]),
        Message.body != "").order_by(Message.id)]


def test_an_english_visitor_of_a_chinese_team_reads_english_lines(api):
    assert api.team["language"] == "zh-CN"
    client, token, cid = _start(api.app, api.team["id"], "en")
    assert _say(client, token, cid, "qwzx plorbnik vendetta").status_code == 201
    _say(client, token, cid, "zzkq frobnicate glimmer")
    # Nobody online: asking for a person offers to leave a message.
    client.post(f"/api/v1/widget/conversations/{cid}/human", headers={"X-Visitor-Token": token})
    lines = _system_lines(cid)
    assert any("did not understand" in line or "can't seem to help" in line
               for line in lines), lines
    assert any("leave a message" in line for line in lines), lines
    assert not [line for line in lines if CJK.search(line)], lines

    # The same team, a Chinese visitor: Chinese lines.
    zh_client, zh_token, zh_cid = _start(api.app, api.team["id"], "zh-CN")
    _say(zh_client, zh_token, zh_cid, "qwzx plorbnik vendetta")
    assert all(CJK.search(line) for line in _system_lines(zh_cid))


def test_the_handover_and_the_inactivity_end_follow_the_visitor(api):
    team = api.without_bot()
    agent = team.online_agent(2, name="Lee")
    client, token, cid = _start(team.app, team.team["id"], "en")
    assert Conversation.get_by_id(cid).handler_id == agent.agent["id"]
    conversations.system_end(cid, inactivity.REASON)  # what the sweep does, in one step
    lines = _system_lines(cid)
    assert any("is now serving you" in line for line in lines), lines
    assert any("ended automatically" in line for line in lines), lines
    assert not [line for line in lines if CJK.search(line)], lines


def test_without_the_bot_module_the_fallback_is_in_his_language(api, monkeypatch):
    import meiqia.services

    monkeypatch.setitem(sys.modules, "meiqia.services.bot", None)
    monkeypatch.delattr(meiqia.services, "bot", raising=False)
    client, token, cid = _start(api.app, api.team["id"], "en")
    _say(client, token, cid, "what time do you close")
    bot = Message.get(Message.conversation == cid, Message.sender_kind == "bot")
    assert bot.body == "Sorry, I can't answer that: let me get you a human agent."
