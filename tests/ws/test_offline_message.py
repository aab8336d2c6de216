"""The team's "nobody online" message (``settings.offline_message``, Admin → 团队设置,
"无人在线时的提示") is the line a visitor gets wherever nobody can take his chat.

The hteam's D1: the setting was stored and never read; every visitor got the
built-in "现在没有客服可以接待，请留言…" line. Real sockets against a real server,
the presence sweeper running as in production (see tests/ws/test_presence.py).
"""

from __future__ import annotations

from meiqia.models import Conversation
from meiqia.models import Message
from meiqia.services.routing import LEAVE_MESSAGE_TEXT
from tests.api.test_conversations import start
from tests.api.test_conversations import vpost
from tests.ws import test_presence
from tests.ws.test_presence import GRACE
from tests.ws.test_presence import leave_line
from tests.ws.test_presence import offered
from tests.ws.test_presence import visitor
from tests.ws.test_presence import workspace

#: The same team (bot off, short grace) and running presence sweeper as
#: tests/ws/test_presence.py.
team = test_presence.team
sweeper = test_presence.sweeper


OWN = "客服下班啦！请留下您的电话和问题，我们明早 9 点前联系您。"


def _set(team, **settings):
    response = team.patch("/api/v1/team", json={"settings": settings})
    assert response.status_code == 200, response.get_json()


def _leave_lines(cid):
    return [m.body for m in Message.select().where(
        Message.conversation == cid, Message.kind == "event").order_by(Message.id)
        if m.payload.get("event") == "leave_message"]


def _english_session(team):
    client = team.app.test_client()
    session = client.post("/api/v1/widget/session", json={"team_id": team.team["id"]},
                          headers={"X-Meiqia-Lang": "en"}).get_json()
    return client, session["token"], session["conversation"]["conversation_id"]


def test_nobody_online_a_visitor_pressing_human_gets_the_teams_text(team, live):
    """Both languages get the team's text as written (the team chose it); with
    the setting empty (or blank) the built-in line in the visitor's language."""
    # The bot on: the visitor presses 转人工 himself.
    _set(team, bot_enabled=True, offline_message=f"  {OWN}\n")
    zh_client, zh_token, zh_cid, _ = start(team.app, team.team["id"])
    en_client, en_token, en_cid = _english_session(team)
    for client, token, cid in ((zh_client, zh_token, zh_cid), (en_client, en_token, en_cid)):
        socket = visitor(live, token)
        asked = vpost(client, token, f"/api/v1/widget/conversations/{cid}/human")
        assert asked.get_json()["outcome"] == "nobody", asked.get_json()
        offered(socket)
        line = leave_line(socket)
        assert line["body"] == OWN and line["sender_kind"] == "system"
        assert line["payload"] == {"event": "leave_message", "reason": "nobody_online"}
        assert _leave_lines(cid) == [OWN]
        # A client resuming later reads the same stored line.
        listed = client.get(f"/api/v1/widget/conversations/{cid}/messages",
                            headers={"X-Visitor-Token": token}).get_json()["messages"]
        assert [m["body"] for m in listed if m["payload"].get("event") == "leave_message"] \
            == [OWN]
        socket.close()
    # Blank: the built-in line, in the visitor's language.
    _set(team, offline_message="   ")
    client, token, cid = _english_session(team)
    vpost(client, token, f"/api/v1/widget/conversations/{cid}/human")
    assert _leave_lines(cid) == [LEAVE_MESSAGE_TEXT["en"]]


def test_outside_working_hours_the_widget_shows_the_teams_text(team, live):
    """An agent is online with his workspace open, but the team is closed (no
    working day at all): the visitor, with the bot off, is offered at once."""
    agent = workspace(live, team.online_agent(2, connected=False, name="李客服"))
    _set(team, offline_message=OWN,
         working_hours={"mode": "hours", "days": [], "start": "09:00", "end": "18:00"})
    _client, _token, cid, data = start(team.app, team.team["id"])
    assert data["conversation"]["availability"] == "nobody_online"
    assert [m["body"] for m in data["messages"]
            if m["payload"].get("event") == "leave_message"] == [OWN]
    assert Conversation.get_by_id(cid).handler_id is None
    agent.close()


def test_the_last_agent_gone_tells_the_queue_the_teams_text(team, live, sweeper):
    _set(team, offline_message=OWN)
    li = team.online_agent(1, connected=False)
    agent = workspace(live, li)
    start(team.app, team.team["id"])
    _c, token, waiting, _ = start(team.app, team.team["id"])
    assert Conversation.get_by_id(waiting).status == "queued"
    socket = visitor(live, token)
    agent.close()
    offered(socket, timeout=GRACE + 5)
    assert leave_line(socket)["body"] == OWN
    assert _leave_lines(waiting) == [OWN]
