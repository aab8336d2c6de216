"""The agent's side through the REST API: scopes, mentions, transfers, reads,
summary, the customer card, hooks on messages, and channels without reads."""

from __future__ import annotations

import functools
from typing import Any

import pytest

from meiqia.hookspecs import hookimpl
from meiqia.models import Conversation
from meiqia.models import Mention
from meiqia.models import Message
from meiqia.services import messages
from tests.api.test_conversations import start
from tests.api.test_conversations import vpost
from tests.browser import sms_channel
from tests.conftest import close_app
from tests.conftest import make_app
from tests.helpers import ApiClient
from tests.helpers import new_client_id


def online(api, limit=2, **fields):
    return api.online_agent(limit, **fields)


@pytest.fixture
def team(api):
    return api.without_bot()


def test_scope_self_sees_only_his_own_and_the_pool(team):
    li = online(team, email="li@example.com", name="李客服")
    cid = start(team.app, team.team["id"])[2]
    zhao = team.new_agent(email="zhao@example.com", name="赵客服", scope="self")
    assert zhao.get(f"/api/v1/conversations/{cid}").status_code == 404
    assert zhao.get(f"/api/v1/conversations/{cid}/messages").status_code == 404
    for url, body in [(f"/api/v1/conversations/{cid}/messages", {"body": "插话", "client_msg_id": "z-1"}),
                      (f"/api/v1/conversations/{cid}/end", None),
                      (f"/api/v1/conversations/{cid}/transfer", {"agent_id": zhao.agent["id"]})]:
        response = zhao.post(url, json=body)
        assert response.status_code == 404, url
    assert Conversation.get_by_id(cid).status == "open"
    assert Message.select().where(Message.sender_kind == "agent").count() == 0
    lists = zhao.get("/api/v1/conversations").get_json()
    assert lists["mine"] == [] and lists["colleagues"] == []
    # The admin sees it among colleagues' conversations.
    admin_lists = team.get("/api/v1/conversations").get_json()
    assert [c["id"] for c in admin_lists["colleagues"]] == [cid]
    assert li.get("/api/v1/conversations").get_json()["mine"][0]["id"] == cid


def test_mentions_notify_list_under_at_me_until_seen(team):
    li = online(team, email="li@example.com", name="李客服")
    zhao = team.new_agent(email="zhao@example.com", name="赵客服", scope="self",
                          nickname="小赵")
    client, token, cid, _ = start(team.app, team.team["id"])
    hub = team.app.extensions["meiqia.hub"]
    with hub.subscribe([f"agent:{zhao.agent['id']}"]) as sub:
        sent = li.post(f"/api/v1/conversations/{cid}/messages",
                       json={"client_msg_id": new_client_id(), "body": "@小赵 帮忙看下这个退款，@不存在的人", "mode": "internal"})
        assert sent.status_code == 201
        told = [e for _t, e in sub.drain() if e["type"] == "mention"]
    assert told and told[0]["data"]["conversation_id"] == cid and told[0]["data"]["by"] == "李客服"
    assert [m.agent_id for m in Mention.select()] == [zhao.agent["id"]]
    # Mentioned, he may open the conversation outside his scope and sees it under @me.
    assert zhao.get(f"/api/v1/conversations/{cid}").status_code == 200
    assert [c["id"] for c in zhao.get("/api/v1/conversations").get_json()["at_me"]] == [cid]
    seen = zhao.post(f"/api/v1/conversations/{cid}/mentions/seen")
    assert seen.get_json() == {"seen": 1}
    assert zhao.get("/api/v1/conversations").get_json()["at_me"] == []
    # A public reply with @ mentions nobody.
    li.post(f"/api/v1/conversations/{cid}/messages", json={"client_msg_id": new_client_id(), "body": "@小赵 公开"})
    assert Mention.select().count() == 1


