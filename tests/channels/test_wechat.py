"""The WeChat Official Account channel end to end: callbacks built the way WeChat
builds them (signed; AES-encrypted in safe mode) go to the real server URL of a
real app, and replies reach a local stand-in of the API
(``tests/wechat_standin.py``, the documented wire format), on SQLite and
PostgreSQL.

Issue 16, "Done when" (WeChat half): a user's message is answered by the bot,
"人工" hands it to an agent, the agent's reply is posted to the API, the
conversation is in history under channel wechat, a failed delivery is retried
and shown and nothing is lost; plus the expired token, the 48-hour window and
the unsubscribe state. ``FLOW`` prints the flow as it ran (``pytest -s``).
"""

from __future__ import annotations

import contextlib
import datetime
import functools
from collections.abc import Iterator
from typing import Any

import pytest

from meiqia.channels import registry
from meiqia.models import ChannelDelivery
from meiqia.models import ChannelThread
from meiqia.models import Conversation
from meiqia.models import Message
from tests.conftest import close_app
from tests.conftest import make_app
from tests.conftest import truncate_all
from tests.helpers import ApiClient
from tests.wechat_standin import WeChatSide
from tests.wechat_standin import WeChatStandIn

TOKEN = "meiqiaToken2026"
APP_ID = "wx1234567890abcdef"
APP_SECRET = "0123456789abcdef0123456789abcdef"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
OPENID = "oAbCdEfGhIjKlMnOpQrStUvWxYz1"
PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06"
       b"\x00\x00\x00\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01"
       b"\x00\x05\x18\xd8N\x00\x00\x00\x00IEND\xaeB`\x82")


@pytest.fixture
def standin() -> Iterator[WeChatStandIn]:
    server = WeChatStandIn(APP_ID, APP_SECRET)
    yield server
    server.close()


@pytest.fixture(params=["sqlite", "postgres"])
def wx_app(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Any]:
    extra = {"OUTBOUND_ALLOW_PRIVATE": True,  # the stand-in listens on 127.0.0.1
             "CHANNEL_DELIVERY_RETRY": (2, (1, 1))}
    if request.param == "postgres":
        url = request.getfixturevalue("pg_database_url")
        app = make_app(tmp_path, DATABASE_URL=url, **extra)
        truncate_all(url)
    else:
        app = make_app(tmp_path, **extra)
    with app.app_context():
        yield app
    close_app(app)


def configure(app: Any, team_id: int, standin: WeChatStandIn, mode: str = "safe",
              **more: Any) -> None:
    from meiqia.db import connection
    from meiqia.models import Agent
    from meiqia.services import channels as channel_admin

    config = {"app_id": APP_ID, "app_secret": APP_SECRET, "token": TOKEN,
              "encoding_aes_key": AES_KEY, "encryption_mode": mode,
              "api_base_url": standin.base_url, **more}
    with app.app_context(), connection():
        admin = Agent.select().where(Agent.team == team_id, Agent.role == "admin").first()
        channel_admin.configure(admin, "wechat", {"enabled": True, "config": config})


@pytest.fixture
def wx(wx_app: Any, standin: WeChatStandIn) -> ApiClient:
    api = ApiClient.registered(wx_app)
    configure(wx_app, api.team["id"], standin)
    return api


@contextlib.contextmanager
def wechat_on_a_job_queue(tmp_path: Any, standin: WeChatStandIn,
                          **config: Any) -> Iterator[tuple[Any, ApiClient, WeChat]]:
    """An app whose jobs run on the embedded queue (not inline), its team's WeChat
    channel pointed at ``standin``: ``(app, admin, wechat)`` inside the app's
    context; the app is closed after."""
    app = make_app(tmp_path, OUTBOUND_ALLOW_PRIVATE=True, JOBS_INLINE=False, **config)
    try:
        with app.app_context():
            api = ApiClient.registered(app)
            configure(app, api.team["id"], standin)
            yield app, api, WeChat(api)
    finally:
        close_app(app)


class WeChat:
    """WeChat's servers: they POST signed (and encrypted) callbacks to the URL."""

    def __init__(self, api: ApiClient, encrypted: bool = True) -> None:
        self.api = api
        self.client = api.app.test_client()  # no cookies: WeChat has no session
        self.side = WeChatSide(TOKEN, APP_ID, AES_KEY)
        self.encrypted = encrypted
        self.url = f"/channels/wechat/{api.team['id']}/"

    def send(self, xml_text: str, openid: str = OPENID, **kw: Any) -> Any:
        query, body = self.side.post(xml_text, self.encrypted, openid, **kw)
        return self.client.post(f"{self.url}?{query}", data=body,
                                    content_type="text/xml")

    def text(self, content: str, openid: str = OPENID, msg_id: str | None = None) -> Any:
        response = self.send(self.side.text(openid, content, msg_id), openid)
        assert response.status_code == 200 and response.data == b"success", response.data
        return response


def conversation_of(openid: str = OPENID) -> Conversation:
    from meiqia.models import ChannelVisitor

    visitor = ChannelVisitor.get(ChannelVisitor.external_user_id == openid).visitor_id
    return (Conversation.select().where(Conversation.visitor == visitor)
            .order_by(Conversation.id.desc()).get())


def deliveries(cid: int) -> list[ChannelDelivery]:
    return list(ChannelDelivery.select().where(ChannelDelivery.conversation == cid)
                .order_by(ChannelDelivery.id))


def shift_last_inbound(cid: int, hours: int) -> None:
    thread = ChannelThread.get(ChannelThread.conversation == cid)
    ChannelThread.update(
        last_inbound_at=thread.last_inbound_at + datetime.timedelta(hours=hours)).where(
        ChannelThread.conversation == cid).execute()


def flow(line: str) -> None:
    print(f"FLOW {line}")


# --- the server URL ----------------------------------------------------------------------


