"""The e-mail channel end to end, on real servers started by the tests: Dovecot
holds the support mailbox (and the visitor's), aiosmtpd is the SMTP server the
channel sends through and delivers each mail into the recipient's Dovecot
mailbox. The channel is configured through the admin API as a team would, its
poller runs on its own thread (IMAP IDLE), deliveries run on the embedded job
queue with retries. Required in CI, skipped elsewhere with how to install
Dovecot (tests/mail_servers.py).

The end-to-end test prints the flow as it ran (``pytest -s``); the issue's
closing note quotes it.
"""

from __future__ import annotations

import email
import email.policy
import smtplib
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

import pytest

from meiqia.hookspecs import hookimpl
from meiqia.models import ChannelExternalId
from meiqia.models import Conversation
from meiqia.models import Message
from tests.conftest import close_app
from tests.conftest import make_app
from tests.conftest import truncate_all
from tests.conftest import unavailable
from tests.helpers import ApiClient
from tests.helpers import wait_until
from tests.mail_servers import HOW_TO_INSTALL
from tests.mail_servers import DovecotServer
from tests.mail_servers import SmtpServer

SUPPORT = "support@shop.test"
VISITOR = "zhang@customer.test"
USERS = {SUPPORT: "support-pw", VISITOR: "zhang-pw", "li@customer.test": "li-pw"}


class Mail:
    """The two servers and what the test does with them as the visitor."""

    def __init__(self, dovecot: DovecotServer, smtp: SmtpServer) -> None:
        self.dovecot = dovecot
        self.smtp = smtp
        self.sent_ids: set[str] = set()

    def send(self, sender: str, subject: str, body: str, msgid: str | None = None,
             **headers: str) -> str:
        """The visitor's mail client sends a mail to the support address (through
        the SMTP server, which delivers it into the support mailbox)."""
        message = EmailMessage()
        message["From"] = f"张三 <{sender}>"
        message["To"] = SUPPORT
        message["Subject"] = subject
        message["Message-ID"] = msgid or make_msgid(domain="customer.test")
        for name, value in headers.items():
            message[name.replace("_", "-")] = value
        message.set_content(body)
        with smtplib.SMTP("127.0.0.1", self.smtp.port, timeout=10) as client:
            client.send_message(message)
        self.sent_ids.add(message["Message-ID"])
        return message["Message-ID"]

    def outgoing(self) -> list[tuple[str, list[str]]]:
        """(sender, recipients) of every mail the channel sent (not the test's own)."""
        with self.smtp.lock:
            pairs = list(zip(self.smtp.messages, self.smtp.envelopes, strict=True))
        return [envelope for raw, envelope in pairs
                if email.message_from_bytes(raw)["Message-ID"] not in self.sent_ids]

    def inbox(self, user: str) -> list[email.message.EmailMessage]:
        return [email.message_from_bytes(raw, policy=email.policy.default)
                for raw in self.dovecot.inbox(user)]


@pytest.fixture
def mail():
    try:
        dovecot = DovecotServer(USERS)
        dovecot.start()
    except (FileNotFoundError, RuntimeError) as exc:
        unavailable("Dovecot", HOW_TO_INSTALL, exc)
    smtp = SmtpServer({user: (dovecot, user) for user in USERS})
    smtp.start()
    yield Mail(dovecot, smtp)
    smtp.stop()
    dovecot.stop()


def channel_config(mail: Mail, **extra: Any) -> dict[str, Any]:
    config = {"imap_host": "127.0.0.1", "imap_port": mail.dovecot.port, "imap_security": "none",
              "imap_user": SUPPORT, "imap_password": USERS[SUPPORT],
              "smtp_host": "127.0.0.1", "smtp_port": mail.smtp.port, "smtp_security": "none",
              "smtp_user": "", "from_address": SUPPORT, "from_name": "小美客服",
              "poll_interval": 5}
    config.update(extra)
    return config


@pytest.fixture
def email_app(request, tmp_path, mail):
    """The app on SQLite (or PostgreSQL, for the tests parametrised so), set up
    after the mail servers so its poller stops before they do. The embedded job
    queue (a thread, as in a single-process install), with short waits between
    retries so the outage test sees one happen."""
    config: dict[str, Any] = dict(JOBS_INLINE=False, OUTBOUND_ALLOWED_NETWORKS=["127.0.0.0/8"],
                                  CHANNEL_DELIVERY_RETRY=(8, (1, 2, 2, 3, 5, 5, 10, 10)))
    if getattr(request, "param", "sqlite") == "postgres":
        url = request.getfixturevalue("pg_database_url")
        truncate_all(url)
        config["DATABASE_URL"] = url
    app = make_app(tmp_path, **config)
    with app.app_context():
        yield app
    close_app(app)


BOTH_DATABASES = pytest.mark.parametrize("email_app", ["sqlite", "postgres"], indirect=True)


def enable(api: ApiClient, mail: Mail, **extra: Any) -> None:
    response = api.put("/api/v1/channels/email",
                       json={"enabled": True, "config": channel_config(mail, **extra)})
    assert response.status_code == 200, response.get_json()


def parsed_all(mail: Mail, user: str, count: int) -> list[Any]:
    return wait_until(lambda: (got := mail.inbox(user)) and len(got) >= count and got,
                      what=f"{count} mails in {user}'s inbox")


def visitor_messages(cid: int) -> list[Message]:
    return list(Message.select().where(Message.conversation == cid,
                                       Message.sender_kind == "visitor").order_by(Message.seq))