def test_unread_counts_and_read_status(team):
    li = online(team)
    client, token, cid, _ = start(team.app, team.team["id"])
    ids = [vpost(client, token, f"/api/v1/widget/conversations/{cid}/messages",
                 json={"client_msg_id": new_client_id(), "body": f"问题{n}"}).get_json()["message"]["id"] for n in range(3)]
    assert li.get("/api/v1/conversations").get_json()["mine"][0]["unread"] == 3
    read = li.post(f"/api/v1/conversations/{cid}/read", json={"up_to": ids[1]})
    assert read.get_json() == {"marked": 2}
    assert li.get("/api/v1/conversations").get_json()["mine"][0]["unread"] == 1
    statuses = [m["status"] for m in li.get(f"/api/v1/conversations/{cid}/messages")
                .get_json()["messages"] if m["sender_kind"] == "visitor"]
    assert statuses == ["read", "read", "sent"]
    reply = li.post(f"/api/v1/conversations/{cid}/messages", json={"client_msg_id": new_client_id(), "body": "好的"}).get_json()
    vpost(client, token, f"/api/v1/widget/conversations/{cid}/read",
          json={"up_to": reply["message"]["id"]})
    assert Message.get_by_id(reply["message"]["id"]).read_at is not None
    bad = li.post(f"/api/v1/conversations/{cid}/read", json={"up_to": "all"})
    assert bad.status_code == 422 and bad.get_json()["error"]["field"] == "up_to"


def test_transfer_to_a_group_and_to_an_agent_with_limit_zero(team):
    li = online(team, limit=1, email="li@example.com", name="李客服")
    group = team.post("/api/v1/groups", json={"name": "售后组"}).get_json()
    wang = online(team, limit=1, email="wang@example.com", name="王客服",
                  groups=[group["id"]])
    supervisor = team.new_agent(email="sup@example.com", name="主管", max_concurrent=0,
                                scope="all")
    supervisor.go_online()  # a transfer goes to someone who is there
    first = start(team.app, team.team["id"])[2]
    second = start(team.app, team.team["id"])[2]
    handlers = {Conversation.get_by_id(c).handler_id for c in (first, second)}
    assert handlers == {li.agent["id"], wang.agent["id"]}
    mine = first if Conversation.get_by_id(first).handler_id == li.agent["id"] else second
    theirs = second if mine == first else first

    # To a group: queued for the group; wang is full, so it waits for him.
    moved = li.post(f"/api/v1/conversations/{mine}/transfer", json={"group_id": group["id"]})
    assert moved.status_code == 200 and moved.get_json()["status"] == "queued"
    assert Conversation.get_by_id(mine).group_id == group["id"]
    third = start(team.app, team.team["id"])[2]  # li is free again: he takes the newcomer
    assert Conversation.get_by_id(third).handler_id == li.agent["id"]
    assert Conversation.get_by_id(mine).status == "queued"  # not li: not in the group
    wang.post(f"/api/v1/conversations/{theirs}/end")
    assert Conversation.get_by_id(mine).handler_id == wang.agent["id"]

    # Limit 0: never assigned automatically, but transfers to him are allowed.
    to_sup = li.post(f"/api/v1/conversations/{third}/transfer",
                     json={"agent_id": supervisor.agent["id"]})
    assert to_sup.status_code == 200
    assert Conversation.get_by_id(third).handler_id == supervisor.agent["id"]
    # Bad targets change nothing.
    for body, field in [({"group_id": 9999}, "group_id"), ({}, "agent_id"),
                        ({"agent_id": 1, "group_id": group["id"]}, "agent_id")]:
        response = supervisor.post(f"/api/v1/conversations/{third}/transfer", json=body)
        assert response.status_code == 422 and response.get_json()["error"]["field"] == field
    assert Conversation.get_by_id(third).handler_id == supervisor.agent["id"]