def test_the_console_url_check_and_refusals(wx: ApiClient) -> None:
    wechat = WeChat(wx)
    good = wechat.side.signed(echostr="4937158276341")
    from urllib.parse import urlencode

    answer = wx.client.get(f"{wechat.url}?{urlencode(good)}")
    assert answer.status_code == 200 and answer.data == b"4937158276341"
    wrong = {**good, "signature": "f" * 40}
    assert wx.client.get(f"{wechat.url}?{urlencode(wrong)}").status_code == 403
    # Another team's id, a team that has not enabled it: 404, nothing said.
    assert wx.client.get(f"/channels/wechat/999/?{urlencode(good)}").status_code == 404
    assert wx.client.get(f"/channels/wechat/x/?{urlencode(good)}").status_code == 404
    # Plaintext in safe mode; a bad body; an XXE inside a valid encrypted message.
    wechat.encrypted = False
    assert wechat.send(wechat.side.text(OPENID, "hi")).status_code == 403
    wechat.encrypted = True
    query, _ = wechat.side.post("<xml/>", True)
    assert wx.client.post(f"{wechat.url}?{query}", data=b"<xml><a>",
                          content_type="text/xml").status_code == 400
    xxe = ('<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
           f"<xml><FromUserName>{OPENID}</FromUserName><MsgType>text</MsgType>"
           "<Content>&x;</Content><MsgId>1</MsgId><CreateTime>1</CreateTime></xml>")
    refused = wechat.send(xxe)
    assert refused.status_code == 400 and b"DTD" in refused.data
    assert Message.select().where(Message.sender_kind == "visitor").count() == 0


def test_a_replayed_callback_is_stored_once(wx: ApiClient, standin: WeChatStandIn) -> None:
    wechat = WeChat(wx)
    xml_text = wechat.side.text(OPENID, "你好", msg_id="777")
    query, body = wechat.side.post(xml_text, True, OPENID)
    for _ in range(2):  # the very same request, twice (a replay / WeChat's resend)
        answer = wx.client.post(f"{wechat.url}?{query}", data=body, content_type="text/xml")
        assert answer.status_code == 200 and answer.data == b"success"
    # The same message with a fresh nonce and signature (WeChat's own retry):
    wechat.text("你好", msg_id="777")
    visitor_lines = Message.select().where(Message.sender_kind == "visitor")
    assert [m.body for m in visitor_lines] == ["你好"]
    # Too old a timestamp: refused before anything is read.
    import time

    old = wechat.send(wechat.side.text(OPENID, "late"), timestamp=int(time.time()) - 3600)
    assert old.status_code == 403


def test_plain_mode_a_captured_signature_cannot_carry_another_body(
        wx: ApiClient, standin: WeChatStandIn) -> None:
    """In plain mode the signature covers token, timestamp and nonce, not the
    body: whoever captured one request could replay its query with a body of his
    own within the time window. The nonce book refuses the second use."""
    configure(wx.app, wx.team["id"], standin, mode="plain")
    wechat = WeChat(wx, encrypted=False)
    query, body = wechat.side.post(wechat.side.text(OPENID, "真的消息"), False, OPENID)
    first = wechat.client.post(f"{wechat.url}?{query}", data=body, content_type="text/xml")
    assert first.data == b"success"
    forged = wechat.side.text("oAttacker", "伪造的消息").encode()
    second = wechat.client.post(f"{wechat.url}?{query}", data=forged,
                                content_type="text/xml")
    assert second.status_code == 200  # told nothing
    bodies = [m.body for m in Message.select().where(Message.sender_kind == "visitor")]
    assert bodies == ["真的消息"]


def test_the_same_callback_twice_at_the_same_moment_is_stored_once(
        wx: ApiClient, standin: WeChatStandIn) -> None:
    """WeChat resends a callback it got no answer to in 5 s; the resend may
    arrive while the first is still being handled (another worker)."""
    import threading

    wechat = WeChat(wx)
    wechat.text("先打个招呼")  # the visitor exists
    for round_ in range(3):
        msg_id = f"9{round_}00"
        xml_text = wechat.side.text(OPENID, f"同时到达 {round_}", msg_id=msg_id)
        requests = [wechat.side.post(xml_text, True, OPENID) for _ in range(2)]
        barrier = threading.Barrier(2)
        answers: list[Any] = []

        def post(query: str, body: bytes, barrier: Any = barrier,
                 answers: list[Any] = answers) -> None:
            client = wx.app.test_client()
            barrier.wait()
            answers.append(client.post(f"{wechat.url}?{query}", data=body,
                                       content_type="text/xml"))

        threads = [threading.Thread(target=post, args=r) for r in requests]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert [a.data for a in answers] == [b"success", b"success"]
        stored = Message.select().where(Message.body == f"同时到达 {round_}").count()
        assert stored == 1, f"round {round_}: stored {stored} times"
    # One delivery per visible message, each sent once: nothing answered twice.
    rows = list(ChannelDelivery.select())
    assert len({d.message_id for d in rows}) == len(rows)
    assert {d.status for d in rows} == {"sent"} and len(standin.sent) == len(rows)


# --- the "Done when" -------------------------------------------------------------