@BOTH_DATABASES
def test_mail_to_the_support_mailbox_is_answered_by_the_bot_then_an_agent_in_one_thread(
        email_app, mail):
    flow: list[str] = []

    def log(line: str) -> None:
        flow.append(line)
        print(line)  # noqa: T201 - the flow as it ran, for the closing note (pytest -s)

    api = ApiClient.registered(email_app)
    created = api.post("/api/v1/knowledge", json={
        "key": "service-hours", "questions": ["客服几点上班", "你们几点上班"],
        "answer": "在线客服每天 9:00-21:00 在线，节假日照常。"})
    assert created.status_code == 201, created.get_json()
    agent = api.online_agent()
    enable(api, mail)
    tested = api.post("/api/v1/channels/email/test", json={}).get_json()
    assert tested["ok"], tested
    log(f"admin: test connection -> {tested['message']}")

    # 1. A customer writes to the support address.
    first_id = mail.send(VISITOR, "营业时间", "请问你们几点上班？\n\n-- \n张三\n某某贸易公司 采购部")
    log(f"visitor {VISITOR}: sent {first_id} 'Subject: 营业时间'")
    conversation = wait_until(lambda: Conversation.get_or_none(Conversation.channel == "email"),
                              what="a conversation of the e-mail channel")
    log(f"meiqia: conversation {conversation.id} (channel={conversation.channel}, "
        f"status={conversation.status}) from the mailbox (IMAP IDLE)")
    wait_until(lambda: visitor_messages(conversation.id), what="the customer's message")
    assert visitor_messages(conversation.id)[0].body == "请问你们几点上班？"  # signature cut

    # 2. The bot's answer arrives by e-mail, threaded on the customer's mail.
    bot_mail = parsed_all(mail, VISITOR, 1)[0]
    bot = Message.select().where(Message.conversation == conversation.id,
                                 Message.sender_kind == "bot").first()
    assert bot is not None and "9:00-21:00" in bot.body
    assert bot.body.strip() in bot_mail.get_content()
    assert bot_mail["In-Reply-To"] == first_id
    assert str(bot_mail["Subject"]) == "Re: 营业时间"
    assert bot_mail["Auto-Submitted"] == "auto-replied"
    log(f"visitor inbox: bot answer {bot_mail['Message-ID']} In-Reply-To={bot_mail['In-Reply-To']}"
        f" Subject={bot_mail['Subject']!s} Auto-Submitted={bot_mail['Auto-Submitted']}: "
        f"{bot.body.strip()[:40]!r}")

    # 3. He answers "人工" in the same thread, quoting our mail as Gmail does.
    quote = "\n".join("> " + line for line in bot_mail.get_content().splitlines())
    human_id = mail.send(
        VISITOR, "Re: 营业时间",
        f"人工\n\n在 2026年12月4日周五 10:00，小美客服 <{SUPPORT}> 写道：\n{quote}\n",
        In_Reply_To=bot_mail["Message-ID"],
        References=f"{first_id} {bot_mail['Message-ID']}")
    log(f"visitor: replied {human_id} '人工' In-Reply-To={bot_mail['Message-ID']}")
    wait_until(lambda: Conversation.get_by_id(conversation.id).handler_id == agent.agent["id"],
               what="the conversation handed to the online agent")
    assert [m.body for m in visitor_messages(conversation.id)][-1] == "人工"  # quote cut
    assert Conversation.select().where(Conversation.channel == "email").count() == 1
    log(f"meiqia: '人工' (quote cut) -> conversation {conversation.id} assigned to agent "
        f"{agent.agent['name']} (status={Conversation.get_by_id(conversation.id).status})")

    # 4. The agent answers in the workspace; the answer lands in the same thread.
    before = len(mail.inbox(VISITOR))
    answer = agent.post(f"/api/v1/conversations/{conversation.id}/messages",
                        json={"body": "您好，我是李客服：我们每天 9:00-21:00 上班。",
                              "client_msg_id": "agent-1"})
    assert answer.status_code == 201, answer.get_json()

    def agent_mail() -> Any:
        for got in mail.inbox(VISITOR)[before:]:
            if "我是李客服" in got.get_content():
                return got
        return None

    reply = wait_until(agent_mail, what="the agent's answer in the visitor's inbox")
    assert reply["In-Reply-To"] == human_id
    refs = reply["References"].split()
    assert refs[0] == first_id and bot_mail["Message-ID"] in refs and human_id in refs
    assert str(reply["Subject"]) == "Re: 营业时间" and reply["Auto-Submitted"] is None
    assert "李客服" in str(reply["From"])
    log(f"visitor inbox: agent answer {reply['Message-ID']} From={reply['From']!s} "
        f"In-Reply-To={reply['In-Reply-To']} References={len(refs)} ids (first {refs[0]})")

    # The customer answering the agent's mail continues the same conversation.
    thanks_id = mail.send(VISITOR, "Re: 营业时间", "好的，谢谢！\n\n发自我的iPhone",
                          In_Reply_To=reply["Message-ID"],
                          References=" ".join(refs + [reply["Message-ID"]]))
    wait_until(lambda: [m.body for m in visitor_messages(conversation.id)][-1] == "好的，谢谢！",
               what="the customer's thanks in the conversation")
    thanks = wait_until(lambda: ChannelExternalId.get_or_none(  # recorded after the message
        ChannelExternalId.external_id == thanks_id), what="the thanks' external id")
    assert thanks.conversation_id == conversation.id
    log(f"visitor: replied {thanks_id} to the agent's mail -> same conversation "
        f"{conversation.id} ('发自我的iPhone' cut)")

    # 5. The SMTP server goes down: the next answer is retried, shown, and not lost.
    mail.smtp.stop()
    log("SMTP server stopped")
    down = agent.post(f"/api/v1/conversations/{conversation.id}/messages",
                      json={"body": "另外，周末也有人值班。", "client_msg_id": "agent-2"})
    assert down.status_code == 201
    message_id = down.get_json()["message"]["id"]

    def delivery() -> dict[str, Any]:
        states = agent.get(f"/api/v1/conversations/{conversation.id}/deliveries").get_json()
        return next(d for d in states["deliveries"] if d["message_id"] == message_id)

    retrying = wait_until(lambda: (d := delivery())["status"] == "retrying" and d,
                          what="the delivery shown as retrying")
    assert "SMTP" in retrying["reason"] and retrying["next_attempt_at"]
    log(f"agent sees delivery {retrying['id']}: status={retrying['status']} "
        f"attempts={retrying['attempts']} reason={retrying['reason'][:70]!r}... "
        f"next attempt {retrying['next_attempt_at']}")
    mail.smtp.start()
    log("SMTP server started again")
    sent = wait_until(lambda: (d := delivery())["status"] == "sent" and d,
                      what="the delivery sent after the outage")
    assert sent["external_id"]
    late = wait_until(lambda: next((m for m in mail.inbox(VISITOR)
                                    if m["Message-ID"] == sent["external_id"]), None),
                      what="the delayed answer in the visitor's inbox")
    assert "周末也有人值班" in late.get_content() and late["In-Reply-To"] == thanks_id
    log(f"agent sees delivery {sent['id']}: status=sent after {sent['attempts']} attempts; "
        f"visitor inbox: {late['Message-ID']} In-Reply-To={late['In-Reply-To']}")

    # Nothing lost: every message the visitor should see went out exactly once.
    states = agent.get(f"/api/v1/conversations/{conversation.id}/deliveries").get_json()
    assert {d["status"] for d in states["deliveries"]} == {"sent"}
    out_ids = [d["external_id"] for d in states["deliveries"]]
    received = [m["Message-ID"] for m in mail.inbox(VISITOR)]
    assert sorted(out_ids) == sorted(received)
    kinds = [f"{(m := Message.get_by_id(d['message_id'])).sender_kind}:{m.body[:12]}"
             for d in states["deliveries"]]
    log(f"deliveries: {len(out_ids)} sent ({' | '.join(kinds)}); {len(received)} mails in "
        "the visitor's inbox, same Message-IDs")

    # 6. Ended, the conversation is in history under the e-mail channel.
    ended = agent.post(f"/api/v1/conversations/{conversation.id}/end", json={})
    assert ended.status_code == 200, ended.get_json()
    history = api.get("/api/v1/history?channel=email").get_json()
    assert [(row["id"], row["channel"]) for row in history["items"]] == [
        (conversation.id, "email")]
    assert api.get("/api/v1/history?channel=web").get_json()["items"] == []
    row = history["items"][0]
    log(f"history ?channel=email: conversation {row['id']} channel={row['channel']} "
        f"visitor={row['visitor']}")
    print("\n".join(["", "E-MAIL FLOW", *flow]))  # noqa: T201


