"""Changed tickets reach the sinks, internal notes never do, and failed deliveries back
off on the configured intervals: a real local HTTP receiver, a real local SMTP server
(aiosmtpd), real rq on Redis.
"""

from __future__ import annotations

import calendar
import datetime
import json
import re

import pytest

from meiqia.models import JobRecord
from meiqia.models import SinkDelivery
from meiqia.services import ticket_sinks
from meiqia.services import tickets
from tests.api.test_conversations import start
from tests.conftest import close_app
from tests.conftest import make_app
from tests.helpers import ApiClient
from tests.integration.test_ticket_sinks import SECRET
from tests.integration.test_ticket_sinks import Receiver
from tests.integration.test_ticket_sinks import visitor_ticket
from tests.integration.test_two_processes import free_port

NOTE = "内部：这位客户上次退过款"


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def smtp():
    """A real SMTP server on a free local port; ``smtp.received`` are the messages."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Message

    class Collect(Message):
        def __init__(self) -> None:
            super().__init__()
            self.received: list = []

        def handle_message(self, message):
            self.received.append(message)

    handler = Collect()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    controller.received = handler.received
    yield controller
    controller.stop()


#: The local test servers' network, allowed as an operator would (instance setting).
LOCAL = ["127.0.0.0/8"]


def webhook(api, url):
    api.app.config["OUTBOUND_ALLOWED_NETWORKS"] = LOCAL
    response = api.post("/api/v1/ticket-sinks", json={"type": "webhook", "name": "CRM", "config": {
        "url": url, "secret": SECRET}})
    assert response.status_code == 201, response.get_json()


def email_sink(api, port):
    api.app.config["OUTBOUND_ALLOWED_NETWORKS"] = LOCAL
    response = api.post("/api/v1/ticket-sinks", json={"type": "email", "name": "客服邮箱", "config": {
        "host": "127.0.0.1", "port": port, "from": "bot@shop.example", "to": "team@shop.example"}})
    assert response.status_code == 201, response.get_json()


def text_of(message) -> str:
    from email.header import decode_header
    from email.header import make_header

    subject = str(make_header(decode_header(message["Subject"])))
    return subject + "\n" + message.get_payload(decode=True).decode()


def test_status_change_and_public_reply_are_updated_deliveries_notes_are_not(db_api, receiver):
    webhook(db_api, receiver.url)
    ticket_id = visitor_ticket(db_api).get_json()["id"]
    url = f"/api/v1/tickets/{ticket_id}"
    assert db_api.patch(url, json={"status": "pending"}).status_code == 200
    db_api.post(f"{url}/comments", json={"body": NOTE, "visibility": "internal"})
    db_api.post(f"{url}/comments", json={"body": "已为您补发，请留意快递", "visibility": "public"})

    events = [json.loads(r["body"]) for r in receiver.requests]
    assert [(e["event"], sorted(e["changes"])) for e in events] == [
        ("ticket.created", []), ("ticket.updated", ["status"]), ("ticket.updated", ["reply"])]
    assert [r["headers"]["X-Meiqia-Event"] for r in receiver.requests] == [
        "ticket.created", "ticket.updated", "ticket.updated"]
    status, reply = events[1], events[2]
    assert status["changes"]["status"] == ["open", "pending"]
    assert status["ticket"]["status"] == "pending"
    assert reply["changes"]["reply"] == ["", "已为您补发，请留意快递"]
    assert reply["ticket"]["public_replies"] == ["已为您补发，请留意快递"]
    # The note is in no delivery at all, not even in later ones about the same ticket.
    assert all(NOTE.encode() not in r["body"] for r in receiver.requests)
    assert SinkDelivery.select().count() == 3
    assert {d.status for d in SinkDelivery.select()} == {"delivered"}


def test_email_sink_mails_changes_and_the_customer_gets_the_reply_notes_stay_in(db_api, smtp):
    email_sink(db_api, smtp.port)
    client, token, cid, _ = start(db_api.app, db_api.team["id"])
    created = client.post("/api/v1/widget/tickets", headers={"X-Visitor-Token": token},
                          json={"content": "发票抬头开错了", "email": "kehu@example.com",
                                "conversation_id": cid})
    ticket_id = created.get_json()["id"]
    url = f"/api/v1/tickets/{ticket_id}"
    assert db_api.get(url).get_json()["reply_email"]["will_email"] is True
    db_api.patch(url, json={"status": "pending"})
    db_api.post(f"{url}/comments", json={"body": NOTE, "visibility": "internal"})
    sent = db_api.post(f"{url}/comments", json={"body": "已重新开具", "visibility": "public"})
    assert sent.get_json()["email"] == {"will_email": True, "reason": "",
                                        "message": "emailed to kehu@example.com"}

    to_team = [m for m in smtp.received if m["To"] == "team@shop.example"]
    to_customer = [m for m in smtp.received if m["To"] == "kehu@example.com"]
    assert len(to_team) == 3 and len(to_customer) == 1
    created_mail, status_mail, reply_mail = (text_of(m) for m in to_team)
    assert "新工单" in created_mail and "发票抬头开错了" in created_mail
    assert "工单已更新" in status_mail and "修改了状态：待处理 → 处理中" in status_mail
    assert "工单已更新" in reply_mail and "已重新开具" in reply_mail
    assert "已重新开具" in text_of(to_customer[0])
    assert all(NOTE not in text_of(m) for m in smtp.received)
    delivered_via = db_api.get(url).get_json()["comments"][-1]["delivered_via"]
    assert delivered_via == "widget,email"


def english_ticket_answered(db_api) -> int:
    """A visitor whose widget is in English leaves a message with his e-mail, and an
    agent answers it in public (a reply mail is due): the ticket's id."""
    client = db_api.app.test_client()
    session = client.post("/api/v1/widget/session", json={"team_id": db_api.team["id"]},
                          headers={"X-Meiqia-Lang": "en"}).get_json()
    created = client.post("/api/v1/widget/tickets", headers={
        "X-Visitor-Token": session["token"], "X-Meiqia-Lang": "en"}, json={
        "content": "Wrong invoice title", "email": "customer@example.com",
        "conversation_id": session["conversation"]["conversation_id"]})
    ticket_id = created.get_json()["id"]
    db_api.post(f"/api/v1/tickets/{ticket_id}/comments",
                json={"body": "Issued again", "visibility": "public"})
    return ticket_id