def test_a_live_chat_is_never_handed_to_an_agent_who_is_not_there(team):
    """The hteam's D7: the transfer list said "Bob · 离线", the transfer went through,
    and the visitor was told "Bob 为您服务" by nobody. A colleague who is offline, or
    online with no workspace open (away), is refused with a 409 naming why, and
    nothing changes; one who is there (online, or invisible, with a workspace) gets
    it; taking a chat oneself needs no workspace (the actor is there)."""
    li = online(team, limit=2, email="li@example.com", name="李客服")
    bob = team.new_agent(email="bob@example.com", name="Bob", max_concurrent=2)  # offline
    away = team.new_agent(email="zhou@example.com", name="周客服", max_concurrent=2)
    assert away.patch(f"/api/v1/agents/{away.agent['id']}",
                      json={"status": "online"}).status_code == 200  # no workspace open
    client, token, cid, _ = start(team.app, team.team["id"])
    assert Conversation.get_by_id(cid).handler_id == li.agent["id"]
    lines_before = Message.select().where(Message.conversation == cid).count()
    url = f"/api/v1/conversations/{cid}/transfer"
    for target in (bob, away):
        refused = li.post(url, json={"agent_id": target.agent["id"]},
                          headers={"X-Meiqia-Lang": "zh-CN"})
        assert refused.status_code == 409, refused.get_json()
        error = refused.get_json()["error"]
        name = target.agent["name"]
        assert error["field"] == "agent_id"
        assert error["message"] == f"{name} 不在线：对话只能转给在线（已打开工作台）的客服"
        assert error["message_en"] == (f"{name} is not online: a chat can only be transferred "
                                       "to an agent with the workspace open")
        assert Conversation.get_by_id(cid).handler_id == li.agent["id"]
    # Nothing was said to the visitor, nothing stored.
    assert Message.select().where(Message.conversation == cid).count() == lines_before
    # Invisible with a workspace open: hidden from routing, not from colleagues.
    away.workspace_open()
    assert away.patch(f"/api/v1/agents/{away.agent['id']}",
                      json={"status": "invisible"}).status_code == 200
    moved = li.post(url, json={"agent_id": away.agent["id"]})
    assert moved.status_code == 200, moved.get_json()
    assert Conversation.get_by_id(cid).handler_id == away.agent["id"]
    # Bob (scope all) takes it himself, offline and with no workspace: allowed.
    team.patch(f"/api/v1/agents/{bob.agent['id']}", json={"scope": "all"})
    taken = bob.post(url, json={"agent_id": bob.agent["id"]})
    assert taken.status_code == 200, taken.get_json()
    assert Conversation.get_by_id(cid).handler_id == bob.agent["id"]
    handovers = [m.body for m in Message.select().where(
        Message.conversation == cid, Message.kind == "event") if m.payload.get("event") == "handover"]
    assert handovers[-2:] == ["周客服 为您服务", "Bob 为您服务"]


def test_a_visitor_out_of_reach_is_a_404_on_each_of_his_routes(team):
    """His card (PATCH) answered 404 while his sidebar lists answered 200 []: for an
    id that does not exist, 0, another team's visitor, one outside the scope."""
    from meiqia.models import Team
    from meiqia.models import Visitor

    online(team)  # his: taken by 李客服, so outside 赵客服's scope
    client, token, cid, _ = start(team.app, team.team["id"], name="刘先生")
    visitor_id = Conversation.get_by_id(cid).visitor_id
    elsewhere = Team.create(name="别的团队")
    foreign = Visitor.create(team=elsewhere, uid="foreign-visitor", name="外人")
    Conversation.create(team=elsewhere, visitor=foreign, status="ended")
    outsider = team.new_agent(email="zhao@example.com", name="赵客服", scope="self")
    for who, vid in ((team, 999999), (team, 0), (team, foreign.id), (outsider, visitor_id)):
        for method, path, body in (("patch", "", {"note": "改掉"}),
                                   ("get", "/conversations", None),
                                   ("get", "/tickets", None)):
            call = getattr(who, method)
            url = f"/api/v1/visitors/{vid}{path}?lang=zh-CN"
            response = call(url, json=body) if body else call(url)
            assert response.status_code == 404, (vid, path, response.get_json())
            assert response.get_json()["error"] == {
                "code": "not_found", "field": None, "message": "没有这个访客",
                "message_en": "no such visitor"}
    # In reach: his lists, as before.
    assert [c["id"] for c in team.get(f"/api/v1/visitors/{visitor_id}/conversations")
            .get_json()] == [cid]
    assert team.get(f"/api/v1/visitors/{visitor_id}/tickets").get_json() == []
    assert Visitor.get_by_id(visitor_id).note in (None, "")