@BOTH_DATABASES
def test_the_same_mail_fetched_twice_is_one_message_and_auto_replies_are_not_answered(
        email_app, mail):
    api = ApiClient.registered(email_app)
    enable(api, mail)
    first = mail.send(VISITOR, "发票", "请开发票")
    conversation = wait_until(lambda: Conversation.get_or_none(Conversation.channel == "email"),
                              what="the conversation")
    wait_until(lambda: len(mail.outgoing()) >= 1, what="the bot's answer")
    answered = len(mail.outgoing())

    # The same mail again (a client that sent it twice, a redelivery), then an
    # out-of-office reply, a bounce and our own mail coming back, then one
    # ordinary mail: the poller takes the mailbox in order, so once the
    # ordinary one is in, the others were read before it.
    mail.send(VISITOR, "发票", "请开发票", msgid=first)
    mail.send(VISITOR, "自动回复: Re: 发票", "我正在休假，12月10日回来。",
              Auto_Submitted="auto-replied", X_Autoreply="yes")
    mail.send("MAILER-DAEMON@mx.customer.test", "Undelivered Mail Returned to Sender",
              "This is the mail system at host mx.customer.test.")
    mail.send(VISITOR, "Re: 发票", "Precedence bulk newsletter", Precedence="bulk")
    mail.send(SUPPORT, "Re: 发票", "our own mail, forwarded back")
    last = mail.send("li@customer.test", "退货", "我要退货")
    wait_until(lambda: ChannelExternalId.get_or_none(ChannelExternalId.external_id == last),
               what="the ordinary mail after the automatic ones")

    assert [m.body for m in visitor_messages(conversation.id)] == ["请开发票"]
    assert ChannelExternalId.select().where(ChannelExternalId.external_id == first).count() == 1
    assert Conversation.select().where(Conversation.channel == "email").count() == 2
    wait_until(lambda: any("li@customer.test" in rcpts for _f, rcpts in mail.outgoing()),
               what="the bot's answer to the ordinary mail")
    to_zhang = [rcpts for _f, rcpts in mail.outgoing() if VISITOR in rcpts]
    assert len(to_zhang) == answered  # nothing more went to the customer: no loop
    assert {r for _f, rcpts in mail.outgoing() for r in rcpts} == {VISITOR, "li@customer.test"}

    # The poller forgets where it was (a restored backup, a renumbered folder) and
    # someone marks everything unread: it reads the whole mailbox again, and
    # still every mail is stored once and answered once.
    from imapclient import IMAPClient

    from meiqia.channels import registry

    messages_before = Message.select().count()
    sent_before = len(mail.outgoing())
    off = api.put("/api/v1/channels/email", json={"enabled": False})
    assert off.status_code == 200, off.get_json()  # its poller is stopped
    with IMAPClient("127.0.0.1", port=mail.dovecot.port, ssl=False) as client:
        client.login(SUPPORT, USERS[SUPPORT])
        client.select_folder("INBOX")
        every = client.search(["ALL"])
        client.remove_flags(every, [b"\\Seen"])
        client.logout()
    host = registry.make_host(api.team["id"], "email", app=email_app)
    host.state.delete("imap")
    enable(api, mail)
    wait_until(lambda: (host.state.get("imap") or {}).get("last_uid") == max(every),
               what="the poller through the whole mailbox again")
    assert Message.select().count() == messages_before
    assert len(mail.outgoing()) == sent_before


