"""Outbound: deliveries retried with backoff, shown to agents, never lost, and
retried by hand."""

from __future__ import annotations

import pytest

from meiqia.channels import receive
from meiqia.channels import registry
from meiqia.models import ChannelDelivery
from meiqia.models import Message
from meiqia.models.base import utcnow
from tests.channels import standin
from tests.channels.conftest import enable
from tests.conftest import close_app
from tests.conftest import make_app
from tests.conftest import truncate_all
from tests.helpers import ApiClient
from tests.helpers import new_client_id
from tests.helpers import wait_until


def _app(tmp_path, **config):
    return make_app(tmp_path, plugins=(standin,), **config)


@pytest.fixture(params=["sqlite", "postgres"])
def quick(request, tmp_path):
    """Inline jobs whose retries wait 0 s: every attempt runs in the caller; on
    SQLite, then PostgreSQL."""
    extra = {}
    if request.param == "postgres":
        extra["DATABASE_URL"] = request.getfixturevalue("pg_database_url")
    app = _app(tmp_path, CHANNEL_DELIVERY_RETRY=(3, (0, 0, 0)), **extra)
    if extra:
        truncate_all(extra["DATABASE_URL"])
    with app.app_context():
        yield app
    close_app(app)


def _team(app):
    api = ApiClient.registered(app).without_bot()
    enable(app, api.team["id"])
    agent = api.online_agent()
    return api, agent


def _chat(app, api, agent, who="zoe@example.com"):
    host = registry.make_host(api.team["id"], "standin", app=app)
    result = receive(host, who, "人工", external_message_id=f"in-{who}")
    return result.conversation_id


def _reply(agent, cid, body):
    response = agent.post(f"/api/v1/conversations/{cid}/messages",
                          json={"body": body, "client_msg_id": new_client_id()})
    assert response.status_code == 201, response.get_json()
    return response.get_json()["message"]["id"]


def _delivery(message_id):
    return ChannelDelivery.get(ChannelDelivery.message == message_id)


def test_a_failing_delivery_is_retried_and_each_state_is_shown(quick):
    api, agent = _team(quick)
    cid = _chat(quick, api, agent)
    hub = quick.extensions["meiqia.hub"]
    standin.fail(quick, 2, reason="503 from the far side")
    with hub.subscribe([f"team:{api.team['id']}"]) as sub:
        message_id = _reply(agent, cid, "稍等，我查一下")
        frames = [e["data"] for _t, e in sub.drain() if e["type"] == "delivery"]
    states = [(f["status"], f["reason"]) for f in frames if f["message_id"] == message_id]
    assert states == [("retrying", "503 from the far side"),
                      ("retrying", "503 from the far side"), ("sent", None)]
    assert frames[0]["next_attempt_at"] and frames[0]["handler_id"] == agent.agent["id"]
    delivery = _delivery(message_id)
    assert delivery.status == "sent" and delivery.attempts == 3
    assert delivery.external_id == f"out-{message_id}@standin"
    assert Message.get_by_id(message_id).delivered_at is not None
    listed = agent.get(f"/api/v1/conversations/{cid}/deliveries").get_json()["deliveries"]
    assert [d["status"] for d in listed if d["message_id"] == message_id] == ["sent"]


