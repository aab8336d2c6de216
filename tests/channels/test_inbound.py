"""The inbound service: a channel's message runs the widget's path, once."""

from __future__ import annotations

import threading

from meiqia.bot.normalize import has_cjk
from meiqia.channels import Attachment
from meiqia.channels import receive
from meiqia.channels import registry
from meiqia.models import ChannelExternalId
from meiqia.models import Conversation
from meiqia.models import Message
from meiqia.models import Visitor
from tests.channels import standin


def host(app, api):
    return registry.make_host(api.team["id"], "standin", app=app)


def agent_replies(app, agent, cid, body):
    """The agent answers; the bodies the channel has delivered so far."""
    reply = agent.post(f"/api/v1/conversations/{cid}/messages",
                       json={"body": body, "client_msg_id": f"r-{len(body)}-{cid}"})
    assert reply.status_code == 201, reply.get_json()
    return [m.body for _c, m in standin.outbox(app)]


def public(cid):
    return list(Message.select().where(Message.conversation == cid,
                                       Message.visibility == "public").order_by(Message.seq))


def test_text_starts_a_conversation_the_bot_answers_through_deliver(ch_app, ch_api):
    result = receive(host(ch_app, ch_api), "alice@example.com", "你们几点上班？",
                     external_message_id="<m1@example.com>", display_name="Alice",
                     subject="Opening hours", metadata={"thread": "t1"})
    assert not result.duplicate
    conversation = Conversation.get_by_id(result.conversation_id)
    assert conversation.channel == "standin"
    assert Visitor.get_by_id(conversation.visitor_id).name == "Alice"
    kinds = [m.sender_kind for m in public(conversation.id)]
    assert "visitor" in kinds and "bot" in kinds  # bot first, as in the widget
    sent = standin.outbox(ch_app)
    assert sent, "the bot's answer went out through deliver()"
    conv_view, message_view = sent[-1]
    assert conv_view.visitor_external_id == "alice@example.com"
    assert conv_view.subject == "Opening hours" and conv_view.metadata == {"thread": "t1"}
    assert message_view.in_reply_to_external_id == "<m1@example.com>"
    assert message_view.references[0] == "<m1@example.com>"
    # Every visitor-visible message but his own went out, in order.
    expected = [m.id for m in public(conversation.id) if m.sender_kind != "visitor"]
    assert [m.id for _c, m in sent] == expected


def test_human_handover_reaches_an_agent_whose_reply_is_delivered(ch_app, ch_api):
    agent = ch_api.online_agent()
    h = host(ch_app, ch_api)
    first = receive(h, "bob@example.com", "你好", external_message_id="b1")
    second = receive(h, "bob@example.com", "人工", external_message_id="b2")
    assert second.conversation_id == first.conversation_id
    conversation = Conversation.get_by_id(first.conversation_id)
    assert conversation.status == "open" and conversation.handler_id == agent.agent["id"]
    bodies = agent_replies(ch_app, agent, conversation.id, "您好，我是李客服")
    assert "您好，我是李客服" in bodies
    handover = [m for _c, m in standin.outbox(ch_app) if m.kind == "system"]
    assert handover, "the handover line is delivered too"
    last = standin.outbox(ch_app)[-1][1]
    assert last.kind == "agent" and last.sender_name
    assert last.in_reply_to_external_id == "b2"


def test_with_the_bot_off_and_nobody_online_the_customer_is_told_his_chat_waits(
        ch_app, ch_api):
    from meiqia.services.routing import CHANNEL_WAIT_TEXT

    ch_api.without_bot()
    result = receive(host(ch_app, ch_api), "carol@example.com", "有人吗")
    texts = [m.body for _c, m in standin.outbox(ch_app)]
    assert CHANNEL_WAIT_TEXT["zh-CN"] in texts, texts
    assert Conversation.get_by_id(result.conversation_id).status == "queued"