def test_a_refused_recipient_fails_at_once_is_shown_and_retried_by_hand(email_app, mail):
    api = ApiClient.registered(email_app)
    enable(api, mail)
    mail.smtp.refuse.add(VISITOR)  # the SMTP server answers 550 for him
    mail.send(VISITOR, "咨询", "你们几点上班？")
    conversation = wait_until(lambda: Conversation.get_or_none(Conversation.channel == "email"),
                              what="the conversation")

    def states() -> list[dict[str, Any]]:
        return api.get(f"/api/v1/conversations/{conversation.id}/deliveries"
                       ).get_json()["deliveries"]

    failed = wait_until(lambda: (s := states()) and all(d["status"] == "failed" for d in s)
                        and s, what="the deliveries failed")
    assert all("550" in d["reason"] and d["attempts"] == 1 for d in failed)  # no retries
    mail.smtp.refuse.clear()  # the admin fixed the address / the server
    for d in failed:
        retried = api.post(f"/api/v1/channel-deliveries/{d['id']}/retry")
        assert retried.status_code == 200, retried.get_json()
    wait_until(lambda: all(d["status"] == "sent" for d in states()), what="sent after retry")
    assert len(mail.inbox(VISITOR)) == len(failed)


def test_attachments_take_the_upload_checks_and_a_refused_one_is_said(email_app, mail):
    import base64

    email_app.config["MAX_FILE_BYTES"] = 1000
    api = ApiClient.registered(email_app)
    enable(api, mail)
    png = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8B"
                           "QDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")
    message = EmailMessage()
    message["From"] = f"张三 <{VISITOR}>"
    message["To"] = SUPPORT
    message["Subject"] = "破损照片"
    message["Message-ID"] = msgid = make_msgid(domain="customer.test")
    message.set_content("收到的杯子碎了，照片和检测报告见附件。")
    message.add_attachment(png, maintype="image", subtype="png", filename="破损照片.png")
    message.add_attachment(b"%PDF-1.4 " + b"x" * 2000, maintype="application",
                           subtype="pdf", filename="检测报告.pdf")
    message.add_attachment(b"order MQ123", maintype="text", subtype="plain",
                           filename="订单号.txt")
    with smtplib.SMTP("127.0.0.1", mail.smtp.port, timeout=10) as client:
        client.send_message(message)
    conversation = wait_until(lambda: Conversation.get_or_none(Conversation.channel == "email"),
                              what="the conversation")
    wait_until(lambda: len(visitor_messages(conversation.id)) == 4, what="four parts")
    text, image, refused, kept = visitor_messages(conversation.id)
    assert text.body == "收到的杯子碎了，照片和检测报告见附件。" and text.kind == "text"
    assert image.kind == "image" and image.body == "破损照片.png"
    assert refused.kind == "text" and "检测报告.pdf" in refused.body
    assert "at most" in refused.body and "附件未接收" in refused.body
    assert kept.kind == "file" and kept.body == "订单号.txt"  # the rest of the mail kept
    wait_until(lambda: {e.external_id for e in ChannelExternalId.select().where(
        ChannelExternalId.direction == "in")} == {msgid}, what="the mail's external id")
    # The bot's answer after the whole mail, as the mail reader stores it (each
    # part used to be a receive of its own: text, answer, image, file, file).
    lines = wait_until(lambda: (got := [(m.sender_kind, m.kind) for m in Message.select().where(
        Message.conversation == conversation.id, Message.visibility == "public",
        Message.id >= text.id).order_by(Message.id)]) and got[-1][0] == "bot" and got,
        what="the bot's answer")
    assert lines[:4] == [("visitor", "text"), ("visitor", "image"), ("visitor", "text"),
                         ("visitor", "file")], lines
    assert {kind for kind, _ in lines[4:]} == {"bot"}, lines  # one answer, no "cannot read"
    # Replies thread on the mail itself, whichever of its parts came last.
    # (An answer sent after another also references that one: they go out in order.)
    answers = parsed_all(mail, VISITOR, 1)
    assert all(a["In-Reply-To"] == msgid and a["References"].split()[0] == msgid
               for a in answers), [(a["In-Reply-To"], a["References"]) for a in answers]

    # A file the agent sends goes out as an attachment of the answer.
    boundary = "----meiqia-email-test"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"kind\"\r\n\r\nfile\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"退货单.pdf\"\r\nContent-Type: application/pdf\r\n\r\n").encode() \
        + b"%PDF-1.4 return form" + f"\r\n--{boundary}--\r\n".encode()
    up = api.post(f"/api/v1/conversations/{conversation.id}/uploads", data=body,
                  content_type=f"multipart/form-data; boundary={boundary}")
    assert up.status_code == 201, up.get_json()
    sent = api.post(f"/api/v1/conversations/{conversation.id}/messages", json={
        "body": "退货单.pdf", "kind": "file", "attachment": up.get_json()["key"],
        "client_msg_id": "file-1"})
    assert sent.status_code == 201, sent.get_json()

    def with_file() -> Any:
        for got in mail.inbox(VISITOR):
            files = list(got.iter_attachments())
            if files:
                return files
        return None

    files = wait_until(with_file, what="the agent's file in the visitor's inbox")
    assert [(f.get_filename(), f.get_content()) for f in files] == [
        ("退货单.pdf", b"%PDF-1.4 return form")]