def test_bot_answers_human_takes_over_agent_reply_reaches_the_api(
        wx: ApiClient, standin: WeChatStandIn) -> None:
    wechat = WeChat(wx)
    welcome_line = "欢迎关注！我是智能客服，回复「人工」转人工客服。"
    patched = wx.patch("/api/v1/team", json={"settings": {"welcome_message": welcome_line}})
    assert patched.status_code == 200, patched.get_json()
    assert wechat.send(wechat.side.event(OPENID, "subscribe")).data == b"success"
    flow(f"WeChat → POST /channels/wechat/{wx.team['id']}/ subscribe (safe mode, AES) "
         "→ success")
    welcome = standin.texts_to(OPENID)
    assert welcome == [welcome_line], "the welcome line went to custom/send"
    flow(f"custom/send ← {welcome!r}")

    entry = wx.post("/api/v1/knowledge", json={
        "key": "office-hours", "questions": ["你们几点上班", "客服工作时间"],
        "answer": "我们的客服时间是每天 9:00-21:00。"})
    assert entry.status_code == 201, entry.get_json()
    wechat.text("你们几点上班？")
    conversation = conversation_of()
    assert conversation.channel == "wechat"
    bot_lines = [m.body for m in Message.select().where(
        Message.conversation == conversation.id, Message.sender_kind == "bot")]
    assert bot_lines[-1] == "我们的客服时间是每天 9:00-21:00。"
    assert standin.texts_to(OPENID)[-1] == bot_lines[-1]
    flow(f"WeChat → text '你们几点上班？' → conversation {conversation.id} "
         f"(channel={conversation.channel}, status={conversation.status})")
    flow(f"bot → custom/send ← {bot_lines[-1]!r}")

    agent = wx.online_agent()
    wechat.text("人工")
    conversation = Conversation.get_by_id(conversation.id)
    assert conversation.status == "open" and conversation.handler_id == agent.agent["id"]
    flow(f"WeChat → text '人工' → handed to agent {agent.agent['id']} "
         f"(status={conversation.status})")
    reply = agent.post(f"/api/v1/conversations/{conversation.id}/messages",
                       json={"body": "您好，我是客服，请问有什么可以帮您？",
                             "client_msg_id": "wx-r1"})
    assert reply.status_code == 201, reply.get_json()
    last = standin.texts_to(OPENID)[-1]
    assert last.endswith("：您好，我是客服，请问有什么可以帮您？"), last
    assert last.startswith(agent.agent["display_name"])
    flow(f"agent reply → custom/send ← {last!r}")
    states = [d.status for d in deliveries(conversation.id)]
    assert states and set(states) == {"sent"}, states
    flow(f"deliveries: {states}")

    # An image from the user: fetched by MediaId, stored through the upload checks.
    standin.media["MEDIA_1"] = (PNG, "image/png", "MEDIA_1.png")
    wechat.send(wechat.side.image(OPENID, "MEDIA_1"))
    image = Message.select().where(Message.conversation == conversation.id,
                                   Message.kind == "image").get()
    assert image.sender_kind == "visitor"
    flow(f"WeChat → image MEDIA_1 → media/get → message {image.id} kind=image")

    # History: the conversation is listed under channel wechat, a widget one is not.
    from tests.api.test_conversations import start

    _client, _token, web_cid, _ = start(wx.app, wx.team["id"])
    agent.post(f"/api/v1/conversations/{conversation.id}/end", json={})
    ended = wx.post(f"/api/v1/conversations/{web_cid}/end", json={})
    assert ended.status_code == 200, ended.get_json()
    everything = wx.get("/api/v1/history").get_json()
    everything = everything.get("conversations", everything.get("items", []))
    by_id = {c["id"]: c["channel"] for c in everything}
    assert by_id[conversation.id] == "wechat" and by_id[web_cid] == "web", by_id
    found = wx.get("/api/v1/history", query_string={"channel": "wechat"})
    assert found.status_code == 200, found.get_json()
    listed = found.get_json()
    items = listed.get("conversations", listed.get("items", []))
    ids = [c["id"] for c in items]
    assert conversation.id in ids and web_cid not in ids, listed
    assert {c["channel"] for c in items} == {"wechat"}, items
    flow(f"history?channel=wechat → {ids}")


def test_a_failed_call_is_retried_and_shown_and_nothing_is_lost(
        wx: ApiClient, standin: WeChatStandIn) -> None:
    wechat = WeChat(wx)
    agent = wx.online_agent()
    wechat.text("人工")
    conversation = conversation_of()
    assert conversation.handler_id == agent.agent["id"]

    standin.fail_next(-1)  # "system error" once: the job's retry sends it
    agent.post(f"/api/v1/conversations/{conversation.id}/messages",
               json={"body": "第一条回复", "client_msg_id": "f1"})
    first = deliveries(conversation.id)[-1]
    assert (first.status, first.attempts) == ("sent", 2)
    assert standin.texts_to(OPENID)[-1].endswith("第一条回复")
    flow("custom/send errcode -1 once → retried → sent (attempts=2)")

    standin.fail_next(None, status=500, times=3)  # every attempt: HTTP 500
    agent.post(f"/api/v1/conversations/{conversation.id}/messages",
               json={"body": "第二条回复", "client_msg_id": "f2"})
    failed = deliveries(conversation.id)[-1]
    assert failed.status == "failed" and "HTTP 500" in failed.last_error
    assert not any(t.endswith("第二条回复") for t in standin.texts_to(OPENID))
    shown = agent.get(f"/api/v1/conversations/{conversation.id}/deliveries").get_json()
    assert shown["deliveries"][-1]["status"] == "failed"
    assert "HTTP 500" in shown["deliveries"][-1]["reason"]
    flow(f"custom/send HTTP 500 ×3 → failed, shown: {shown['deliveries'][-1]['reason']!r}")
    again = agent.post(f"/api/v1/channel-deliveries/{failed.id}/retry", json={})
    assert again.status_code == 200, again.get_json()
    assert ChannelDelivery.get_by_id(failed.id).status == "sent"
    assert standin.texts_to(OPENID)[-1].endswith("第二条回复")
    assert Message.select().where(Message.body == "第二条回复").count() == 1
    flow("retry by hand → sent; the message was kept all along")


def test_an_expired_token_is_fetched_again_once(wx: ApiClient,
                                                standin: WeChatStandIn) -> None:
    wechat = WeChat(wx)
    wechat.text("你好")
    fetched = standin.token_requests
    assert fetched == 1, "one token for the welcome line and the bot's answer"
    standin.expire_tokens()  # the next call answers 42001
    agent = wx.online_agent()
    wechat.text("人工")
    conversation = conversation_of()
    agent.post(f"/api/v1/conversations/{conversation.id}/messages",
               json={"body": "token 过期后的回复", "client_msg_id": "t1"})
    assert standin.texts_to(OPENID)[-1].endswith("token 过期后的回复")
    assert standin.token_requests == fetched + 1
    assert any(outcome == "errcode 42001" for _p, outcome, _b in standin.calls)
    assert {d.status for d in deliveries(conversation.id)} == {"sent"}
    host = registry.make_host(wx.team["id"], "wechat")
    assert host.state.get("access_token")["token"] in standin.tokens
    flow("custom/send errcode 42001 → /cgi-bin/token again → resent → sent")