def test_the_customers_reply_email_is_in_his_widgets_language(db_api, smtp):
    email_sink(db_api, smtp.port)
    ticket_id = english_ticket_answered(db_api)
    [mail] = [m for m in smtp.received if m["To"] == "customer@example.com"]
    text = text_of(mail).replace("\r\n", "\n")
    assert text.startswith(f"Reply to your message #{ticket_id}\nIssued again")
    assert "— Your message:\nWrong invoice title" in text
    assert not any("\u4e00" <= ch <= "\u9fff" for ch in text), text


#: What each team's customer writes and its agents type (its own language): the only
#: words of the other language a mail may hold are in it (addresses, the zone's name).
TEAM_TEXT = {
    "en": {"content": "I need a refund for order A1001", "reply": "Refunded today",
           "tag": "refund", "said": "Where is my refund?"},
    "zh-CN": {"content": "我要退订单 A1001 的款", "reply": "今天已退款", "tag": "退款",
              "said": "我的退款呢？"},
}
#: Every word of a team mail in each language (subject, labels, verbs, codes).
MAIL_WORDS = {
    "en": ["[Ticket #", "New ticket", "Ticket updated", "Source: ", "Status: Pending",
           "Priority: Urgent", "Name: -", "Email: customer@example.com", "Created: ",
           "Tags: ", "Changes:", "changed status: Open → Pending",
           "changed priority: Normal → Urgent", "Content:", "Replies to the customer:",
           "Conversation transcript:", "Visitor: "],
    "zh-CN": ["[工单 #", "新工单", "工单已更新", "来源：", "状态：处理中", "优先级：紧急",
              "姓名：-", "邮箱：customer@example.com", "创建时间：", "标签：", "变更：",
              "修改了状态：待处理 → 处理中", "修改了优先级：普通 → 紧急", "内容：",
              "给客户的回复：", "对话记录：", "访客: "],
}