def test_end_twice_summary_tags_and_the_customer_card(team):
    li = online(team)
    client, token, cid, _ = start(team.app, team.team["id"], name="刘先生")
    visitor_id = Conversation.get_by_id(cid).visitor_id
    card = li.patch(f"/api/v1/visitors/{visitor_id}", json={
        "phone": " 13800138000 ", "company": "杭州某某公司", "note": "<b>VIP</b> 客户",
        "tags": ["老客户", "老客户", " 投诉 "]})
    assert card.status_code == 200
    data = card.get_json()
    assert data["phone"] == "13800138000" and data["tags"] == ["投诉", "老客户"]
    assert data["note"] == "<b>VIP</b> 客户"  # stored as typed; pages escape it
    bad = li.patch(f"/api/v1/visitors/{visitor_id}", json={"email": "不是邮箱"})
    assert bad.status_code == 422 and bad.get_json()["error"]["field"] == "email"
    outsider = team.new_agent(email="zhao@example.com", name="赵客服", scope="self")
    assert outsider.patch(f"/api/v1/visitors/{visitor_id}",
                          json={"note": "改掉"}).status_code == 404
    assert li.get(f"/api/v1/conversations/{cid}").get_json()["customer"]["note"] \
        == "<b>VIP</b> 客户"

    assert li.post(f"/api/v1/conversations/{cid}/end").status_code == 200
    again = li.post(f"/api/v1/conversations/{cid}/end")
    assert again.status_code == 409 and "already" in again.get_json()["error"]["message"]
    summary = li.patch(f"/api/v1/conversations/{cid}/summary",
                       json={"summary": "退款已处理", "tags": ["退款", " 退款 ", "售后"]})
    assert summary.get_json() == {"summary": "退款已处理", "tags": ["售后", "退款"]}
    late = li.post(f"/api/v1/conversations/{cid}/messages", json={"client_msg_id": new_client_id(), "body": "补一句"})
    assert late.status_code == 409
    note = li.post(f"/api/v1/conversations/{cid}/messages",
                   json={"client_msg_id": new_client_id(), "body": "事后备注", "mode": "internal"})
    assert note.status_code == 201


def test_anonymous_reply_needs_a_handler_and_modes_are_checked(team):
    client, token, cid, _ = start(team.app, team.team["id"])  # nobody online: no handler
    anon = team.post(f"/api/v1/conversations/{cid}/messages",
                     json={"client_msg_id": new_client_id(), "body": "匿名", "mode": "anonymous"})
    assert anon.status_code == 422 and anon.get_json()["error"]["field"] == "mode"
    wrong = team.post(f"/api/v1/conversations/{cid}/messages",
                      json={"client_msg_id": new_client_id(), "body": "x", "mode": "whisper"})
    assert wrong.status_code == 422 and wrong.get_json()["error"]["field"] == "mode"
    assert Message.select().where(Message.sender_kind == "agent").count() == 0


class Guard:
    """A plugin: redacts phone numbers in agent messages, refuses a banned word."""

    @hookimpl
    def before_message_saved(self, message: dict, conversation: Any) -> dict | None:
        if "违禁词" in message["body"]:
            return {"reject": "contains a banned word"}
        if message["sender_kind"] == "agent" and "13800138000" in message["body"]:
            return {"body": message["body"].replace("13800138000", "138****8000")}
        return None