def test_the_48_hour_window(wx: ApiClient, standin: WeChatStandIn) -> None:
    wechat = WeChat(wx)
    agent = wx.online_agent()
    wechat.text("人工")
    conversation = conversation_of()
    # The user's last message was 49 hours ago.
    shift_last_inbound(conversation.id, -49)
    sent_before = len(standin.sent)
    agent.post(f"/api/v1/conversations/{conversation.id}/messages",
               json={"body": "两天后的回复", "client_msg_id": "w1"})
    late = deliveries(conversation.id)[-1]
    assert late.status == "failed" and late.attempts == 1  # no retries: they cannot help
    assert "超过48小时回复时限" in late.last_error
    assert "the 48-hour reply window has passed" in late.last_error
    assert len(standin.sent) == sent_before
    flow(f"49 h after the last message → failed without calling the API: "
         f"{late.last_error[:60]!r}…")
    # WeChat's own verdict (errcode 45015), for a window we thought open.
    shift_last_inbound(conversation.id, +49)
    standin.fail_next(45015)
    agent.post(f"/api/v1/conversations/{conversation.id}/messages",
               json={"body": "窗口已关", "client_msg_id": "w2"})
    closed = deliveries(conversation.id)[-1]
    assert closed.status == "failed" and closed.attempts == 1
    assert "超过48小时回复时限" in closed.last_error
    # The user writes again: the window is open, the agent retries by hand.
    wechat.text("我回来了")
    agent.post(f"/api/v1/channel-deliveries/{late.id}/retry", json={})
    assert ChannelDelivery.get_by_id(late.id).status == "sent"
    assert standin.texts_to(OPENID)[-1].endswith("两天后的回复")
    flow("the user wrote again → retry by hand → sent")


def test_unsubscribe_marks_the_user_and_subscribe_clears_it(
        wx: ApiClient, standin: WeChatStandIn) -> None:
    wechat = WeChat(wx)
    agent = wx.online_agent()
    wechat.text("人工")
    conversation = conversation_of()
    assert wechat.send(wechat.side.event(OPENID, "unsubscribe")).data == b"success"
    events = Message.select().where(Message.conversation == conversation.id,
                                    Message.kind == "event")
    assert any((m.payload or {}).get("channel_event") == "unsubscribe" for m in events)
    agent.post(f"/api/v1/conversations/{conversation.id}/messages",
               json={"body": "还在吗", "client_msg_id": "u1"})
    gone = deliveries(conversation.id)[-1]
    assert gone.status == "failed" and "unsubscribed" in gone.last_error
    assert wechat.send(wechat.side.event(OPENID, "subscribe")).data == b"success"
    agent.post(f"/api/v1/channel-deliveries/{gone.id}/retry", json={})
    assert ChannelDelivery.get_by_id(gone.id).status == "sent"


def test_plain_mode_and_the_test_connection_button(wx: ApiClient,
                                                   standin: WeChatStandIn) -> None:
    configure(wx.app, wx.team["id"], standin, mode="plain")
    wechat = WeChat(wx, encrypted=False)
    wechat.text("明文模式")
    assert Message.select().where(Message.body == "明文模式").count() == 1
    zh = {"X-Meiqia-Lang": "zh-CN"}  # the Channels page of a Chinese admin
    ok = wx.post("/api/v1/channels/wechat/test", json={}, headers=zh)
    assert ok.status_code == 200 and ok.get_json()["ok"] is True, ok.get_json()
    assert ok.get_json()["message"] == f"已连接微信接口（AppID {APP_ID}）", ok.get_json()
    # docs/plugins.md: `{}` tests the stored settings; no body at all is a 400 saying so.
    bare = wx.post("/api/v1/channels/wechat/test")
    error = bare.get_json()["error"]
    assert bare.status_code == 400 and error.get("message_en", error["message"]) == \
        "send a JSON body with Content-Type: application/json", error
    # Settings typed into the form, not saved yet: tested with their own token.
    bad = wx.post("/api/v1/channels/wechat/test", json={"config": {
        "app_id": APP_ID, "app_secret": "not-the-secret", "token": TOKEN,
        "encryption_mode": "plain", "api_base_url": standin.base_url}}, headers=zh)
    assert bad.get_json()["ok"] is False and "40125" in bad.get_json()["message"]
    # In the admin's language only (test_the_test_connection_answer_is_in_the_admins_...).
    assert bad.get_json()["message"] == "微信接口错误 40125：AppSecret 无效", bad.get_json()
    # WeChat stops taking the token (the secret was reset in its console).
    standin.app_secret = "changed-in-the-console"
    standin.expire_tokens()
    bad = wx.post("/api/v1/channels/wechat/test", json={})
    assert "40125" in str(bad.get_json()), bad.get_json()


def test_an_agents_image_is_uploaded_and_sent_a_file_is_refused_clearly(
        wx: ApiClient, standin: WeChatStandIn) -> None:
    import io

    wechat = WeChat(wx)
    agent = wx.online_agent()
    wechat.text("人工")
    conversation = conversation_of()
    sent = agent.client.post(f"/api/v1/conversations/{conversation.id}/uploads?kind=image",
                             headers={"X-CSRF-Token": agent.csrf},
                             data={"file": (io.BytesIO(PNG), "截图.png")},
                             content_type="multipart/form-data")
    assert sent.status_code == 201, sent.get_json()
    posted = agent.post(f"/api/v1/conversations/{conversation.id}/messages",
                        json={"kind": "image", "attachment": sent.get_json()["key"], "body": "截图.png",
                              "client_msg_id": "img-1"})
    assert posted.status_code == 201, posted.get_json()
    assert standin.images_to(OPENID) == [PNG]  # media/upload, then custom/send image
    flow("agent image → media/upload → custom/send msgtype=image")
    doc = agent.client.post(f"/api/v1/conversations/{conversation.id}/uploads?kind=file",
                            headers={"X-CSRF-Token": agent.csrf},
                            data={"file": (io.BytesIO(b"hello"), "说明.txt")},
                            content_type="multipart/form-data")
    assert doc.status_code == 201, doc.get_json()
    posted = agent.post(f"/api/v1/conversations/{conversation.id}/messages",
                        json={"kind": "file", "attachment": doc.get_json()["key"], "body": "说明.txt",
                              "client_msg_id": "file-1"})
    assert posted.status_code == 201, posted.get_json()
    refused = deliveries(conversation.id)[-1]
    assert refused.status == "failed" and "不能发送文件" in refused.last_error
    assert "说明.txt" in refused.last_error