@pytest.mark.parametrize("language", ["en", "zh-CN"])
def test_the_teams_mails_are_in_the_teams_language_only(db_api, smtp, language):
    """An English team got "[工单 #1] 新工单 new: …", "来源 Source: 机器人未识别 / the bot
    did not understand", "状态 Status: 待处理 open", 9 mails of 9: each team reads its
    mails (subject, labels, source, status, priority, changes) in its language only."""
    assert db_api.patch("/api/v1/team", json={"language": language}).status_code == 200
    email_sink(db_api, smtp.port)
    words = TEAM_TEXT[language]
    client, token, cid, _ = start(db_api.app, db_api.team["id"])
    said = client.post(f"/api/v1/widget/conversations/{cid}/messages",
                       headers={"X-Visitor-Token": token}, json={"body": words["said"], "client_msg_id": "m1"})
    assert said.status_code in (200, 201), said.get_json()
    created = client.post("/api/v1/widget/tickets", headers={"X-Visitor-Token": token},
                          json={"content": words["content"], "email": "customer@example.com",
                                "conversation_id": cid})
    assert created.status_code == 201, created.get_json()
    url = f"/api/v1/tickets/{created.get_json()['id']}"
    changed = db_api.patch(url, json={"status": "pending", "priority": "urgent",
                                      "tags": [words["tag"]]})
    assert changed.status_code == 200, changed.get_json()
    db_api.post(f"{url}/comments", json={"body": words["reply"], "visibility": "public"})

    mails = [text_of(m).replace("\r\n", "\n") for m in smtp.received
             if m["To"] == "team@shop.example"]
    assert len(mails) == 3, mails
    everything = "\n".join(mails)
    for word in MAIL_WORDS[language]:
        assert word in everything, (word, everything)
    for mail in mails:
        if language == "en":  # not one Chinese character: the customer wrote English
            assert not re.search(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]", mail), mail
        else:  # not one English word beyond the addresses and the zone's name
            rest = re.sub(r"[\w.]+@[\w.]+|\(Asia/Shanghai\)", "", mail)
            assert not re.search(r"[A-Za-z]{2,}", rest), mail
        for other in MAIL_WORDS["zh-CN" if language == "en" else "en"]:
            assert other not in mail, (other, mail)


# --- backoff ---------------------------------------------------------------------


def _rq_app(tmp_path, redis_url, redis_prefix):
    return make_app(tmp_path, REDIS_URL=redis_url, REDIS_PREFIX=redis_prefix, JOBS_INLINE=False,
                    OUTBOUND_ALLOWED_NETWORKS=LOCAL)


def _utc_seconds() -> int:
    return calendar.timegm(datetime.datetime.now(datetime.UTC).utctimetuple())


def _attempt(queue, connection, job_ids):
    """Run what is queued on one burst worker (no scheduler: nothing comes due by
    itself); return the UTC seconds before and after, and when rq scheduled the next
    attempt of each job (None: no next attempt)."""
    from rq import SimpleWorker
    from rq.exceptions import NoSuchJobError
    from rq.registry import ScheduledJobRegistry

    before = _utc_seconds()
    SimpleWorker(queue.names, connection=connection).work(burst=True)  # urgent, default
    after = _utc_seconds()
    scheduled = {}
    for job_id in job_ids:
        scheduled[job_id] = None
        for name in queue.names:
            registry = ScheduledJobRegistry(name, connection=connection)
            try:
                scheduled[job_id] = calendar.timegm(
                    registry.get_scheduled_time(job_id).utctimetuple())
            except NoSuchJobError:
                continue
    return before, after, scheduled


def _scheduled_on(queue, connection, job_id):
    """The scheduled-jobs registry of the rq queue holding ``job_id``'s retry."""
    from rq.registry import ScheduledJobRegistry

    for name in queue.names:
        registry = ScheduledJobRegistry(name, connection=connection)
        if job_id in registry.get_job_ids():
            return registry
    raise LookupError(job_id)


def follow_retries(queue, connection, job_id, on_each_failure=None):
    """Attempt after attempt of one job, the waits rq scheduled between them.

    rq stamps a failed attempt's retry at "now + interval" in whole seconds, so
    the wait is read off the recorded schedule, bracketed by the clock before and
    after the attempt: no test waits for a timer. Each retry is then brought
    forward (requeued) instead of waited for.
    """
    waits = []
    while True:
        before, after, scheduled = _attempt(queue, connection, [job_id])
        if on_each_failure is not None:
            on_each_failure()
        if scheduled[job_id] is None:
            return waits
        low, high = scheduled[job_id] - after, scheduled[job_id] - before
        waits.append((low, high))
        _scheduled_on(queue, connection, job_id).requeue(job_id)


def assert_waits(waits, intervals):
    assert len(waits) == len(intervals), (waits, intervals)
    for (low, high), interval in zip(waits, intervals, strict=True):
        assert low <= interval <= high, (waits, intervals)