def test_the_teams_offline_message_is_the_line_a_waiting_customer_gets(ch_app, ch_api):
    """The team's "无人在线时的提示" (``settings.offline_message``) replaces the
    built-in "nobody can take your chat" line on a channel too (the hteam's D1)."""
    from meiqia.services.routing import CHANNEL_WAIT_TEXT

    own = "客服下班啦！您的消息已收到，我们明早 9 点后在这里回复您。"
    ch_api.without_bot()
    assert ch_api.patch("/api/v1/team", json={"settings": {"offline_message": own}}
                        ).status_code == 200
    result = receive(host(ch_app, ch_api), "erin@example.com", "有人吗")
    texts = [m.body for _c, m in standin.outbox(ch_app)]
    assert own in texts and CHANNEL_WAIT_TEXT["zh-CN"] not in texts, texts
    told = [m for m in public(result.conversation_id) if m.kind == "event"]
    assert [(m.body, m.payload["event"]) for m in told] == [(own, "waiting_for_agent")]


def test_the_same_external_id_is_stored_once(ch_app, ch_api):
    h = host(ch_app, ch_api)
    one = receive(h, "dave@example.com", "第一条", external_message_id="dup-1")
    two = receive(h, "dave@example.com", "第一条", external_message_id="dup-1")
    assert two.duplicate and two.message_id == one.message_id
    assert Message.select().where(Message.sender_kind == "visitor").count() == 1