def test_a_delivery_that_fails_every_attempt_is_kept_failed_then_retried_by_hand(quick):
    api, agent = _team(quick)
    cid = _chat(quick, api, agent)
    standin.fail(quick, 4, reason="connection refused")  # 1 + 3 retries
    message_id = _reply(agent, cid, "这条消息不能丢")
    delivery = _delivery(message_id)
    assert delivery.status == "failed" and delivery.attempts == 4
    assert delivery.last_error == "connection refused"
    assert Message.get_by_id(message_id).body == "这条消息不能丢"  # nothing lost
    listed = agent.get(f"/api/v1/conversations/{cid}/deliveries").get_json()["deliveries"]
    mine = [d for d in listed if d["message_id"] == message_id][0]
    assert mine["status"] == "failed" and mine["reason"] == "connection refused"
    assert not any(m.id == message_id for _c, m in standin.outbox(quick))

    # Somebody outside his scope may not retry it (404), nor a sent one (409).
    other = api.new_agent(email="other@example.com", name="赵客服", scope="self")
    assert other.post(f"/api/v1/channel-deliveries/{mine['id']}/retry").status_code == 404
    retried = agent.post(f"/api/v1/channel-deliveries/{mine['id']}/retry")
    assert retried.status_code == 200, retried.get_json()
    assert retried.get_json()["status"] == "sent"
    assert [m.id for _c, m in standin.outbox(quick)][-1] == message_id
    again = agent.post(f"/api/v1/channel-deliveries/{mine['id']}/retry")
    assert again.status_code == 409


def test_a_refusal_that_retrying_cannot_fix_fails_at_once(quick):
    api, agent = _team(quick)
    cid = _chat(quick, api, agent)
    standin.fail(quick, 1, retry=False, reason="the 48-hour reply window has passed")
    message_id = _reply(agent, cid, "还在吗？")
    delivery = _delivery(message_id)
    assert delivery.status == "failed" and delivery.attempts == 1
    assert "48-hour" in delivery.last_error


def test_a_disabled_channel_fails_with_the_reason_and_retries_once_enabled(quick):
    api, agent = _team(quick)
    cid = _chat(quick, api, agent)
    off = api.put("/api/v1/channels/standin", json={"enabled": False})
    assert off.status_code == 200, off.get_json()
    message_id = _reply(agent, cid, "关了渠道也不能丢")
    delivery = _delivery(message_id)
    assert delivery.status == "failed" and "not enabled" in delivery.last_error
    assert api.put("/api/v1/channels/standin", json={"enabled": True}).status_code == 200
    assert agent.post(f"/api/v1/channel-deliveries/{delivery.id}/retry").get_json()[
        "status"] == "sent"


def test_backoff_waits_before_the_next_attempt(tmp_path):
    """On the real worker thread: after a failure the delivery waits (retrying,
    with the time of its next attempt) instead of hammering the far side."""
    app = _app(tmp_path, JOBS_INLINE=False, CHANNEL_DELIVERY_RETRY=(2, (3600, 3600)))
    try:
        with app.app_context():
            api, agent = _team(app)
            cid = _chat(app, api, agent)
            app.extensions["meiqia.jobs"].join()
            standin.fail(app, 1, reason="timeout")
            message_id = _reply(agent, cid, "慢一点也行")
            delivery = wait_until(lambda: ChannelDelivery.get_or_none(
                ChannelDelivery.message == message_id, ChannelDelivery.status == "retrying"),
                what="the first attempt to fail")
            assert delivery.next_attempt_at > utcnow() and delivery.attempts == 1
            assert delivery.last_error == "timeout"
    finally:
        close_app(app)


def test_a_channel_that_raises_or_hangs_is_retried_with_the_reason(tmp_path):
    from meiqia.channels import Channel
    from meiqia.hookspecs import hookimpl

    class Broken(Channel):
        type = "broken"
        name = "Broken"

        def deliver(self, conversation, message):
            raise RuntimeError("boom")

    class Plugin:
        __name__ = "broken_channel"

        @hookimpl
        def register_channels(self, app):
            return [Broken]

    app = make_app(tmp_path, plugins=(Plugin(),), CHANNEL_DELIVERY_RETRY=(1, (0,)))
    try:
        with app.app_context():
            api = ApiClient.registered(app)
            assert api.put("/api/v1/channels/broken",
                           json={"enabled": True, "config": {}}).status_code == 200
            host = registry.make_host(api.team["id"], "broken", app=app)
            result = receive(host, "u1", "你好")
            failed = list(ChannelDelivery.select().where(
                ChannelDelivery.conversation == result.conversation_id))
            assert failed and all(d.status == "failed" and "boom" in d.last_error
                                  and d.attempts == 2 for d in failed)
    finally:
        close_app(app)


