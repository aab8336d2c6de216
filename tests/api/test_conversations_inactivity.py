"""The inactivity rule on SQLite and PostgreSQL: the team's ``inactivity_minutes``
ends quiet conversations as the system, like any end (figures, place freed,
visitor told). Time is moved through the data (timestamps set in the past),
never by sleeping."""

from __future__ import annotations

import datetime
import threading

import pytest

from meiqia.models import Conversation
from meiqia.models import Message
from meiqia.models import Visitor
from meiqia.models.base import utcnow
from meiqia.services import conversations
from meiqia.services import inactivity
from meiqia.services.errors import Conflict
from tests.api.test_conversations import start
from tests.api.test_conversations import vpost
from tests.conftest import close_app
from tests.conftest import make_app
from tests.helpers import ApiClient
from tests.helpers import new_client_id
from tests.helpers import wait_until


@pytest.fixture
def team(db_api):
    return db_api.without_bot()


def online(api, limit=1, **fields):
    return api.online_agent(limit, **fields)


def rule(api, minutes):
    response = api.put("/api/v1/conversation-rules", json={"inactivity_minutes": minutes})
    assert response.status_code == 200, response.get_json()


def quiet_for(cid, minutes, visitor_online=None):
    """Make a conversation look as if nothing happened in it for ``minutes``."""
    then = utcnow() - datetime.timedelta(minutes=minutes)
    conversation = Conversation.get_by_id(cid)
    Conversation.update(
        created_at=then, last_message_at=then,
        assigned_at=then if conversation.assigned_at else None,
        queued_at=then if conversation.queued_at else None,
    ).where(Conversation.id == cid).execute()
    if visitor_online is not None:
        until = utcnow() + datetime.timedelta(seconds=60 if visitor_online else -60)
        Visitor.update(online_until=until).where(Visitor.id == conversation.visitor_id).execute()


def test_quiet_open_conversations_end_and_free_the_place(team):
    li = online(team)
    client, token, cid, _ = start(team.app, team.team["id"], name="张三")
    vpost(client, token, f"/api/v1/widget/conversations/{cid}/messages",
          json={"client_msg_id": new_client_id(), "body": "请问发货了吗"})
    recent = start(team.app, team.team["id"])[2]  # queued behind: li is full
    quiet_for(cid, 31)
    assert inactivity.sweep() == 0  # the rule is off (0 minutes) until set
    rule(team, 30)
    assert inactivity.sweep() == 1

    ended = Conversation.get_by_id(cid)
    assert ended.status == "ended" and ended.end_reason == "inactivity"
    assert ended.ended_by_id is None and ended.ended_at is not None
    # Figures stored as for any end: the visitor wrote and no agent answered.
    assert ended.visitor_message_count == 1 and ended.is_missed and not ended.is_invalid
    # The visitor is told, in the team's language, and may start again.
    seen = client.get(f"/api/v1/widget/conversations/{cid}/messages",
                      headers={"X-Visitor-Token": token}).get_json()
    note = seen["messages"][-1]
    assert note["kind"] == "event" and note["payload"]["event"] == "ended"
    assert note["payload"]["reason"] == "inactivity" and note["payload"]["minutes"] == 30
    assert "自动结束" in note["body"] and seen["conversation"]["status"] == "ended"
    # The freed place went to the queue head at once.
    assert Conversation.get_by_id(recent).handler_id == li.agent["id"]
    # Ended conversations leave the active lists for the history.
    assert [c["id"] for c in li.get("/api/v1/conversations").get_json()["mine"]] == [recent]
    assert inactivity.sweep() == 0  # and nothing is ended twice