def test_concurrent_double_delivery_stores_one_message(ch_app, ch_api):
    """Two deliveries of one external message at the same moment, from two
    threads (two webhook retries, two pollers): one message, one bot answer."""
    h = host(ch_app, ch_api)
    receive(h, "erin@example.com", "先来一条", external_message_id="e0")  # visitor exists
    for round_ in range(5):
        ext = f"race-{round_}"
        barrier = threading.Barrier(2)
        results, errors = [], []

        def deliver(ext=ext, barrier=barrier, results=results, errors=errors):
            from meiqia.db import connection

            with ch_app.app_context(), connection():
                barrier.wait()
                try:
                    results.append(receive(h, "erin@example.com", f"消息 {ext}",
                                           external_message_id=ext))
                except Exception as exc:  # noqa: BLE001 - reported below
                    errors.append(exc)

        threads = [threading.Thread(target=deliver) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors, errors
        assert sorted(r.duplicate for r in results) == [False, True]
        assert len({r.message_id for r in results}) == 1
        stored = Message.select().where(Message.sender_kind == "visitor",
                                        Message.body == f"消息 {ext}").count()
        assert stored == 1
        assert ChannelExternalId.select().where(
            ChannelExternalId.external_id == ext).count() == 1


def test_concurrent_first_contacts_make_one_visitor(ch_app, ch_api):
    h = host(ch_app, ch_api)
    barrier = threading.Barrier(3)
    results, errors = [], []

    def deliver(n):
        from meiqia.db import connection

        with ch_app.app_context(), connection():
            barrier.wait()
            try:
                results.append(receive(h, "frank@example.com", f"hi {n}",
                                       external_message_id=f"f{n}"))
            except Exception as exc:  # noqa: BLE001
                errors.append(exc)

    threads = [threading.Thread(target=deliver, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert len({r.conversation_id for r in results}) == 1
    assert Visitor.select().count() == 1


def test_attachments_go_through_the_upload_checks(ch_app, ch_api):
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x01" * 64  # signature, IHDR
    result = receive(host(ch_app, ch_api), "gina@example.com", "截图如下",
                     attachments=[Attachment("shot.png", "image/png", png),
                                  Attachment("notes.txt", "text/plain", b"hello")],
                     external_message_id="g1")
    kinds = [m.kind for m in public(result.conversation_id) if m.sender_kind == "visitor"]
    assert kinds == ["text", "image", "file"]
    import pytest

    from meiqia.services.errors import ValidationError

    with pytest.raises(ValidationError):
        receive(host(ch_app, ch_api), "gina@example.com", "",
                attachments=[Attachment("empty.bin", "application/octet-stream", b"")])


def test_the_answer_comes_after_the_whole_of_what_the_customer_sent(ch_app, ch_api):
    """An e-mail with a screenshot (or a long mail with its whole text as a file):
    the bot answered the text before the file was stored, so the agent read text,
    answer, file. Now the answer, or the handover, comes after all of it."""
    from meiqia.channels.inbound import FULL_TEXT_NAME
    from meiqia.services import messages

    made = ch_api.post("/api/v1/knowledge", json={
        "key": "refund", "questions": ["怎么申请退款"], "answer": "在订单页点“申请退款”。"})
    assert made.status_code == 201, made.get_json()
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x01" * 64  # signature, IHDR

    def after_text(result):
        lines = [(m.sender_kind, m.kind, m.body) for m in public(result.conversation_id)]
        last_visitor = max(i for i, line in enumerate(lines) if line[0] == "visitor")
        return lines, last_visitor

    # The bot's answer after the screenshot.
    result = receive(host(ch_app, ch_api), "hana@example.com", "怎么申请退款",
                     attachments=[Attachment("shot.png", "image/png", png)],
                     external_message_id="h1")
    lines, last_visitor = after_text(result)
    assert lines[last_visitor][:2] == ("visitor", "image"), lines
    assert ("bot", "text", "在订单页点“申请退款”。") in lines[last_visitor + 1:], lines

    # A mail longer than a chat message: its whole text as a file, then the bot.
    long_mail = receive(host(ch_app, ch_api), "hana@example.com",
                        "怎么申请退款？" + "订单明细如下。" * (messages.MAX_BODY // 7),
                        external_message_id="h2")
    lines, last_visitor = after_text(long_mail)
    assert lines[last_visitor][:2] == ("visitor", "file"), lines
    assert any(line[0] == "bot" for line in lines[last_visitor + 1:]), lines
    whole = public(long_mail.conversation_id)[last_visitor]
    from meiqia.models import Attachment as Stored

    assert Stored.get(Stored.key == whole.payload["attachment"]).original_name \
        == FULL_TEXT_NAME

    # "人工" with a file: the handover after the file.
    ch_api.online_agent(name="李伟", nickname="李客服")
    asked = receive(host(ch_app, ch_api), "hana@example.com", "人工",
                    attachments=[Attachment("order.txt", "text/plain", b"MQ123")],
                    external_message_id="h3")
    lines, last_visitor = after_text(asked)
    assert lines[last_visitor][:2] == ("visitor", "file"), lines
    assert lines[last_visitor - 1] == ("visitor", "text", "人工"), lines
    assert ("system", "event", "李客服 为您服务") in lines[last_visitor + 1:], lines


def test_redaction_hooks_run_on_channel_messages(tmp_path):
    from meiqia.hookspecs import hookimpl
    from tests.channels.conftest import close_app
    from tests.channels.conftest import enable
    from tests.channels.conftest import make_app
    from tests.helpers import ApiClient

    class Redactor:
        __name__ = "redactor"

        @hookimpl
        def before_message_saved(self, message, conversation):
            if message["sender_kind"] == "visitor":
                return {"body": message["body"].replace("13912345678", "139****5678")}
            return None

    app = make_app(tmp_path, plugins=(standin, Redactor()))
    try:
        with app.app_context():
            api = ApiClient.registered(app)
            enable(app, api.team["id"])
            result = receive(host(app, api), "hank@example.com", "我的电话 13912345678")
            assert Message.get_by_id(result.message_id).body == "我的电话 139****5678"
    finally:
        close_app(app)


def test_bad_input_is_refused_with_a_reason(ch_app, ch_api):
    import pytest

    from meiqia.services.errors import ValidationError

    h = host(ch_app, ch_api)
    for kwargs in ({"external_user_id": "", "text": "x"},
                   {"external_user_id": "a", "text": "   "},
                   {"external_user_id": "a", "text": "x", "metadata": {"x": object()}},
                   {"external_user_id": "a", "text": "x", "event": "explode"}):
        with pytest.raises(ValidationError):
            receive(h, **kwargs)
    # A gateway's numeric id is named as what it is, not as too long.
    with pytest.raises(ValidationError) as numeric:
        receive(h, "a", "x", external_message_id=12345)
    assert numeric.value.message == "external_message_id: expected string"
    with pytest.raises(ValidationError) as long_id:
        receive(h, "a", "x", external_message_id="m" * 501)
    assert long_id.value.message == "external_message_id: at most 500 characters"
    assert Message.select().count() == 0
    # NUL characters are dropped, not stored (the widget refuses them).
    stored = receive(h, "nul@example.com", "发货\x00快吗", external_message_id="nul-1")
    assert Message.get_by_id(stored.message_id).body == "发货快吗"


def test_subscribe_and_unsubscribe_events(ch_app, ch_api):
    h = host(ch_app, ch_api)
    none = receive(h, "openid-1", event="unsubscribe")
    assert none.conversation_id == 0 and none.message_id is None
    sub = receive(h, "openid-1", event="subscribe", external_message_id="ev-1")
    event = Message.get_by_id(sub.message_id)
    assert event.visibility == "internal" and event.payload["channel_event"] == "subscribe"
    again = receive(h, "openid-1", event="subscribe", external_message_id="ev-1")
    assert again.duplicate


def test_answers_go_out_even_when_a_later_attachment_is_refused(ch_app, ch_api):
    import pytest

    from meiqia.models import ChannelDelivery
    from meiqia.services.errors import ValidationError

    ch_api.without_bot()  # the text alone brings the leave-a-message line
    with pytest.raises(ValidationError):
        receive(host(ch_app, ch_api), "jack@example.com", "看附件",
                attachments=[Attachment("x.bin", "application/octet-stream", b"")])
    pending = ChannelDelivery.select().where(ChannelDelivery.status != "sent").count()
    assert ChannelDelivery.select().count() >= 1 and pending == 0
    assert standin.outbox(ch_app)


def test_note_refused_keeps_the_rest_and_says_cannot_read_once(ch_app, ch_api):
    """``note_refused``: each refused file is a line in its place, the files after
    it are kept, and a message without text gets the bot's "cannot read" line
    once (with text, the text's answer is what the customer gets)."""
    from meiqia.services.conversations import CANNOT_READ

    ch_app.config["MAX_FILE_BYTES"] = 10
    files = [Attachment("a.bin", "application/octet-stream", b"x" * 50),
             Attachment("b.txt", "text/plain", b"ok"),
             Attachment("c.bin", "application/octet-stream", b"y" * 50)]
    only_files = receive(host(ch_app, ch_api), "kim@example.com", "", attachments=files,
                         external_message_id="k1", note_refused=True, email="kim@example.com")
    lines = [(m.sender_kind, m.kind, m.body) for m in public(only_files.conversation_id)]
    visitor = [line for line in lines if line[0] == "visitor"]
    assert [v[1] for v in visitor] == ["text", "file", "text"], lines
    assert visitor[0][2].startswith("[附件未接收 attachment not accepted: a.bin: ")
    assert visitor[1][2] == "b.txt" and "c.bin" in visitor[2][2]
    assert [line[2] for line in lines if line[0] == "bot"] == [CANNOT_READ["zh-CN"]]
    conversation = Conversation.get_by_id(only_files.conversation_id)
    assert Visitor.get_by_id(conversation.visitor_id).email == "kim@example.com"
    with_text = receive(host(ch_app, ch_api), "lee@example.com", "你们几点上班？",
                        attachments=files[:1], external_message_id="l1", note_refused=True)
    bots = [m.body for m in public(with_text.conversation_id) if m.sender_kind == "bot"]
    assert CANNOT_READ["zh-CN"] not in bots and bots, bots


def test_the_bot_tells_a_channel_customer_to_reply_human_not_to_press_a_button(ch_app, ch_api):
    receive(host(ch_app, ch_api), "bob@example.com", "量子色动力学的渐近自由是什么意思",
            external_message_id="<q1@example.com>")
    bodies = [m.body for _c, m in standin.outbox(ch_app)]
    assert bodies and "回复“人工”" in bodies[-1] and "点击" not in bodies[-1], bodies


def test_nobody_online_a_channel_customer_waits_in_the_queue_for_the_first_agent_back(
        ch_app, ch_api):
    """Off hours: a WeChat or e-mail customer has no leave-a-message form and can be
    answered later where he wrote. His "人工" queues the chat (even with the team's
    queue off), he is told once that it waits, what he writes meanwhile lands in
    it, going away and coming back does not offer him a form, and the first agent
    who comes online gets the chat and answers him through the channel. A widget
    visitor at the same moment is offered the form as before."""
    from meiqia.services.routing import CHANNEL_WAIT_TEXT
    from meiqia.services.routing import LEAVE_MESSAGE_TEXT
    from tests.api.test_conversations import start

    assert ch_api.patch("/api/v1/team", json={"settings": {"queue_enabled": False}}
                        ).status_code == 200
    h = host(ch_app, ch_api)
    first = receive(h, "night@example.com", "人工", external_message_id="n1")
    conversation = Conversation.get_by_id(first.conversation_id)
    assert conversation.status == "queued"
    receive(h, "night@example.com", "我要找人工客服", external_message_id="n2")
    receive(h, "night@example.com", "订单 MQ123 一直没发货", external_message_id="n3")
    assert Conversation.get_by_id(conversation.id).status == "queued"
    told = [m.body for _c, m in standin.outbox(ch_app)]
    assert told.count(CHANNEL_WAIT_TEXT["zh-CN"]) == 1, told
    assert LEAVE_MESSAGE_TEXT["zh-CN"] not in told
    # A widget visitor asking at the same moment gets the leave-a-message offer.
    client, token, web_cid, _ = start(ch_app, ch_api.team["id"])
    asked = client.post(f"/api/v1/widget/conversations/{web_cid}/human",
                        headers={"X-Visitor-Token": token})
    assert asked.status_code == 200 and asked.get_json()["outcome"] == "nobody"
    # The presence sweep's "nobody left" offer skips it (it is for widget visitors).
    from meiqia.services import routing

    routing.tell_if_nobody_left(ch_api.team["id"])
    assert Conversation.get_by_id(conversation.id).status == "queued"
    # The first agent back takes it and answers through the channel.
    agent = ch_api.online_agent()
    taken = Conversation.get_by_id(conversation.id)
    assert taken.status == "open" and taken.handler_id == agent.agent["id"]
    bodies = agent_replies(ch_app, agent, conversation.id, "您好，MQ123 今天发出")
    assert bodies[-1] == "您好，MQ123 今天发出"
    assert LEAVE_MESSAGE_TEXT["zh-CN"] not in bodies
    visitor_lines = [m.body for m in public(conversation.id) if m.sender_kind == "visitor"]
    assert visitor_lines == ["人工", "我要找人工客服", "订单 MQ123 一直没发货"]


def test_a_channel_chat_waiting_overnight_is_not_ended_for_inactivity(ch_app, ch_api):
    """The inactivity rule ends a queued widget chat whose visitor has gone; a
    channel's customer has no socket to be gone from, and his chat, queued when
    nobody was online, must still be there for the first agent in the morning."""
    import datetime

    from meiqia.models.base import utcnow
    from meiqia.services import inactivity

    assert ch_api.put("/api/v1/conversation-rules",
                      json={"inactivity_minutes": 30}).status_code == 200
    result = receive(host(ch_app, ch_api), "night@example.com", "人工",
                     external_message_id="late-1")
    then = utcnow() - datetime.timedelta(hours=9)
    Conversation.update(created_at=then, last_message_at=then, queued_at=then).where(
        Conversation.id == result.conversation_id).execute()
    inactivity.sweep()
    assert Conversation.get_by_id(result.conversation_id).status == "queued"
    agent = ch_api.online_agent()
    assert Conversation.get_by_id(result.conversation_id).handler_id == agent.agent["id"]


def test_a_number_picks_a_line_of_did_you_mean_and_asking_again_while_waiting_is_answered(
        ch_app, ch_api):
    """On a channel "did you mean" is numbered lines: 「2」 picks the second. A
    customer whose chat waits for the first agent back and asks for a person again
    is told again (after 30 s), and when the last agent goes while his last message
    has no answer he gets the waiting line, not the widget's form."""
    import datetime

    from meiqia.models.base import utcnow
    from meiqia.services import messages
    from meiqia.services import routing
    from meiqia.services.routing import CHANNEL_WAIT_TEXT

    for key, question, answer in (("hours", "你们几点上班", "每天 9:00-21:00。"),
                                  ("invoice", "怎么开发票", "在订单页申请电子发票。")):
        made = ch_api.post("/api/v1/knowledge", json={"key": key, "questions": [question],
                                                     "answer": answer})
        assert made.status_code == 201, made.get_json()
    h = host(ch_app, ch_api)
    first = receive(h, "pick@example.com", "你好", external_message_id="p1")
    conversation = Conversation.get_by_id(first.conversation_id)
    messages.post_message(conversation, "bot", "您是不是想问：", payload={
        "bot": "suggest", "candidates": [{"entry_id": 1, "question": "你们几点上班"},
                                         {"entry_id": 2, "question": "怎么开发票"}]})
    receive(h, "pick@example.com", "２", external_message_id="p2")  # full width too
    assert standin.outbox(ch_app)[-1][1].body == "在订单页申请电子发票。"
    # A number with no list before it is a question like any other.
    receive(h, "pick@example.com", "2", external_message_id="p3")
    assert standin.outbox(ch_app)[-1][1].body != "在订单页申请电子发票。"

    receive(h, "pick@example.com", "人工", external_message_id="p4")
    assert Conversation.get_by_id(conversation.id).status == "queued"
    told = [m.body for _c, m in standin.outbox(ch_app)].count(CHANNEL_WAIT_TEXT["zh-CN"])
    assert told == 1
    receive(h, "pick@example.com", "转人工", external_message_id="p5")  # within 30 s: once
    assert [m.body for _c, m in standin.outbox(ch_app)].count(CHANNEL_WAIT_TEXT["zh-CN"]) == 1
    Conversation.update(offered_at=utcnow() - datetime.timedelta(seconds=31)).where(
        Conversation.id == conversation.id).execute()
    receive(h, "pick@example.com", "人工", external_message_id="p6")
    assert [m.body for _c, m in standin.outbox(ch_app)].count(CHANNEL_WAIT_TEXT["zh-CN"]) == 2
    Conversation.update(offered_at=utcnow() - datetime.timedelta(seconds=31)).where(
        Conversation.id == conversation.id).execute()
    # The last agent goes: the last thing he has is that line already, so nothing.
    assert routing.tell_if_nobody_left(ch_api.team["id"]) == 0
    assert [m.body for _c, m in standin.outbox(ch_app)].count(CHANNEL_WAIT_TEXT["zh-CN"]) == 2
    # He writes again, and nobody has answered when the last agent goes: told.
    receive(h, "pick@example.com", "订单 MQ9 还没发货", external_message_id="p7")
    assert routing.tell_if_nobody_left(ch_api.team["id"]) == 1
    bodies = [m.body for _c, m in standin.outbox(ch_app)]
    assert bodies.count(CHANNEL_WAIT_TEXT["zh-CN"]) == 3 and "请留言" not in bodies[-1]


def test_an_agent_whose_tab_closes_and_opens_sends_the_customer_no_mail(ch_app, ch_api):
    """Seen on e-mail: each time the agent's workspace closed and opened again, the
    customer got "现在没有客服可以接待…" and then "李客服 为您服务" once more, by mail,
    about a chat that had not changed for him. Now a departure writes to him only
    when he waits for an answer nobody gave, and a handover line is not repeated
    when the last one he has names the same person."""
    import datetime

    from meiqia.models import AgentSocket
    from meiqia.models.base import utcnow
    from meiqia.services import presence
    from meiqia.services.routing import CHANNEL_WAIT_TEXT

    ch_api.without_bot()
    agent = ch_api.online_agent(name="李伟", nickname="李客服")
    h = host(ch_app, ch_api)

    def tab_closes_and_opens() -> str:
        AgentSocket.update(alive_until=utcnow() - datetime.timedelta(seconds=1)).where(
            AgentSocket.agent == agent.agent["id"]).execute()
        presence.sweep()  # his chat goes back to the queue; nobody else is there
        status = Conversation.get_by_id(cid).status
        agent.workspace_open()  # he is back: the chat comes back to him
        return status

    cid = receive(h, "dave@example.com", "我的订单还没到", external_message_id="d1").conversation_id
    assert Conversation.get_by_id(cid).handler_id == agent.agent["id"]
    agent_replies(ch_app, agent, cid, "您好，我查一下")
    sent = [m.body for _c, m in standin.outbox(ch_app)]
    assert sent == ["李客服 为您服务", "您好，我查一下"]

    # The last word was ours: the tab closing and opening writes nothing to him.
    for _ in range(3):
        assert tab_closes_and_opens() == "queued"
        taken = Conversation.get_by_id(cid)
        assert taken.status == "open" and taken.handler_id == agent.agent["id"]
    assert [m.body for _c, m in standin.outbox(ch_app)] == sent

    # He writes and nobody has answered yet: now he is told his chat waits, once,
    # and who serves him when the agent is back.
    receive(h, "dave@example.com", "还有发票的问题", external_message_id="d2")
    assert tab_closes_and_opens() == "queued"
    new = [m.body for _c, m in standin.outbox(ch_app)][len(sent):]
    assert new == [CHANNEL_WAIT_TEXT["zh-CN"], "李客服 为您服务"]
    # Told once: the next departure and return say nothing (he has both lines).
    assert tab_closes_and_opens() == "queued"
    assert [m.body for _c, m in standin.outbox(ch_app)][len(sent):] == new
    # The chat's own record keeps every move for the agents (internal lines).
    moves = [m.payload.get("event") for m in Message.select().where(
        Message.conversation == cid, Message.visibility == "internal")]
    assert moves.count("requeued") == 5


def test_a_customer_who_writes_english_is_answered_in_english(ch_app, ch_api):
    """A channel's customer has no widget to say his language: his first words do
    (found from outside: "Where is my parcel?" by e-mail got 抱歉，我没有理解… and
    李客服 为您服务 on a Chinese team). A Chinese writer keeps Chinese."""
    english = receive(host(ch_app, ch_api), "sam@example.com",
                      "What does asymptotic freedom in quantum chromodynamics mean?",
                      external_message_id="<en1@example.com>")
    chinese = receive(host(ch_app, ch_api), "li@example.com", "量子色动力学的渐近自由是什么意思",
                      external_message_id="<zh1@example.com>")
    answers = {c.id: [m.body for m in public(c.id) if m.sender_kind == "bot"]
               for c in Conversation.select()}
    assert Visitor.get_by_id(Conversation.get_by_id(english.conversation_id).visitor_id
                             ).language == "en"
    assert answers[english.conversation_id] and all(
        not has_cjk(body) for body in answers[english.conversation_id]), answers
    assert answers[chinese.conversation_id] and has_cjk(answers[chinese.conversation_id][-1])