def test_what_cannot_be_stored_is_answered_without_a_resend_loop(
        wx: ApiClient, standin: WeChatStandIn) -> None:
    wechat = WeChat(wx)
    # An image whose MediaId WeChat no longer has (40007): agents get a line (after
    # the one saying it is being fetched; the fetch job runs inline here).
    answer = wechat.send(wechat.side.image(OPENID, "EXPIRED_MEDIA"))
    assert answer.status_code == 200 and answer.data == b"success"
    from meiqia.channels.wechat.views import IMAGE_GONE

    line = Message.select().where(Message.sender_kind == "visitor").order_by(
        Message.id.desc()).first()
    assert line.body.startswith(IMAGE_GONE)
    assert line.body.endswith("http://mmbiz.qpic.cn/EXPIRED_MEDIA")  # the PicUrl
    # An empty text (nothing to store): success, so WeChat does not resend it.
    assert wechat.send(wechat.side.text(OPENID, " ")).data == b"success"
    assert Message.select().where(Message.sender_kind == "visitor").count() == 2
    # Junk where WeChat puts numbers: stored (the raw MsgId is the id), never a 500.
    junk = (f"<xml><ToUserName>gh</ToUserName><FromUserName>{OPENID}</FromUserName>"
            "<CreateTime>soon</CreateTime><MsgType>text</MsgType>"
            "<Content>奇怪的编号</Content><MsgId>not-a-number</MsgId></xml>")
    assert wechat.send(junk).data == b"success"
    assert Message.select().where(Message.body == "奇怪的编号").count() == 1
    # A body over the limit: 413 before it is read.
    query, _ = wechat.side.post("<xml/>", True, OPENID)
    from meiqia.channels.wechat import xml as wechat_xml

    big = b"<xml>" + b" " * wechat_xml.MAX_BODY + b"</xml>"
    huge = wechat.client.post(f"{wechat.url}?{query}", data=big, content_type="text/xml")
    assert huge.status_code == 413


def test_the_admin_form_validates_and_never_shows_the_secrets(
        wx: ApiClient, standin: WeChatStandIn) -> None:
    listed = wx.get("/api/v1/channels/wechat")
    assert listed.status_code == 200, listed.get_json()
    text = listed.get_data(as_text=True)
    for secret in (APP_SECRET, TOKEN, AES_KEY):
        assert secret not in text
    bad = wx.put("/api/v1/channels/wechat", json={"config": {
        "app_id": APP_ID, "app_secret": "********", "token": "has spaces",
        "encryption_mode": "safe", "api_base_url": standin.base_url}})
    assert bad.status_code == 422 and bad.get_json()["error"]["field"].endswith("token")
    mode = wx.put("/api/v1/channels/wechat", json={"config": {
        "app_id": APP_ID, "app_secret": "********", "token": "********",
        "encryption_mode": "sometimes", "api_base_url": standin.base_url}})
    assert mode.status_code == 422 and mode.get_json()["error"]["field"] == \
        "config.encryption_mode"
    # Safe mode without the AES key cannot be saved: every message would be refused.
    for mode in ("safe", "compatible"):
        unsafe = wx.put("/api/v1/channels/wechat", json={"config": {
            "app_id": APP_ID, "app_secret": "********", "token": "********",
            "encoding_aes_key": "", "encryption_mode": mode,
            "api_base_url": standin.base_url}})
        assert unsafe.status_code == 422, unsafe.get_json()
        assert unsafe.get_json()["error"]["field"] == "config.encoding_aes_key"
    # Nor tested: "test connection" says what is missing.
    no_key = wx.post("/api/v1/channels/wechat/test", json={"config": {
        "app_id": APP_ID, "app_secret": "********", "token": "********",
        "encoding_aes_key": "", "encryption_mode": "safe",
        "api_base_url": standin.base_url}})
    assert "EncodingAESKey" in str(no_key.get_json()), no_key.get_json()


def test_agents_see_retrying_with_the_reason_until_the_api_is_back(
        tmp_path: Any, standin: WeChatStandIn) -> None:
    """With a real job queue (a worker thread, not inline): while the API keeps
    failing the delivery is shown as retrying, with WeChat's reason and the next
    attempt; once it answers again the message goes out, once."""
    from tests.helpers import wait_until

    app = make_app(tmp_path, OUTBOUND_ALLOW_PRIVATE=True, JOBS_INLINE=False,
                   CHANNEL_DELIVERY_RETRY=(1000, (1,)))
    try:
        with app.app_context():
            api = ApiClient.registered(app)
            configure(app, api.team["id"], standin)
            agent = api.online_agent()
            wechat = WeChat(api)
            wechat.text("人工")
            conversation = conversation_of()
            wait_until(lambda: conversation.id and all(
                d.status == "sent" for d in deliveries(conversation.id)),
                what="the handover line sent")
            standin.fail_next(-1, times=100000)  # "system error" until cleared
            agent.post(f"/api/v1/conversations/{conversation.id}/messages",
                       json={"body": "系统繁忙时的回复", "client_msg_id": "busy-1"})
            url = f"/api/v1/conversations/{conversation.id}/deliveries"

            def retrying() -> dict | None:
                last = agent.get(url).get_json()["deliveries"][-1]
                return last if last["status"] == "retrying" else None

            shown = wait_until(retrying, what="the delivery shown as retrying")
            assert "WeChat error -1" in shown["reason"] and shown["next_attempt_at"]
            flow(f"API down: agents see {shown['status']!r}, reason {shown['reason']!r}, "
                 f"next attempt {shown['next_attempt_at']}")
            with standin.lock:
                standin.faults.clear()
            wait_until(lambda: agent.get(url).get_json()["deliveries"][-1]["status"]
                       == "sent", what="sent once the API answers")
            assert standin.texts_to(OPENID).count(
                f"{agent.agent['display_name']}：系统繁忙时的回复") == 1
            flow("API back → sent, once")
    finally:
        close_app(app)