def test_what_counts_as_quiet(team):
    """Open, bot and queued conversations quiet for longer than the rule; a queued
    visitor still on the page is waiting for us and stays; any recent message,
    assignment or queueing counts as activity."""
    team.patch("/api/v1/team", json={"settings": {"bot_enabled": True}})
    rule(team, 30)
    with_bot = start(team.app, team.team["id"])[2]
    chatting = start(team.app, team.team["id"])[2]
    quiet_for(with_bot, 45)
    quiet_for(chatting, 45)
    Conversation.update(last_message_at=utcnow() - datetime.timedelta(minutes=5)).where(
        Conversation.id == chatting).execute()
    team.patch("/api/v1/team", json={"settings": {"bot_enabled": False}})
    online(team)
    start(team.app, team.team["id"])
    waiting_here = start(team.app, team.team["id"])[2]
    waiting_gone = start(team.app, team.team["id"])[2]
    just_queued = start(team.app, team.team["id"])[2]
    for cid, online_now in ((waiting_here, True), (waiting_gone, False)):
        quiet_for(cid, 45, visitor_online=online_now)
    # Its visitor wrote long ago, but it was queued only now.
    Conversation.update(last_message_at=utcnow() - datetime.timedelta(minutes=45),
                        created_at=utcnow() - datetime.timedelta(minutes=45)).where(
        Conversation.id == just_queued).execute()

    assert inactivity.sweep() == 2
    status = {cid: Conversation.get_by_id(cid).status for cid in
              (with_bot, chatting, waiting_here, waiting_gone, just_queued)}
    assert status == {with_bot: "ended", chatting: "bot", waiting_here: "queued",
                      waiting_gone: "ended", just_queued: "queued"}
    assert Conversation.get_by_id(waiting_gone).end_reason == "inactivity"


def test_a_message_after_the_look_up_keeps_the_conversation(team):
    """The ending UPDATE re-checks the idleness: what the sweep decided from its
    look-up does not end a conversation the visitor wrote in meanwhile."""
    online(team, limit=2)
    client, token, cid, _ = start(team.app, team.team["id"])
    rule(team, 30)
    quiet_for(cid, 31)
    now = utcnow()
    condition = inactivity.idle_condition(now - datetime.timedelta(minutes=30), now)
    assert Conversation.select().where(Conversation.id == cid, condition).exists()
    vpost(client, token, f"/api/v1/widget/conversations/{cid}/messages", json={"client_msg_id": new_client_id(), "body": "还在吗"})
    with pytest.raises(Conflict):
        conversations.system_end(cid, "inactivity", only_if=condition)
    assert Conversation.get_by_id(cid).status == "open"
    assert not [m for m in Message.select().where(Message.conversation == cid,
                                                  Message.kind == "event")
                if m.payload.get("event") == "ended"]


def test_processes_sweeping_at_once_end_each_conversation_once(team):
    online(team, limit=0)
    rule(team, 10)
    cids = [start(team.app, team.team["id"])[2] for _ in range(8)]
    for cid in cids:
        quiet_for(cid, 11, visitor_online=False)
    app = team.app
    counts: list[int] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(3)

    def sweeper():
        from meiqia.db import connection

        try:
            with app.app_context(), connection():
                barrier.wait(timeout=30)
                counts.append(inactivity.sweep())
        except BaseException as exc:  # noqa: BLE001 - collected for the assert
            errors.append(exc)

    threads = [threading.Thread(target=sweeper) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == [] and sum(counts) == len(cids)
    for cid in cids:
        assert Conversation.get_by_id(cid).status == "ended"
        ends = Message.select().where(Message.conversation == cid, Message.kind == "event")
        assert [m.payload["event"] for m in ends] == ["ended"]


def test_each_web_process_runs_the_sweeper_from_its_first_request(tmp_path):
    """No extra server in the embedded default: the sweep runs on a thread of the
    web process, started by its first request."""
    app = make_app(tmp_path, INACTIVITY_SWEEP_SECONDS=1)
    try:
        with app.app_context():
            api = ApiClient.registered(app)
            api.patch("/api/v1/team", json={"settings": {"bot_enabled": False}})
            rule(api, 5)
            cid = start(app, api.team["id"])[2]
            quiet_for(cid, 6, visitor_online=False)
            sweeper = app.extensions["meiqia.inactivity"]
            assert sweeper.thread is not None and sweeper.thread.is_alive()
            wait_until(lambda: Conversation.get_by_id(cid).status == "ended", 60,
                       "the sweeper thread to end the quiet conversation")
            assert Conversation.get_by_id(cid).end_reason == "inactivity"
    finally:
        app.extensions["meiqia.inactivity"].stop()
        close_app(app)