def test_settings_are_checked_and_secrets_never_come_back(email_app, mail):
    api = ApiClient.registered(email_app)
    email_app.config["OUTBOUND_ALLOWED_NETWORKS"] = []
    refused = api.put("/api/v1/channels/email", headers={"X-Meiqia-Lang": "zh-CN"}, json={
        "enabled": True, "config": channel_config(mail, imap_host="169.254.169.254")})
    assert refused.status_code == 422
    assert refused.get_json()["error"]["message"].startswith(
        "IMAP 服务器：169.254.169.254 解析为 169.254.169.254，是内网地址（link-local）")
    missing = api.put("/api/v1/channels/email", json={"enabled": True, "config": {
        "imap_host": "imap.example.com"}})
    assert missing.status_code == 422
    bad_port = api.put("/api/v1/channels/email", headers={"X-Meiqia-Lang": "zh-CN"}, json={
        "enabled": True, "config": channel_config(mail, smtp_port=70000)})
    assert bad_port.get_json()["error"]["message"] == "SMTP 端口：不能大于 65535"
    email_app.config["OUTBOUND_ALLOWED_NETWORKS"] = ["127.0.0.0/8"]
    enable(api, mail)
    shown = api.get("/api/v1/channels/email").get_json()
    assert shown["config"]["imap_password"] == "********"
    assert not shown["config"].get("smtp_password")  # not set: the IMAP password is used
    assert USERS[SUPPORT] not in str(shown)


def test_the_reader_comes_back_after_the_imap_server_crashed(email_app, mail, caplog):
    api = ApiClient.registered(email_app)
    enable(api, mail)
    mail.send(VISITOR, "第一封", "你们几点上班？")
    wait_until(lambda: Conversation.get_or_none(Conversation.channel == "email"),
               what="the first mail taken")
    mail.dovecot.restart()  # the reader's IDLE session is cut
    second = mail.send("li@customer.test", "第二封", "我要退货")
    wait_until(lambda: ChannelExternalId.get_or_none(ChannelExternalId.external_id == second),
               what="the mail that arrived after the crash")
    assert Conversation.select().where(Conversation.channel == "email").count() == 2
    assert any("reading INBOX failed" in r.getMessage() for r in caplog.records)  # was cut


def test_a_blip_after_an_outage_is_one_failure_and_the_next_mail_is_read(email_app, mail):
    """An outage, the reader back ("ok"), then the IMAP server restarted (a blip):
    the blip is one failure, so the reader is back after one poll interval. An
    IDLE session that read mail and then broke off never reset the count, so the
    blip counted on from the outage ("failing, 7 in a row" right after a good
    read) and the next mail waited the outage's back-off, up to 5 minutes."""
    api = ApiClient.registered(email_app)
    enable(api, mail)  # IDLE, poll interval 5 s

    def reader() -> dict[str, Any]:
        return api.get("/api/v1/channels/email",
                       headers={"X-Meiqia-Lang": "en"}).get_json()["reader"]

    wait_until(lambda: reader()["state"] == "ok", what="the reader reading")
    mail.dovecot.kill()  # the outage: the IDLE session cut, every reconnection refused
    wait_until(lambda: reader()["failures"] >= 2, what="failures in a row in the outage")
    mail.dovecot.start()
    back = wait_until(lambda: (r := reader())["state"] == "ok" and r,
                      what="the reader back after the outage")
    assert back["failures"] == 0 and back["read_at"], back

    mail.dovecot.restart()  # the blip: the session that reads in IDLE is cut
    blip = wait_until(lambda: (r := reader())["state"] == "failing" and r,
                      what="the blip seen by the reader")
    assert blip["failures"] == 1, blip  # not the outage's count and one
    assert blip["message"].startswith("Reading the mailbox failed (1 in a row)")
    msgid = mail.send("li@customer.test", "断线之后", "我的订单还没发货")
    shown: list[int] = []

    def read() -> bool:
        shown.append(reader()["failures"])
        return ChannelExternalId.get_or_none(ChannelExternalId.external_id == msgid) is not None

    wait_until(read, timeout=30, what="the mail sent after the blip")
    assert max(shown) <= 1, shown
    assert wait_until(lambda: (r := reader())["state"] == "ok" and r,
                      what="the reader ok again")["failures"] == 0


def test_polling_without_idle_and_test_connection_failures(email_app, mail):
    api = ApiClient.registered(email_app)
    enable(api, mail, imap_idle=False)
    mail.send(VISITOR, "你好", "你们几点上班？")
    wait_until(lambda: Conversation.get_or_none(Conversation.channel == "email"),
               what="the mail taken by polling")
    wrong = api.post("/api/v1/channels/email/test", json={"config": channel_config(
        mail, imap_password="wrong")}).get_json()
    assert not wrong["ok"] and "IMAP" in wrong["message"] and "wrong" not in wrong["message"]
    mail.smtp.stop()
    down = api.post("/api/v1/channels/email/test", json={}).get_json()
    assert not down["ok"] and "SMTP" in down["message"]
    assert api.get("/api/v1/channels/email").get_json()["config"]["imap_password"] == "********"


