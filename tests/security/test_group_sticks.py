"""A chat routed to a group stays its group's, whatever happens to it (docs/security.md §1).

Found by an outside tester: a chat the admin routed to 售前组 lost its group when a
member took it (a transfer to himself cleared it). When he closed his workspace the
presence sweep requeued it into the team's general queue, every scoped agent's pool:
an agent of 售后组 and one limited to his own chats read the customer's ID number,
his card and the internal notes. Here the same with real agent sockets, the presence
sweeper running as in production, on SQLite and on PostgreSQL.

And an agent who saw a chat only because he was @mentioned in it transferred it to
himself: a mention lets him read (and write in) the chat, not take it over.
"""

from __future__ import annotations

import pytest

from meiqia.models import Conversation
from meiqia.models import Message
from meiqia.services import presence
from meiqia.testing.sockets import LiveServer
from meiqia.testing.sockets import Socket
from meiqia.testing.sockets import cookie_of
from tests.api.test_conversations import start
from tests.api.test_conversations import vpost
from tests.helpers import new_client_id
from tests.helpers import wait_until

GRACE = 0.5
SECRET = "110101199001011234"
NOTE = "内部备注：VIP 客户，报价 8 折"


@pytest.fixture
def world(db_api):
    """Two groups; 客服一 (售前组, scope groups, limit 0: he takes chats by hand), 主管
    (scope all, in no group), 客服三 (售后组, scope groups) and 客服二 (scope self)."""
    db_api.app.config.update(AGENT_AWAY_GRACE_SECONDS=GRACE, AGENT_AWAY_OPEN_CHATS="requeue")
    db_api.without_bot()
    presale = db_api.post("/api/v1/groups", json={"name": "售前组"}).get_json()["id"]
    aftersale = db_api.post("/api/v1/groups", json={"name": "售后组"}).get_json()["id"]
    people = {
        "ag1": db_api.online_agent(0, connected=False, email="ag1@example.com", name="客服一",
                                   scope="groups", groups=[presale]),
        "sup": db_api.online_agent(2, connected=False, email="sup@example.com", name="主管",
                                   scope="all"),
        "ag3": db_api.new_agent(email="ag3@example.com", name="客服三", scope="groups",
                                groups=[aftersale]),
        "ag2": db_api.new_agent(email="ag2@example.com", name="客服二", scope="self",
                                groups=[aftersale]),
    }
    return db_api, presale, aftersale, people


def _visitor_asks(admin, presale):
    """A visitor (nobody online yet) tells his ID number; the admin routes him to 售前组."""
    client, token, cid, _ = start(admin.app, admin.team["id"], name="褚十四")
    sent = vpost(client, token, f"/api/v1/widget/conversations/{cid}/messages",
                 json={"client_msg_id": "rr-1", "body": f"售前咨询，我的身份证 {SECRET}"})
    assert sent.status_code == 201, sent.get_json()
    routed = admin.post(f"/api/v1/conversations/{cid}/transfer", json={"group_id": presale})
    assert routed.status_code == 200, routed.get_json()
    return cid


def _outsiders_see_nothing(cid, *outsiders):
    for who in outsiders:
        assert who.get(f"/api/v1/conversations/{cid}").status_code == 404
        answer = who.get(f"/api/v1/conversations/{cid}/messages")
        assert answer.status_code == 404 and SECRET not in answer.get_data(as_text=True)
        visitor_id = Conversation.get_by_id(cid).visitor_id
        assert who.get(f"/api/v1/visitors/{visitor_id}/conversations").status_code == 404


def _requeued(cid, gone):
    """The sweep took the chat from ``gone`` (his workspace closed): it is no longer
    his and carries a ``requeued`` line naming him. Routing runs right after the
    requeue, so whether someone got it is read after that (see the callers)."""
    def done():
        if Conversation.get_by_id(cid).handler_id == gone.agent["id"]:
            return False
        return any(m.payload.get("event") == "requeued"
                   and m.payload.get("from") == gone.agent["name"]
                   for m in Message.select().where(Message.conversation == cid,
                                                   Message.kind == "event"))
    wait_until(done, 15, f"the requeue of conversation {cid} from {gone.agent['name']}")
    return Conversation.get_by_id(cid)