@pytest.mark.parametrize("trial", range(3))
@pytest.mark.parametrize("db", ["sqlite", "postgres"])
def test_a_conversations_deliveries_go_out_in_order_through_random_delays_and_failures(
        tmp_path, request, db, trial):
    """Four job threads, a far side that takes up to 20 ms and fails a third of
    the attempts: the agent's 20 lines still reach it once each, in the order
    he wrote them (each waits behind the one before; a retried one too)."""
    extra = {}
    if db == "postgres":
        extra["DATABASE_URL"] = request.getfixturevalue("pg_database_url")
        truncate_all(extra["DATABASE_URL"])
    app = _app(tmp_path, JOBS_INLINE=False, JOB_THREADS=4,
               CHANNEL_DELIVERY_RETRY=(12, (0,) * 12), **extra)
    try:
        with app.app_context():
            api, agent = _team(app)
            cid = _chat(app, api, agent)
            app.extensions["meiqia.jobs"].join()
            standin.chaos(app, seed=trial, most_seconds=0.02, fail_share=0.33)
            written = [_reply(agent, cid, f"第{n}条：请稍等") for n in range(20)]
            wait_until(lambda: ChannelDelivery.select().where(
                ChannelDelivery.message.in_(written),
                ChannelDelivery.status.in_(("sent", "failed"))).count() == len(written),
                timeout=60, what="every delivery to finish")
            states = {d.message_id: d.status for d in ChannelDelivery.select().where(
                ChannelDelivery.message.in_(written))}
            assert set(states.values()) == {"sent"}, states
            got = [message.id for _c, message in standin.outbox(app) if message.id in written]
            assert got == written
    finally:
        close_app(app)


def test_web_conversations_get_no_deliveries(quick):
    api, agent = _team(quick)
    from tests.api.test_conversations import start

    _client, _token, cid, _data = start(quick, api.team["id"])
    assert ChannelDelivery.select().count() == 0
    assert agent.get(f"/api/v1/conversations/{cid}/deliveries").get_json() == {
        "deliveries": []}


def test_rating_invitations_are_refused_for_a_channel_without_rating(quick):
    api, agent = _team(quick)
    cid = _chat(quick, api, agent)
    refused = agent.post(f"/api/v1/conversations/{cid}/rating-invite")
    assert refused.status_code == 409
    row = agent.get(f"/api/v1/conversations/{cid}").get_json()
    assert row["channel"] == "standin" and row["channel_name"]["en"] == "Stand-in"
    assert "rating" not in row["capabilities"] and "read_receipts" not in row["capabilities"]


def test_a_delivery_whose_job_was_never_queued_is_queued_again(quick):
    """The process died between the message's commit and queuing its job: the
    delivery is pending with no job; the next start queues it."""
    import datetime

    from meiqia.channels import outbound

    api, agent = _team(quick)
    cid = _chat(quick, api, agent)
    message_id = _reply(agent, cid, "进程重启也要送到")
    delivery = _delivery(message_id)
    ChannelDelivery.update(status="pending", job_id=None, attempts=0,
                           created_at=utcnow() - datetime.timedelta(minutes=10)).where(
        ChannelDelivery.id == delivery.id).execute()
    sent_before = len(standin.outbox(quick))
    assert outbound.resume_pending() == 1
    assert _delivery(message_id).status == "sent"
    assert len(standin.outbox(quick)) == sent_before + 1
    assert outbound.resume_pending() == 0