def test_a_failing_webhook_is_retried_on_the_configured_intervals(tmp_path, redis_url,
                                                                   redis_prefix):
    import redis

    receiver = Receiver(status=500)
    app = _rq_app(tmp_path, redis_url, redis_prefix)
    try:
        with app.app_context():
            api = ApiClient.registered(app)
            webhook(api, receiver.url)
            visitor_ticket(api)
            delivery = SinkDelivery.get()
            queue = app.extensions["meiqia.jobs"]
            connection = redis.Redis.from_url(redis_url)
            job = queue.rq_queue.fetch_job(delivery.job_id)
            assert job.retries_left == ticket_sinks.RETRY.max == 4
            assert job.retry_intervals == [10, 60, 300, 1800]
            seen = []

            def still_pending():
                record = SinkDelivery.get_by_id(delivery.id)
                seen.append((record.status, record.attempts))

            waits = follow_retries(queue, connection, delivery.job_id, still_pending)
            assert_waits(waits, ticket_sinks.RETRY.intervals)  # 10 s, 1 min, 5 min, 30 min
            assert seen == [("pending", 1), ("pending", 2), ("pending", 3), ("pending", 4),
                            ("failed", 5)]
            assert len(receiver.requests) == 5
            assert "HTTP 500" in SinkDelivery.get_by_id(delivery.id).last_error
            record = JobRecord.get_by_id(delivery.job_id)
            assert (record.status, record.attempts, record.max_attempts) == ("failed", 5, 5)
            failed = api.get("/api/v1/ticket-sinks/deliveries?status=failed").get_json()
            assert [d["id"] for d in failed] == [delivery.id]
    finally:
        close_app(app)
        receiver.close()


def test_a_reply_email_that_fails_is_retried_on_its_own_intervals(tmp_path, redis_url,
                                                                  redis_prefix):
    import redis

    app = _rq_app(tmp_path, redis_url, redis_prefix)
    try:
        with app.app_context():
            api = ApiClient.registered(app)
            ticket = api.post("/api/v1/tickets", json={
                "content": "发票开错了", "email": "kehu@example.com"}).get_json()
            email_sink(api, free_port())  # nothing listens there: every attempt fails
            api.post(f"/api/v1/tickets/{ticket['id']}/comments",
                     json={"body": "已重新开具", "visibility": "public"})
            queue = app.extensions["meiqia.jobs"]
            connection = redis.Redis.from_url(redis_url)
            reply_job = JobRecord.get(
                JobRecord.name == f"email the reply to ticket {ticket['id']}").id
            sink_job = SinkDelivery.get().job_id  # the "updated" delivery to the email sink

            # One burst runs both; each is scheduled on its own first interval.
            before, after, scheduled = _attempt(queue, connection, [reply_job, sink_job])
            assert before + 30 <= scheduled[reply_job] <= after + 30
            assert before + 10 <= scheduled[sink_job] <= after + 10
            # The reply's e-mail is on the urgent queue, the sink's on the default one.
            assert queue.urgent_queue.fetch_job(reply_job).origin == queue.urgent_name
            _scheduled_on(queue, connection, reply_job).requeue(reply_job)
            waits = follow_retries(queue, connection, reply_job)
            assert_waits(waits, tickets.REPLY_EMAIL_RETRY.intervals[1:])  # 5 min, 30 min
            record = JobRecord.get_by_id(reply_job)
            assert (record.status, record.attempts) == ("failed", 4)
            assert "refused" in record.error.lower()
            # The sink's delivery was left waiting for its 10 s retry: tried once.
            assert JobRecord.get_by_id(sink_job).attempts == 1
            assert SinkDelivery.get().status == "pending"
    finally:
        close_app(app)


#: Each team's agents and groups, and how its mail names a removed one.
PEOPLE = {
    "en": {"agents": [("Alice Walker", "Alice"), ("Bob Stone", "")],
           "groups": ["Billing", "Returns"], "deleted": ("deleted agent", "deleted group"),
           "none": "(none)"},
    "zh-CN": {"agents": [("王丽", "小丽"), ("张伟", "")], "groups": ["售后组", "财务组"],
              "deleted": ("已删除的客服", "已删除的分组"), "none": "（无）"},
}