def test_a_group_chat_taken_then_requeued_stays_its_groups(world):
    admin, presale, _aftersale, people = world
    ag1, sup, ag3, ag2 = people["ag1"], people["sup"], people["ag3"], people["ag2"]
    app = admin.app
    live = LiveServer(app)
    sweeper = presence.Sweeper(app, 0.1, presence.sweep, "presence")
    sweeper.ensure_running()
    try:
        cid = _visitor_asks(admin, presale)
        _outsiders_see_nothing(cid, ag3, ag2)

        # 客服一 of 售前组 opens his workspace and takes the chat himself.
        w1 = Socket(live.url("/ws/agent"), cookie_of(ag1))
        w1.expect("hello")
        taken = ag1.post(f"/api/v1/conversations/{cid}/transfer",
                         json={"agent_id": ag1.agent["id"], "accept_over_limit": True})
        assert taken.status_code == 200, taken.get_json()
        assert taken.get_json()["status"] == "open"
        row = admin.get(f"/api/v1/conversations/{cid}").get_json()
        assert (row["handler_id"], row["group_id"]) == (ag1.agent["id"], presale)
        noted = ag1.post(f"/api/v1/conversations/{cid}/messages", json={
            "client_msg_id": new_client_id(), "body": NOTE, "mode": "internal"})
        assert noted.status_code == 201, noted.get_json()

        # 主管 (all, in no group, free) is there; 客服一 closes his workspace: the
        # sweep requeues the chat into 售前组's queue, not to 主管 nor the general queue.
        ws_sup = Socket(live.url("/ws/agent"), cookie_of(sup))
        ws_sup.expect("hello")
        w1.close()
        now = _requeued(cid, ag1)
        assert (now.status, now.handler_id, now.group_id) == ("queued", None, presale)
        assert presence.is_connected(sup.agent["id"])
        _outsiders_see_nothing(cid, ag3, ag2)
        assert ag1.get(f"/api/v1/conversations/{cid}").status_code == 200  # his group's

        # The admin hands it to 主管, outside the group: he serves it, it stays 售前组's.
        handed = admin.post(f"/api/v1/conversations/{cid}/transfer",
                            json={"agent_id": sup.agent["id"]})
        assert handed.status_code == 200, handed.get_json()
        now = Conversation.get_by_id(cid)
        assert (now.status, now.handler_id, now.group_id) == ("open", sup.agent["id"], presale)

        # 主管 closes his workspace too: back in 售前组's queue, still nobody else's.
        ws_sup.close()
        now = _requeued(cid, sup)
        assert (now.status, now.handler_id, now.group_id) == ("queued", None, presale)
        _outsiders_see_nothing(cid, ag3, ag2)
        bodies = [m["body"] for m in
                  ag1.get(f"/api/v1/conversations/{cid}/messages").get_json()["messages"]]
        assert any(SECRET in b for b in bodies) and NOTE in bodies, bodies
    finally:
        sweeper.stop()
        Socket.close_all()
        live.stop()


def test_a_mention_lets_him_read_not_take_over(world):
    admin, presale, aftersale, people = world
    ag1, sup, ag2 = people["ag1"], people["sup"], people["ag2"]
    ag1.workspace_open()
    cid = _visitor_asks(admin, presale)
    taken = ag1.post(f"/api/v1/conversations/{cid}/transfer",
                     json={"agent_id": ag1.agent["id"], "accept_over_limit": True})
    assert taken.status_code == 200, taken.get_json()
    assert ag2.get(f"/api/v1/conversations/{cid}").status_code == 404
    asked = ag1.post(f"/api/v1/conversations/{cid}/messages", json={
        "client_msg_id": new_client_id(), "body": "@客服二 帮忙看下", "mode": "internal"})
    assert asked.status_code == 201, asked.get_json()

    # Mentioned, 客服二 reads the chat and answers in it...
    assert ag2.get(f"/api/v1/conversations/{cid}").status_code == 200
    assert SECRET in ag2.get(f"/api/v1/conversations/{cid}/messages").get_data(as_text=True)
    answered = ag2.post(f"/api/v1/conversations/{cid}/messages", json={
        "client_msg_id": new_client_id(), "body": "看过了", "mode": "internal"})
    assert answered.status_code == 201, answered.get_json()
    # ... but takes it over or moves it nowhere, in either language.
    for body in ({"agent_id": ag2.agent["id"], "accept_over_limit": True},
                 {"agent_id": sup.agent["id"]}, {"group_id": aftersale}):
        refused = ag2.post(f"/api/v1/conversations/{cid}/transfer", json=body)
        assert refused.status_code == 403, (body, refused.get_json())
        assert refused.get_json()["error"]["code"] == "forbidden"
    zh = ag2.post(f"/api/v1/conversations/{cid}/transfer", headers={"X-Meiqia-Lang": "zh-CN"},
                  json={"agent_id": ag2.agent["id"], "accept_over_limit": True}).get_json()
    assert zh["error"]["message"] == "您是被 @ 提及才看到这个对话的：可以查看和回复，不能接入或转接"
    now = Conversation.get_by_id(cid)
    assert (now.status, now.handler_id, now.group_id) == ("open", ag1.agent["id"], presale)

    # A mention takes nothing from those whose scope covers the chat anyway.
    sup.workspace_open()
    moved = sup.post(f"/api/v1/conversations/{cid}/transfer",
                     json={"agent_id": sup.agent["id"], "accept_over_limit": True})
    assert moved.status_code == 200, moved.get_json()
    assert Conversation.get_by_id(cid).group_id == presale