def test_two_processes_one_reader_and_the_other_takes_over(email_app, mail, tmp_path):
    """Every web process runs the channel; one reads the mailbox. A second process on
    the same database (``meiqia run``, as gunicorn's workers are processes) waits
    while the first holds the claim, and reads the mail once the first stops (which
    gives the claim up at once), and gives it up itself when SIGTERM stops it.

    A real process, not a second app in this one: the models' database proxy is one
    per process, and a second app re-bound it under the first app's reader, which
    left a write transaction open on a connection nobody used again (the test's
    "database is locked" failures)."""
    import os
    import subprocess
    import sys
    import urllib.request

    from meiqia.channels import registry
    from meiqia.channels.email.poller import LEASE_KEY
    from meiqia.models import ChannelState
    from tests.integration.test_two_processes import free_port

    api = ApiClient.registered(email_app)
    enable(api, mail)
    mail.send(VISITOR, "第一封", "你们几点上班？")
    wait_until(lambda: Conversation.get_or_none(Conversation.channel == "email"),
               what="the first mail, read by the first process")
    poller1 = registry.instance(api.team["id"], "email", email_app).poller

    def reader() -> Any:
        row = ChannelState.get_or_none(ChannelState.team == api.team["id"],
                                       ChannelState.channel == "email",
                                       ChannelState.key == LEASE_KEY)
        return (row.value or {}).get("token") if row is not None else None

    port = free_port()
    env = {**os.environ, "MEIQIA_DATABASE_URL": email_app.config["DATABASE_URL"],
           "MEIQIA_SECRET_KEY": email_app.config["SECRET_KEY"],
           "MEIQIA_INSTANCE_PATH": str(tmp_path / "second"), "MEIQIA_REDIS_URL": "",
           "MEIQIA_OUTBOUND_ALLOWED_NETWORKS": "127.0.0.0/8"}
    log = open(tmp_path / "second.log", "wb")
    second = subprocess.Popen([sys.executable, "-m", "meiqia.cli", "run", "--port", str(port)],
                              env=env, stdout=log, stderr=subprocess.STDOUT)

    def up() -> bool:  # its first request starts its channels
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5):
                return True
        except OSError:
            return False

    try:
        wait_until(up, what="the second process serving")
        mail.send("li@customer.test", "第二封", "我要退货")
        wait_until(lambda: Conversation.select().where(Conversation.channel == "email"
                                                       ).count() == 2, what="the second mail")
        assert poller1.rounds >= 1 and reader() == poller1.token  # one IMAP reader, not two
        registry.stop_all(email_app)  # the first process stops (a worker restarted)
        mail.send("wang@customer.test", "第三封", "发票怎么开？")
        wait_until(lambda: Conversation.select().where(
            Conversation.channel == "email").count() == 3,
            what="the third mail, read by the second process")
        assert reader() not in (None, poller1.token) and not poller1.thread
        # The second process stopped by SIGTERM gives the mailbox back as it exits,
        # so the next one reads new mail at once, not when the claim runs out.
        second.terminate()
        second.wait(30)
        assert reader() is None
    finally:
        second.terminate()
        try:
            second.wait(30)
        except subprocess.TimeoutExpired:
            second.kill()
        log.close()


def test_a_subject_only_mail_a_long_mail_and_a_port_that_is_no_imap_server(email_app, mail):
    """What an e-mail team met: a mail with only a subject was dropped, one longer
    than a chat message was cut without a word, and "test connection" against a
    port where something else listens quoted that server's greeting."""
    from meiqia.channels.inbound import FULL_TEXT_NAME
    from meiqia.channels.inbound import TOO_LONG_NOTE
    from meiqia.models import Attachment

    api = ApiClient.registered(email_app)
    enable(api, mail)
    mail.send(VISITOR, "回复：只有主题：发货快吗", "")
    first = wait_until(lambda: Message.get_or_none(Message.sender_kind == "visitor"),
                       what="the subject-only mail")
    assert first.body == "只有主题：发货快吗"
    long_text = "请帮我查一下订单。" * 1000 + "结尾标记END"
    mail.send("li@customer.test", "很长的邮件", long_text)
    text = wait_until(lambda: Message.get_or_none(Message.sender_kind == "visitor",
                                                  Message.body.endswith(TOO_LONG_NOTE)),
                      what="the long mail")
    whole = wait_until(lambda: Message.get_or_none(
        Message.conversation == text.conversation_id, Message.kind == "file"),
        what="its whole text beside it")
    stored = Attachment.get(Attachment.key == whole.payload["attachment"])
    assert stored.original_name == FULL_TEXT_NAME
    from meiqia.services import uploads

    with open(uploads.path_of(stored), encoding="utf-8") as handle:
        assert handle.read().strip() == long_text
    # IMAP settings pointing at the SMTP server: the gate's one text, not its banner.
    probe = api.post("/api/v1/channels/email/test", json={"config": channel_config(
        mail, imap_port=mail.smtp.port)}).get_json()
    assert not probe["ok"], probe
    assert "could not reach an IMAP server" in probe["message"], probe
    assert "220" not in probe["message"] and "SMTP" not in probe["message"], probe