def test_a_long_answer_goes_in_parts_and_a_retry_sends_only_the_rest(
        wx: ApiClient, standin: WeChatStandIn) -> None:
    from meiqia.channels.wechat.api import MAX_TEXT_BYTES

    wechat = WeChat(wx)
    agent = wx.online_agent()
    wechat.text("人工")
    conversation = conversation_of()
    body = "\n".join(f"第{n}条：" + "退款将在七个工作日内原路返回。" * 8 for n in range(30))
    standin.fail_next(-1, times=10, after=2)  # parts 1-2 go out, then the API fails
    agent.post(f"/api/v1/conversations/{conversation.id}/messages",
               json={"body": body, "client_msg_id": "long-1"})
    failed = deliveries(conversation.id)[-1]
    assert failed.status == "failed"
    with standin.lock:
        standin.faults.clear()
    assert wx.post(f"/api/v1/channel-deliveries/{failed.id}/retry", json={}).status_code == 200
    assert ChannelDelivery.get_by_id(failed.id).status == "sent"
    texts = standin.texts_to(OPENID)
    start = next(i for i, t in enumerate(texts) if "第0条" in t)
    parts = texts[start:]
    assert len(parts) > 3 and all(len(p.encode()) <= MAX_TEXT_BYTES for p in parts)
    joined = "\n".join(parts)
    assert joined == f"{agent.agent['display_name']}：{body}"  # each part once, in order


def test_a_long_reply_is_split_between_sentences_never_inside_a_word_or_number(
        wx: ApiClient, standin: WeChatStandIn) -> None:
    """An outside check: a long reply was cut at the byte limit wherever it fell,
    an English word or an order number in two (Chinese has no spaces, no line
    ends here). Now each part ends a sentence, fits WeChat's 2048 bytes (the
    stand-in answers 45002 above them) and the parts are the reply, in order."""
    import re

    from tests.wechat_standin import MAX_CONTENT_BYTES

    wechat = WeChat(wx)
    agent = wx.online_agent()
    wechat.text("人工")
    conversation = conversation_of()
    name = agent.agent["display_name"]
    chinese = "".join(f"您的第{n}个包裹（运单号SF{1357924680 + n}）已由顺丰发出，预计明天送达"
                      + "，请保持电话畅通" * (n % 4) + "。！？"[n % 3] for n in range(60))
    english = " ".join(f"Parcel {n} (tracking number SF{1357924680 + n}) was shipped today "
                       "and should arrive tomorrow, please keep your phone on."
                       for n in range(40))
    for body, key, glue in ((chinese, "zh", ""), (english, "en", " ")):
        before = len(standin.texts_to(OPENID))
        agent.post(f"/api/v1/conversations/{conversation.id}/messages",
                   json={"body": body, "client_msg_id": f"split-{key}"})
        assert deliveries(conversation.id)[-1].status == "sent"
        parts = standin.texts_to(OPENID)[before:]
        assert len(parts) >= 3, parts
        assert all(len(p.encode("utf-8")) <= MAX_CONTENT_BYTES for p in parts)
        assert all(p.endswith(("。", "！", "？", ".")) for p in parts), [p[-8:] for p in parts]
        assert glue.join(parts) == f"{name}：{body}"
        numbers = re.findall(r"SF\d+", body)
        assert sum(len(re.findall(r"SF\d+", p)) for p in parts) == len(numbers)
        assert all(any(number in p for p in parts) for number in numbers)