@pytest.fixture
def guarded(tmp_path):
    app = make_app(tmp_path, plugins=(Guard(), sms_channel))
    with app.app_context():
        yield ApiClient.registered(app).without_bot()
    close_app(app)


def test_before_message_saved_redacts_and_rejects(guarded):
    li = online(guarded)
    client, token, cid, _ = start(guarded.app, guarded.team["id"])
    refused = vpost(client, token, f"/api/v1/widget/conversations/{cid}/messages",
                    json={"body": "这里有违禁词", "client_msg_id": "b1"})
    assert refused.status_code == 422 and "banned" in refused.get_json()["error"]["message"]
    assert Message.select().where(Message.sender_kind == "visitor").count() == 0
    sent = li.post(f"/api/v1/conversations/{cid}/messages", json={"client_msg_id": new_client_id(), "body": "请拨 13800138000"})
    assert sent.get_json()["message"]["body"] == "请拨 138****8000"
    assert Message.get(Message.sender_kind == "agent").body == "请拨 138****8000"


def test_a_channel_that_cannot_report_reads(guarded):
    li = online(guarded)
    client, token, cid, _ = start(guarded.app, guarded.team["id"])
    Conversation.update(channel="sms").where(Conversation.id == cid).execute()
    reply = li.post(f"/api/v1/conversations/{cid}/messages", json={"client_msg_id": new_client_id(), "body": "短信回复"})
    mid = reply.get_json()["message"]["id"]
    conversation = Conversation.get_by_id(cid)
    messages.mark_delivered(conversation, [mid])
    listed = li.get(f"/api/v1/conversations/{cid}/messages").get_json()["messages"]
    assert next(m for m in listed if m["id"] == mid)["status"] == "delivered_read_unknown"
    Conversation.update(channel="web").where(Conversation.id == cid).execute()
    listed = li.get(f"/api/v1/conversations/{cid}/messages").get_json()["messages"]
    assert next(m for m in listed if m["id"] == mid)["status"] == "delivered"


def test_an_image_message_must_point_at_an_image_upload(team):
    """Agent and visitor paths: a file upload (any type, stored as a download) may not
    be sent as an image (which the chat would show inline)."""
    from tests.api.test_uploads import CONTENT_TYPE
    from tests.api.test_uploads import PNG
    from tests.api.test_uploads import multipart

    li = online(team)
    client, token, cid, _ = start(team.app, team.team["id"])
    html = multipart(("file", "报价.html", b"<script>alert(1)</script>"))
    png = multipart(("file", "截图.png", PNG))
    as_agent = li.post(f"/api/v1/conversations/{cid}/uploads?kind=file", data=html,
                       content_type=CONTENT_TYPE).get_json()["key"]
    as_visitor = client.post(f"/api/v1/widget/conversations/{cid}/uploads?kind=file",
                             data=html, content_type=CONTENT_TYPE,
                             headers={"X-Visitor-Token": token}).get_json()["key"]
    image = client.post(f"/api/v1/widget/conversations/{cid}/uploads?kind=image", data=png,
                        content_type=CONTENT_TYPE,
                        headers={"X-Visitor-Token": token}).get_json()["key"]

    refused = li.post(f"/api/v1/conversations/{cid}/messages",
                      json={"client_msg_id": new_client_id(), "body": "报价.html", "kind": "image", "attachment": as_agent})
    assert refused.status_code == 422
    error = refused.get_json()["error"]
    assert error["field"] == "attachment" and "not an image" in error["message"]
    refused = vpost(client, token, f"/api/v1/widget/conversations/{cid}/messages",
                    json={"client_msg_id": new_client_id(), "body": "报价.html", "kind": "image", "attachment": as_visitor})
    assert refused.status_code == 422
    assert refused.get_json()["error"]["field"] == "attachment"
    assert Message.select().where(Message.kind == "image").count() == 0

    # The same uploads go as files, and a real image as an image.
    assert li.post(f"/api/v1/conversations/{cid}/messages", json={"client_msg_id": new_client_id(),
        "body": "报价.html", "kind": "file", "attachment": as_agent}).status_code == 201
    assert vpost(client, token, f"/api/v1/widget/conversations/{cid}/messages", json={"client_msg_id": new_client_id(),
        "body": "截图.png", "kind": "image", "attachment": image}).status_code == 201
    assert li.post(f"/api/v1/conversations/{cid}/messages", json={"client_msg_id": new_client_id(),
        "body": "截图.png", "kind": "image", "attachment": image}).status_code == 201