def test_a_delivery_whose_job_was_lost_does_not_hold_its_conversation_back(quick):
    """The process died between storing a message and queuing its delivery: the
    next message of that conversation waits behind it, so its job queues the lost
    one again (after STRANDED_SECONDS) and both go out, in order."""
    import datetime

    from meiqia.channels import outbound

    api, agent = _team(quick)
    cid = _chat(quick, api, agent)
    with outbound.deferred():  # what was stored, never queued (the process "died")
        lost = _reply(agent, cid, "第一条：被遗漏的")
    ChannelDelivery.update(created_at=utcnow() - datetime.timedelta(minutes=2)).where(
        ChannelDelivery.message == lost).execute()
    assert _delivery(lost).status == "pending"
    later = _reply(agent, cid, "第二条")
    assert _delivery(lost).status == "sent" and _delivery(later).status == "sent"
    got = [m.id for _c, m in standin.outbox(quick) if m.id in (lost, later)]
    assert got == [lost, later]


def test_links_and_images_go_out_as_plain_text(quick):
    """deliver() gets plain text: an agent's rich-text link and image (the widget
    draws them) arrive written out, in the customer's language."""
    api, agent = _team(quick)
    cid = _chat(quick, api, agent)
    _reply(agent, cid, "详细步骤见[退货指南](https://example.com/help/returns)。"
                       "![退货流程](/static/demo/return-steps.png)")
    body = standin.outbox(quick)[-1][1].body
    assert body == "详细步骤见退货指南（https://example.com/help/returns）。[图片：退货流程]", body


def test_each_agent_reads_a_delivery_reason_in_his_language(quick, tmp_path):
    """Found from outside: a reason was stored and shown as ``中文 · English`` to every
    agent. Each now reads his own language's words: in the API, the retry's answer
    and the ``delivery`` frame of his socket (zh-CN and en side by side)."""
    from meiqia.testing.sockets import LiveServer
    from tests.ws.conftest import Socket
    from tests.ws.conftest import cookie_of

    api, agent = _team(quick)
    cid = _chat(quick, api, agent)
    live = LiveServer(quick)
    try:
        sockets = {lang: Socket(live.url(f"/ws/agent?lang={lang}"), cookie_of(agent))
                   for lang in ("zh-CN", "en")}
        for socket in sockets.values():
            socket.expect("hello")
        words = {"zh-CN": "对方服务器拒绝了这条消息", "en": "the far side refused the message"}
        standin.fail(quick, 4, reason=words)  # 1 + 3 retries: failed
        message_id = _reply(agent, cid, "请查收")
        for lang, socket in sockets.items():
            frame = socket.expect("delivery", where=lambda d: d["status"] == "failed")["data"]
            assert frame["reason"] == words[lang] and "reasons" not in frame, frame
        delivery = _delivery(message_id)
        for lang in ("zh-CN", "en"):
            listed = agent.get(f"/api/v1/conversations/{cid}/deliveries",
                               headers={"X-Meiqia-Lang": lang}).get_json()["deliveries"]
            assert [d["reason"] for d in listed if d["message_id"] == message_id] == [
                words[lang]]
        standin.fail(quick, 4, reason=words)
        retried = agent.post(f"/api/v1/channel-deliveries/{delivery.id}/retry",
                             headers={"X-Meiqia-Lang": "en"})
        assert retried.get_json()["reason"] == words["en"], retried.get_json()
        # The retry's own "pending" carries no reason: no attempt of the new round has
        # failed yet (it said pending beside the last round's reason).
        pending = sockets["en"].expect("delivery", where=lambda d: d["status"] == "pending")
        assert pending["data"]["reason"] is None, pending
        # A reason stored before as one string, 中文 · English: each reader his half.
        ChannelDelivery.update(last_error="无法连接微信接口 · cannot connect to the WeChat API").where(
            ChannelDelivery.id == delivery.id).execute()
        for lang, half in (("zh-CN", "无法连接微信接口"), ("en", "cannot connect to the WeChat API")):
            listed = agent.get(f"/api/v1/conversations/{cid}/deliveries",
                               headers={"X-Meiqia-Lang": lang}).get_json()["deliveries"]
            assert [d["reason"] for d in listed if d["message_id"] == message_id] == [half]
    finally:
        Socket.close_all()
        live.stop()