def test_the_customer_card_gets_the_sender_address_and_keeps_one_an_agent_typed(email_app, mail):
    """An e-mail customer's card had no e-mail, so a ticket an agent made from his
    conversation said he left no address and was never mailed."""
    api = ApiClient.registered(email_app)
    enable(api, mail)
    mail.send(VISITOR, "发票", "请开发票")
    conversation = wait_until(lambda: Conversation.get_or_none(Conversation.channel == "email"),
                              what="the conversation")
    card = api.get(f"/api/v1/conversations/{conversation.id}").get_json()["customer"]
    assert card["email"] == VISITOR and card["name"] == "张三"
    ticket = api.post("/api/v1/tickets", json={"conversation_id": conversation.id,
                                               "subject": "开发票"})
    assert ticket.status_code == 201, ticket.get_json()
    assert ticket.get_json()["contact"]["email"] == VISITOR  # it can be answered by mail

    # An address an agent typed on the card stays when he writes again.
    typed = api.patch(f"/api/v1/visitors/{card['id']}", json={"email": "zhang.work@corp.test"})
    assert typed.status_code == 200, typed.get_json()
    again = mail.send(VISITOR, "Re: 发票", "抬头写公司名")
    wait_until(lambda: ChannelExternalId.get_or_none(ChannelExternalId.external_id == again),
               what="his second mail")
    card = api.get(f"/api/v1/conversations/{conversation.id}").get_json()["customer"]
    assert card["email"] == "zhang.work@corp.test"


def test_an_e_mail_customer_gets_the_answer_without_a_welcome_mail_first(email_app, mail):
    """The team's welcome line (for the widget and WeChat) went to every new e-mail
    customer as a mail of its own before the answer."""
    api = ApiClient.registered(email_app)
    welcome = "您好，欢迎光临小美商城！"
    patched = api.patch("/api/v1/team", json={"settings": {"welcome_message": welcome}})
    assert patched.status_code == 200, patched.get_json()
    enable(api, mail)
    asked = mail.send(VISITOR, "营业时间", "你们几点上班？")
    conversation = wait_until(lambda: Conversation.get_or_none(Conversation.channel == "email"),
                              what="the conversation")

    def deliveries() -> list[dict[str, Any]]:
        return api.get(f"/api/v1/conversations/{conversation.id}/deliveries"
                       ).get_json()["deliveries"]

    sent = wait_until(lambda: (d := deliveries()) and all(x["status"] == "sent" for x in d)
                      and d, what="the answer sent")
    got = parsed_all(mail, VISITOR, len(sent))
    assert len(got) == len(sent) and all(welcome not in m.get_content() for m in got)
    assert got[0]["In-Reply-To"] == asked
    public = Message.select().where(Message.conversation == conversation.id,
                                    Message.visibility == "public").order_by(Message.id)
    assert public[0].sender_kind == "visitor"  # nothing before his mail
    assert welcome not in [m.body for m in public]


def test_the_channels_api_says_when_the_mailbox_cannot_be_read(email_app, mail):
    """The mail server down: the page and API said "on", 0 failures, while the
    reader failed every few seconds. A reader pointed at a closed port."""
    from tests.integration.test_two_processes import free_port

    api = ApiClient.registered(email_app)
    enable(api, mail, imap_port=free_port())  # nothing listens there

    def reader(lang: str) -> dict[str, Any]:
        shown = api.get("/api/v1/channels/email", headers={"X-Meiqia-Lang": lang}).get_json()
        return shown["reader"]

    failing = wait_until(lambda: (r := reader("zh-CN"))["state"] == "failing" and r,
                         what="the reader's failure in the channel API")
    assert failing["message"].startswith("读取邮箱失败（连续 ")
    assert "无法连接 IMAP 服务器" in failing["message"] and "could not" not in failing["message"]
    assert failing["error_at"] and failing["read_at"] is None and failing["failures"] >= 1
    english = reader("en")
    assert english["message"].startswith("Reading the mailbox failed (")
    assert "could not reach an IMAP server" in english["error"]
    listed = api.get("/api/v1/channels", headers={"X-Meiqia-Lang": "zh-CN"}).get_json()
    assert next(c for c in listed if c["type"] == "email")["reader"]["state"] == "failing"

    enable(api, mail)  # the admin corrects the port
    ok = wait_until(lambda: (r := reader("zh-CN"))["state"] == "ok" and r,
                    what="the reader reading again")
    assert ok["read_at"] and ok["failures"] == 0 and ok["message"] == "正在读取邮箱"
    off = api.put("/api/v1/channels/email", json={"enabled": False})
    assert off.get_json()["reader"] is None  # off: no reader to speak of