def test_no_secret_or_access_token_reaches_our_logs(
        wx: ApiClient, standin: WeChatStandIn, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    caplog.set_level(logging.DEBUG)
    wechat = WeChat(wx)
    agent = wx.online_agent()
    wechat.text("人工")
    conversation = conversation_of()
    standin.expire_tokens()
    standin.fail_next(None, status=500, times=3)
    agent.post(f"/api/v1/conversations/{conversation.id}/messages",
               json={"body": "日志检查", "client_msg_id": "log-1"})
    wechat.encrypted = False
    wechat.send(wechat.side.text(OPENID, "plaintext in safe mode"))  # refused, logged
    wx.post("/api/v1/channels/wechat/test", json={})
    ours = [r for r in caplog.records if r.name.startswith("meiqia")]
    assert any("refused" in r.getMessage() for r in ours)  # the log was captured
    logged = "\n".join(r.getMessage() for r in ours)
    for secret in (APP_SECRET, TOKEN, AES_KEY, *standin.tokens):
        assert secret not in logged


def test_the_token_is_shared_cached_and_renewed_before_it_expires(
        wx: ApiClient, standin: WeChatStandIn) -> None:
    import time

    from meiqia.channels.wechat.api import MARGIN
    from meiqia.channels.wechat.channel import api_for

    now = time.time()
    one = api_for(registry.make_host(wx.team["id"], "wechat"))
    token = one.access_token(now=now)
    # Another process (another host and client, same database) uses the same token.
    other = api_for(registry.make_host(wx.team["id"], "wechat"))
    assert other.access_token(now=now + 7200 - MARGIN - 1) == token
    assert standin.token_requests == 1
    renewed = other.access_token(now=now + 7200 - MARGIN + 1)
    assert renewed != token and standin.token_requests == 2
    assert one.access_token(now=now + 7200 - MARGIN + 2) == renewed
    # A wrong AppSecret: WeChat's errcode, final (no retry can fix it).
    standin.app_secret = "rotated"
    from meiqia.channels.wechat.api import ApiError

    one.drop_token(renewed)
    with pytest.raises(ApiError) as caught:
        one.access_token()
    assert caught.value.errcode == 40125 and caught.value.retry is False


@pytest.mark.parametrize("trial", range(3))
def test_processes_that_need_a_token_at_once_fetch_one(
        wx: ApiClient, standin: WeChatStandIn, trial: int) -> None:
    """Every fetch invalidates the token before it: eight callers (as many
    processes would: each its own host and client) that find no token at the
    same moment make one fetch between them and all use its token. Then the
    admin's "Test connection" uses that token instead of fetching another."""
    import threading

    from meiqia.channels.wechat.channel import api_for
    from meiqia.db import connection

    app = wx.app
    clients = [api_for(registry.make_host(wx.team["id"], "wechat")) for _ in range(8)]
    start = threading.Barrier(len(clients))
    got: list[str] = []

    def fetch(client: Any) -> None:
        with app.app_context(), connection():
            start.wait()
            got.append(client.access_token())

    threads = [threading.Thread(target=fetch, args=(c,)) for c in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(got) == len(clients) and len(set(got)) == 1
    assert standin.token_requests == 1
    answer = wx.post("/api/v1/channels/wechat/test", json={})
    assert answer.get_json()["ok"] is True, answer.get_json()
    assert standin.token_requests == 1
    clients[0].drop_token(got[0])  # as a refused token does; the next caller fetches
    assert clients[1].access_token() != got[0] and standin.token_requests == 2


def test_an_image_the_api_did_not_give_is_fetched_later_and_placeholders_are_not_questions(
        tmp_path: Any, standin: WeChatStandIn) -> None:
    """With a real job queue: WeChat's API is busy when a picture arrives, so
    agents see a line that it is on its way and a job fetches it again (WeChat
    drops a callback after three tries; the MediaId lives three days). A voice
    message without text and bytes that are no image are lines for agents: the
    bot says what it can read instead of "I did not understand", and nothing is
    counted as a failed question (no handover)."""
    from meiqia.channels.wechat.views import IMAGE_PENDING
    from meiqia.services.conversations import CANNOT_READ
    from tests.helpers import wait_until

    with wechat_on_a_job_queue(tmp_path, standin, CHANNEL_DELIVERY_RETRY=(3, (0, 0, 0)),
                               WECHAT_MEDIA_RETRY=(4, (0, 1, 1, 1))) as (app, api, wechat):
        standin.media["MEDIA_LATER"] = (PNG, "image/png", "later.png")
        standin.fail_media(3)  # the job's first three tries
        answer = wechat.send(wechat.side.image(OPENID, "MEDIA_LATER", msg_id="7001"))
        assert answer.status_code == 200 and answer.data == b"success"
        conversation = conversation_of()
        line = Message.get(Message.conversation == conversation.id,
                           Message.sender_kind == "visitor")
        assert line.body == IMAGE_PENDING
        image = wait_until(lambda: Message.get_or_none(
            Message.conversation == conversation.id, Message.kind == "image"),
            timeout=30, what="the image fetched by the job")
        assert image.sender_kind == "visitor"
        # WeChat's resend of the same callback stores nothing more.
        wechat.send(wechat.side.image(OPENID, "MEDIA_LATER", msg_id="7001"))
        app.extensions["meiqia.jobs"].join()
        assert Message.select().where(Message.conversation == conversation.id,
                                      Message.sender_kind == "visitor").count() == 2

        voice = ("<xml><ToUserName>gh</ToUserName>"
                 f"<FromUserName>{OPENID}</FromUserName><CreateTime>1760000000"
                 "</CreateTime><MsgType>voice</MsgType><MediaId>V1</MediaId>"
                 "<Format>amr</Format><MsgId>7002</MsgId></xml>")
        assert wechat.send(voice).data == b"success"
        standin.media["NOT_AN_IMAGE"] = (b"not an image at all", "image/png", "x.png")
        wechat.send(wechat.side.image(OPENID, "NOT_AN_IMAGE", msg_id="7003"))
        app.extensions["meiqia.jobs"].join()
        lines = [m.body for m in Message.select().where(
            Message.conversation == conversation.id, Message.sender_kind == "visitor")
            .order_by(Message.id)]
        # Every picture is a line at once (the callback never waits on the API),
        # then the job's image, or what it could not take.
        assert lines[2] == "[语音 voice message]"
        assert lines[3] == IMAGE_PENDING
        assert lines[4].startswith("[图片 image: 未收下")
        assert Message.select().where(Message.conversation == conversation.id,
                                      Message.kind == "file").count() == 0
        said = [m.body for m in Message.select().where(
            Message.conversation == conversation.id, Message.sender_kind == "bot")]
        # pending, voice, pending (the refused line completes the third): none a
        # question the bot failed, one line each
        assert said.count(CANNOT_READ["zh-CN"]) == 3, said
        assert Conversation.get_by_id(conversation.id).status == "bot"
        wait_until(lambda: CANNOT_READ["zh-CN"] in standin.texts_to(OPENID),
                   what="the bot's line to reach the follower")



def _visitor_lines(conversation_id: int) -> list[str]:
    """The visitor's lines of a conversation, in order (the placeholders a fetch job
    writes among them)."""
    return [m.body for m in Message.select().where(
        Message.conversation == conversation_id,
        Message.sender_kind == "visitor").order_by(Message.id)]


def test_an_image_wechat_never_gives_is_a_line_after_the_last_retry(
        tmp_path: Any, standin: WeChatStandIn) -> None:
    """WeChat's media API is busy through every retry of the fetch: agents were left
    with 「正在从微信获取，稍后显示」 for good. The last attempt now stores a line
    saying it could not be fetched (with WeChat's PicUrl), and the job ends."""
    from meiqia.channels.wechat.views import IMAGE_PENDING
    from meiqia.models import JobRecord
    from tests.helpers import wait_until

    with wechat_on_a_job_queue(tmp_path, standin,
                               WECHAT_MEDIA_RETRY=(2, (0, 1))) as (app, api, wechat):
        standin.media["MEDIA_NEVER"] = (PNG, "image/png", "never.png")
        standin.fail_media(100)
        answer = wechat.send(wechat.side.image(OPENID, "MEDIA_NEVER", msg_id="7101"))
        assert answer.status_code == 200 and answer.data == b"success"
        conversation = conversation_of()

        visitor_lines = functools.partial(_visitor_lines, conversation.id)
        wait_until(lambda: len(visitor_lines()) >= 2, timeout=30,
                   what="the line after the last retry")
        lines = visitor_lines()
        assert lines[0] == IMAGE_PENDING
        assert lines[1].startswith("[图片 image: 多次尝试仍无法从微信获取"), lines
        assert lines[1].endswith("http://mmbiz.qpic.cn/MEDIA_NEVER")
        app.extensions["meiqia.jobs"].join()
        record = JobRecord.get(JobRecord.name.startswith("fetch WeChat image"))
        assert record.status == "finished" and record.attempts == 3
        assert standin.media_faults == 100 - 3
        assert len(visitor_lines()) == 2


def test_an_image_wechat_no_longer_has_gets_the_cannot_read_line_once(
        tmp_path: Any, standin: WeChatStandIn) -> None:
    """One picture whose MediaId WeChat no longer has (40007): the bot's "cannot
    read" line went out twice, with the "being fetched" line and again with the
    job's line that WeChat no longer has it (one thing sent, two answers; WeChat
    caps the replies per message). The job's line is for agents and the record."""
    from meiqia.channels.wechat.views import IMAGE_GONE
    from meiqia.channels.wechat.views import IMAGE_PENDING
    from meiqia.services.conversations import CANNOT_READ
    from tests.helpers import wait_until

    with wechat_on_a_job_queue(tmp_path, standin, CHANNEL_DELIVERY_RETRY=(3, (0, 0, 0)),
                               WECHAT_MEDIA_RETRY=(2, (0, 1))) as (app, api, wechat):
        # No such media at the stand-in: /cgi-bin/media/get answers {"errcode":40007}.
        answer = wechat.send(wechat.side.image(OPENID, "MEDIA_GONE", msg_id="7201"))
        assert answer.status_code == 200 and answer.data == b"success"
        conversation = conversation_of()

        visitor_lines = functools.partial(_visitor_lines, conversation.id)
        wait_until(lambda: len(visitor_lines()) >= 2, timeout=30,
                   what="the job's line that WeChat no longer has the image")
        app.extensions["meiqia.jobs"].join()
        lines = visitor_lines()
        assert lines[0] == IMAGE_PENDING and lines[1].startswith(IMAGE_GONE), lines
        wait_until(lambda: CANNOT_READ["zh-CN"] in standin.texts_to(OPENID),
                   what="the bot's line to reach the follower")
        app.extensions["meiqia.jobs"].join()  # every delivery done
        said = [m.body for m in Message.select().where(
            Message.conversation == conversation.id, Message.sender_kind == "bot")]
        assert said.count(CANNOT_READ["zh-CN"]) == 1, said
        assert standin.texts_to(OPENID).count(CANNOT_READ["zh-CN"]) == 1
        assert Conversation.get_by_id(conversation.id).status == "bot"


def test_a_location_and_a_link_keep_what_they_say_for_agents(
        wx: ApiClient, standin: WeChatStandIn) -> None:
    wechat = WeChat(wx)
    where = (f"<xml><ToUserName>gh</ToUserName><FromUserName>{OPENID}</FromUserName>"
             "<CreateTime>1760000100</CreateTime><MsgType>location</MsgType>"
             "<Location_X>23.134521</Location_X><Location_Y>113.358803</Location_Y>"
             "<Scale>20</Scale><Label><![CDATA[广州市天河区体育西路]]></Label>"
             "<MsgId>8001</MsgId></xml>")
    link = (f"<xml><ToUserName>gh</ToUserName><FromUserName>{OPENID}</FromUserName>"
            "<CreateTime>1760000101</CreateTime><MsgType>link</MsgType>"
            "<Title><![CDATA[订单截图说明]]></Title><Description><![CDATA[]]></Description>"
            "<Url><![CDATA[https://shop.example.com/o/MQ123]]></Url><MsgId>8002</MsgId></xml>")
    assert wechat.send(where).data == b"success" and wechat.send(link).data == b"success"
    lines = [m.body for m in Message.select().where(Message.sender_kind == "visitor")
             .order_by(Message.id)]
    assert lines == ["[位置 location] 广州市天河区体育西路 (23.134521, 113.358803)",
                     "[链接 link] 订单截图说明 https://shop.example.com/o/MQ123"]


def test_the_test_connection_answer_is_in_the_admins_language_only(
        wx: ApiClient, standin: WeChatStandIn) -> None:
    """A Chinese admin read "无法解析微信接口地址 · the API address is refused: cannot
    resolve api.weixin.qq.com: no such host" (an outside security tester): the answer of
    the Channels dialog's button is in the admin's language, technical detail kept."""
    config = {"app_id": APP_ID, "app_secret": APP_SECRET, "token": TOKEN,
              "encryption_mode": "plain", "api_base_url": standin.base_url}

    def said(lang: str, **more: str) -> dict:
        answer = wx.post("/api/v1/channels/wechat/test", json={"config": {**config, **more}},
                         headers={"X-Meiqia-Lang": lang})
        assert answer.status_code == 200, answer.get_json()
        return answer.get_json()

    assert said("zh-CN") == {"ok": True, "message": f"已连接微信接口（AppID {APP_ID}）"}
    assert said("en") == {"ok": True, "message": f"connected to the WeChat API as AppID {APP_ID}"}
    assert said("zh-CN", app_secret="not-the-secret") == {
        "ok": False, "message": "微信接口错误 40125：AppSecret 无效"}
    english = said("en", app_secret="not-the-secret")["message"]
    assert english.startswith("WeChat error 40125: "), english
    assert english.endswith("(AppSecret is not valid)"), english
    nowhere = "https://no-such-host.invalid"
    assert said("zh-CN", api_base_url=nowhere) == {
        "ok": False, "message": "无法解析微信接口地址（no-such-host.invalid）"}
    assert said("en", api_base_url=nowhere) == {
        "ok": False, "message": "the API address is refused: cannot resolve "
                                "no-such-host.invalid: no such host"}