def mentioned_in_note(team, cid: int, body: str) -> set[int]:
    """The agents an internal note with ``body`` mentions."""
    sent = team.post(f"/api/v1/conversations/{cid}/messages",
                     json={"client_msg_id": new_client_id(), "body": body, "mode": "internal"})
    assert sent.status_code == 201, sent.get_json()
    mid = sent.get_json()["message"]["id"]
    return {m.agent_id for m in Mention.select().where(Mention.message_id == mid)}


def test_mentions_match_real_names_with_spaces_and_text_right_after(team):
    """The workspace inserts ``@{name} ``; names may hold spaces, and Chinese runs on
    after a name with no space. Longest name first; addresses are not mentions."""
    li = online(team, email="li@example.com", name="李客服")
    li2 = team.new_agent(email="li2@example.com", name="李客服2")
    wei = team.new_agent(email="wei@example.com", name="Li Wei")
    weiming = team.new_agent(email="weiming@example.com", name="Li Weiming")
    zhao = team.new_agent(email="zhao@example.com", name="赵敏", nickname="小赵")
    _client, _token, cid, _ = start(team.app, team.team["id"])

    mentioned = functools.partial(mentioned_in_note, team, cid)

    assert mentioned("好的@李客服看一下") == {li.agent["id"]}
    assert mentioned("@李客服2号单子") == {li2.agent["id"]}
    assert mentioned("@Li Wei please check the refund") == {wei.agent["id"]}
    assert mentioned("@li weiming, and @LI WEI.") == {weiming.agent["id"], wei.agent["id"]}
    assert mentioned("请@小赵跟进，抄送 @赵敏") == {zhao.agent["id"]}
    assert mentioned("@Li Weixin is nobody") == set()
    assert mentioned("邮件发到 service@李客服.cn 了") == set()
    assert mentioned("@王管理 自己提到自己不算") == set()


def test_a_full_width_or_small_at_sign_mentions_as_the_ascii_one_does(team):
    """Found from docs/protocol.md: a Chinese IME in full-width mode types ``＠``
    (U+FF20); the names after it were folded, but a note had to hold an ASCII ``@``
    before anyone was looked for, so "＠bob 看一下" mentioned nobody. NFKC folds the
    full-width ``＠`` and the small ``﹫`` (U+FE6B) to ``@``: each is an at-sign."""
    online(team, email="admin2@example.com", name="王管理2")
    bob = team.new_agent(email="bob@example.com", name="Bob")
    li = team.new_agent(email="li@example.com", name="李客服")
    _client, _token, cid, _ = start(team.app, team.team["id"])

    mentioned = functools.partial(mentioned_in_note, team, cid)

    for body in ("＠bob 看一下", "＠ＢＯＢ 看一下", "＠Ｂｏｂ 看一下", "@ＢＯＢ", "﹫bob 看一下",
                 "﹫Ｂｏｂ"):
        assert mentioned(body) == {bob.agent["id"]}, body
    for body in ("＠李客服看一下", "好的，＠李客服", "﹫李客服 看一下"):
        assert mentioned(body) == {li.agent["id"]}, body
    assert mentioned("＠李客服 和 ＠Bob") == {li.agent["id"], bob.agent["id"]}
    # An address is no mention, whichever at-sign it is written with.
    assert mentioned("邮件发到 service＠李客服.cn 了") == set()
    assert mentioned("bob＠example.com") == set()