@pytest.mark.parametrize("language", ["en", "zh-CN"])
def test_the_teams_mail_names_the_assignee_and_group_a_removed_one_as_removed(
        db_api, smtp, language):
    """A ticket given to another agent and group mailed the team "changed assignee:
    3 → 4", "changed group: 2 → 3" (outside testers): each changed field reads as the
    ticket pages show it (an agent's display name, a group's name, nothing as
    (none)), and one removed before the mail went reads "deleted agent" / "已删除的客服"
    in the team's language, never a bare id."""
    from meiqia.models import Agent

    assert db_api.patch("/api/v1/team", json={"language": language}).status_code == 200
    people = PEOPLE[language]
    agents = []
    for i, (name, nickname) in enumerate(people["agents"]):
        made = db_api.post("/api/v1/agents", json={
            "name": name, "nickname": nickname, "email": f"a{i}@shop.example",
            "password": "correct horse battery"})
        assert made.status_code == 201, made.get_json()
        agents.append(made.get_json()["id"])
    groups = [db_api.post("/api/v1/groups", json={"name": n}).get_json()["id"]
              for n in people["groups"]]
    ticket_id = db_api.post("/api/v1/tickets", json={"content": "A1001"}).get_json()["id"]
    url = f"/api/v1/tickets/{ticket_id}"
    email_sink(db_api, smtp.port)

    # Every field the mail lists changes at once; then the ticket moves on.
    first = db_api.patch(url, json={"status": "pending", "priority": "urgent",
                                    "assignee_id": agents[0], "group_id": groups[0],
                                    "tags": ["vip", "a1001"], "subject": "A1001 late"})
    assert first.status_code == 200, first.get_json()
    second = db_api.patch(url, json={"assignee_id": agents[1], "group_id": groups[1]})
    assert second.status_code == 200, second.get_json()
    # The sink's server is unreachable for the last change: its mail goes by a retry,
    # after the agent and the group it names were removed.
    sink_id = db_api.get("/api/v1/ticket-sinks").get_json()[0]["id"]
    config = {"host": "127.0.0.1", "port": free_port(), "from": "bot@shop.example",
              "to": "team@shop.example"}
    assert db_api.patch(f"/api/v1/ticket-sinks/{sink_id}",
                        json={"config": config}).status_code == 200
    third = db_api.patch(url, json={"assignee_id": None, "group_id": None})
    assert third.status_code == 200, third.get_json()
    fourth = db_api.patch(url, json={"assignee_id": agents[0], "group_id": groups[0]})
    assert fourth.status_code == 200, fourth.get_json()
    assert db_api.delete(f"/api/v1/groups/{groups[0]}").status_code in (200, 204)
    Agent.delete_by_id(agents[0])  # an agent's row gone (the ticket's assignee: none)
    assert db_api.patch(f"/api/v1/ticket-sinks/{sink_id}", json={
        "config": {**config, "port": smtp.port}}).status_code == 200
    waiting = db_api.get("/api/v1/ticket-sinks/deliveries").get_json()
    undelivered = sorted(d["id"] for d in waiting if d["status"] != "delivered")
    assert len(undelivered) == 2, waiting
    for delivery_id in undelivered:
        retried = db_api.post(f"/api/v1/ticket-sinks/deliveries/{delivery_id}/retry")
        assert retried.status_code == 200, retried.get_json()

    mails = [text_of(m).replace("\r\n", "\n") for m in smtp.received
             if m["To"] == "team@shop.example"]
    assert len(mails) == 4, mails
    changed = [[line.strip() for line in mail.split("\n") if line.startswith("  ")]
               for mail in mails]
    shown = [nickname or name for name, nickname in people["agents"]]
    billing, returns = people["groups"]
    gone_agent, gone_group = people["deleted"]
    none = people["none"]

    def line(field, old, new):
        from meiqia.web import i18n

        return i18n.text_in(language, "tk.ev.changed",
                            field=i18n.text_in(language, f"tk.field.{field}"),
                            old=old, new=new)

    def word(prefix, code):
        from meiqia.web import i18n

        return i18n.text_in(language, f"{prefix}.{code}")

    assert changed[0] == [line("status", word("tstatus", "open"), word("tstatus", "pending")),
                          line("priority", word("priority", "normal"),
                               word("priority", "urgent")),
                          line("assignee", none, shown[0]), line("group", none, billing),
                              line("tags", none, "a1001,vip"),
                              line("subject", "A1001", "A1001 late")], mails[0]
    assert changed[1] == [line("assignee", shown[0], shown[1]),
                          line("group", billing, returns)], mails[1]
    assert changed[2] == [line("assignee", shown[1], none),
                          line("group", returns, none)], mails[2]
    assert changed[3] == [line("assignee", none, gone_agent),
                          line("group", none, gone_group)], mails[3]
    everything = "\n".join(mails)
    for number in (*agents, *groups):  # never a bare id as a value
        assert not re.search(rf"(→ |: |：){number}\b", everything), (number, everything)
    other = PEOPLE["zh-CN" if language == "en" else "en"]
    assert not any(word in everything for word in (*other["deleted"], other["none"]))