def _raw_mail(sender: str, body: str, **headers: str) -> EmailMessage:
    """A mail as some clients and scripts send it: no Subject, no Message-ID
    (smtplib and aiosmtpd add none)."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = SUPPORT
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content(body)
    return message


def test_a_mail_without_subject_or_message_id_is_answered_in_one_language_and_honest_ids(
        email_app, mail):
    """An outside check: the answer to a mail without a Subject went out as
    "Re: 在线客服 Support" (two languages in one line), and the answer to a mail
    without a Message-ID said In-Reply-To/References <…@meiqia.invalid>, an id we
    made up and no client knows. Now: the subject in the customer's language (else
    the team's), no In-Reply-To when his mail had no id, and his next mail (a reply
    to ours, with ids) threads as usual on real ids only."""
    api = ApiClient.registered(email_app)
    enable(api, mail)
    sent_raw: list[str] = []

    def send(message: EmailMessage) -> None:
        with smtplib.SMTP("127.0.0.1", mail.smtp.port, timeout=10) as client:
            client.send_message(message)
        sent_raw.append(message.as_string())

    def answers(user: str, count: int) -> list[Any]:
        got = parsed_all(mail, user, count)
        return [m for m in got if m["From"] and SUPPORT in str(m["From"])]

    send(_raw_mail(f"Tom <{VISITOR}>", "Where is my parcel? It has not arrived yet."))
    send(_raw_mail("李四 <li@customer.test>", "我的包裹到哪里了？还没有收到。"))
    english = answers(VISITOR, 1)
    chinese = answers("li@customer.test", 1)
    for got in english + chinese:
        head = "".join(f"{k}: {v}\n" for k, v in got.items())
        assert "meiqia.invalid" not in head, head
        assert got["In-Reply-To"] is None and got["References"] is None, head
    assert {str(m["Subject"]) for m in english} == {"Re: Customer support"}
    assert {str(m["Subject"]) for m in chinese} == {"Re: 在线客服"}
    assert all(m.get_content().startswith("Sorry") for m in english)

    # He answers our mail (his client writes ids, and keeps our subject).
    ours = english[-1]["Message-ID"]
    again = _raw_mail(f"Tom <{VISITOR}>", "I ordered it last week, order 1234.",
                      Subject="Re: Customer support", Message_ID="<tom-2@customer.test>",
                      In_Reply_To=ours, References=ours)
    send(again)
    later = wait_until(lambda: (got := answers(VISITOR, len(english) + 1))
                       and len(got) > len(english) and got, what="the answer to his reply")
    # Every answer to his reply (the bot may send a second line to it) threads on it:
    # his mail last in References (a full run found our first answer listed after it).
    replies = [m for m in later[len(english):] if m["In-Reply-To"] == "<tom-2@customer.test>"]
    assert replies, [m["In-Reply-To"] for m in later]
    reply = replies[-1]
    refs = reply["References"].split()
    assert ours in refs and refs[-1] == "<tom-2@customer.test>", refs
    assert not any("meiqia.invalid" in r for r in refs), refs
    assert str(reply["Subject"]) == "Re: Customer support"


def test_a_mail_the_server_cannot_take_now_waits_and_is_never_skipped(tmp_path, mail):
    """A privacy hook that cannot check a mail under ``PRIVACY_FALLBACK = "refuse"``
    makes the channel's ``receive`` answer ``unavailable`` (docs/plugins.md). The
    poller counted that as the mail's failure and, after ``MAX_ATTEMPTS`` rounds,
    marked it read and skipped it: the customer's mail was lost (found while fixing
    the plugin runtime). Now it waits, and is stored once the hook works again."""
    from meiqia.channels.email import poller
    from tests.channels.test_receive_refused import Redactor

    class Counting(Redactor):
        """Counts the rounds that tried the mail (each asks the redactor once)."""

        calls = 0

        @hookimpl
        def before_message_saved(self, message: dict, conversation: Any) -> None:
            if "请开发票" in str(message.get("body", "")):  # the mail, not system lines
                self.calls += 1
            return super().before_message_saved(message, conversation)

    redactor = Counting()
    app = make_app(tmp_path, plugins=(redactor,), JOBS_INLINE=False,
                   OUTBOUND_ALLOWED_NETWORKS=["127.0.0.0/8"], PRIVACY_FALLBACK="refuse",
                   PLUGIN_BREAKER_FAILURES=1000)
    try:
        with app.app_context():
            api = ApiClient.registered(app)
            api.without_bot()
            enable(api, mail, poll_interval=5)
            mail.send(VISITOR, "发票", "请开发票，我的电话13800138000")
            # More rounds than a broken mail is given (the old poller stopped trying).
            wait_until(lambda: redactor.calls > poller.MAX_ATTEMPTS, timeout=60,
                       what="more rounds at the mail than MAX_ATTEMPTS")
            assert Message.select().where(Message.sender_kind == "visitor").count() == 0
            redactor.broken = False
            stored = wait_until(
                lambda: list(Message.select().where(Message.sender_kind == "visitor")),
                timeout=30, what="the mail, taken once the redactor works again")
            assert [m.body for m in stored] == ["请开发票，我的电话13800138000"]
    finally:
        close_app(app)


def test_the_bot_lines_stored_are_the_mails_the_customer_got(email_app, mail):
    """The conversation (what agents, history and exports show) held the widget's
    lines (「…或者点击“转人工”联系客服。」, 「…需要为您转接人工客服吗？」) while the
    customer's mails said 「…或者回复“人工”联系客服。」 and 「…正在为您转接人工客服。」."""
    from meiqia.services.bot import MESSAGES

    words = MESSAGES["zh-CN"]
    api = ApiClient.registered(email_app)
    enable(api, mail)
    mail.send(VISITOR, "汽车", "你们卖汽车吗？")
    conversation = wait_until(lambda: Conversation.get_or_none(Conversation.channel == "email"),
                              what="the conversation")
    parsed_all(mail, VISITOR, 1)
    mail.send(VISITOR, "飞机", "你们卖飞机吗？")  # the second failure: handed to a person

    def bot_lines() -> list[str]:
        return [m.body for m in Message.select().where(
            Message.conversation == conversation.id, Message.sender_kind == "bot")
            .order_by(Message.id)]

    wait_until(lambda: len(bot_lines()) >= 2, what="the bot's two lines")
    def deliveries() -> list[dict[str, Any]]:
        return api.get(f"/api/v1/conversations/{conversation.id}/deliveries"
                       ).get_json()["deliveries"]

    sent = wait_until(lambda: (d := deliveries()) and all(x["status"] == "sent" for x in d)
                      and d, what="every line sent")
    got = [m.get_content().strip() for m in parsed_all(mail, VISITOR, len(sent))]
    stored = bot_lines()
    assert stored[0] == words["unrecognised_by_reply"], stored
    assert words["offer_human_by_reply"] in stored, stored
    for line in stored:
        assert line in got, f"stored {line!r}, the customer's mails said {got!r}"
