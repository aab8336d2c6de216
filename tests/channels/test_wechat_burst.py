"""A slow WeChat API and a burst of answers, against the stand-in
(``tests/wechat_standin.py``) with a real job queue (worker threads).

Found from outside: with ``custom/send`` answering after 8 s (under the documented
``CHANNEL_DELIVER_TIMEOUT`` of 30 s) every delivery failed "could not reach" (the
client's own timeout was 6 s), and the deliveries the one-at-a-time gate kept out
counted as attempts although nothing reached WeChat: 40 answers were left
"retrying", attempt 4, 30 minutes away, and the agents' retry answered 409.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from meiqia.models import ChannelDelivery
from tests.channels.test_wechat import conversation_of
from tests.channels.test_wechat import deliveries
from tests.channels.test_wechat import wechat_on_a_job_queue
from tests.helpers import wait_until
from tests.wechat_standin import WeChatStandIn
from tests.wechat_standin import running_standin

SEND = "/cgi-bin/message/custom/send"
WELCOME = "欢迎关注小美商城！"


@pytest.fixture
def standin() -> Iterator[WeChatStandIn]:
    with running_standin() as server:
        yield server


def followers(count: int) -> list[str]:
    return [f"oBurst{n:04d}{'x' * 20}" for n in range(count)]


def test_a_burst_behind_a_slow_api_is_all_sent_and_only_real_calls_count(
        tmp_path: Any, standin: WeChatStandIn) -> None:
    """Ten followers subscribe at once; each answer takes WeChat 1 s. One retry at
    most: a delivery the gate keeps out must wait its turn, not spend it."""
    with wechat_on_a_job_queue(tmp_path, standin, JOB_THREADS=4,
                               CHANNEL_DELIVER_TIMEOUT=10.0,
                               CHANNEL_DELIVERY_RETRY=(1, (1,))) as (app, api, wechat):
        api.patch("/api/v1/team", json={"settings": {"welcome_message": WELCOME}})
        standin.slow(SEND, 1.0)
        people = followers(10)
        for openid in people:
            wechat.send(wechat.side.event(openid, "subscribe"), openid)
        wait_until(lambda: ChannelDelivery.select().where(
            ChannelDelivery.status.not_in(["pending", "retrying"])).count() == len(people),
                   timeout=120, what="every welcome line sent or failed")
        rows = list(ChannelDelivery.select())
        assert [(r.status, r.attempts, r.last_error) for r in rows] == \
            [("sent", 1, "")] * len(people), [(r.id, r.status, r.attempts, r.last_error)
                                             for r in rows]
        assert sorted(standin.texts_to(p)[0] for p in people) == [WELCOME] * len(people)
        calls = [c for c in standin.calls if c[0] == SEND]
        assert len(calls) == len(people), calls  # one call each: the attempts


def test_an_answer_slower_than_six_seconds_within_the_budget_is_a_success(
        tmp_path: Any, standin: WeChatStandIn) -> None:
    with wechat_on_a_job_queue(tmp_path, standin, CHANNEL_DELIVER_TIMEOUT=15.0,
                               CHANNEL_DELIVERY_RETRY=(0, ())) as (app, api, wechat):
        api.patch("/api/v1/team", json={"settings": {"welcome_message": WELCOME}})
        standin.slow(SEND, 7.0)
        openid = followers(1)[0]
        wechat.send(wechat.side.event(openid, "subscribe"), openid)
        conversation = conversation_of(openid)
        done = wait_until(lambda: [d for d in deliveries(conversation.id)
                                   if d.status in ("sent", "failed")],
                          timeout=60, what="the welcome line's outcome")
        assert [(d.status, d.attempts, d.last_error) for d in done] == [("sent", 1, "")]
        assert standin.texts_to(openid) == [WELCOME]


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_an_agent_sends_a_retrying_delivery_now(tmp_path: Any, standin: WeChatStandIn,
                                                lang: str) -> None:
    """WeChat was busy (-1) once: the delivery is retrying, its next try an hour
    away. The agent's retry sends it at once (it answered 409)."""
    with wechat_on_a_job_queue(tmp_path, standin,
                               CHANNEL_DELIVERY_RETRY=(3, (3600,))) as (app, api, wechat):
        api.patch("/api/v1/team", json={"settings": {"welcome_message": WELCOME}})
        standin.fail_next(-1)
        openid = followers(1)[0]
        wechat.send(wechat.side.event(openid, "subscribe"), openid)
        conversation = conversation_of(openid)
        waiting = wait_until(lambda: [d for d in deliveries(conversation.id)
                                      if d.status == "retrying"],
                             timeout=30, what="the delivery retrying")[0]
        assert waiting.attempts == 1 and waiting.next_attempt_at is not None
        answer = api.post(f"/api/v1/channel-deliveries/{waiting.id}/retry",
                          headers={"X-Meiqia-Lang": lang})
        assert answer.status_code == 200, answer.get_json()
        assert answer.get_json()["status"] == "pending"
        sent = wait_until(lambda: ChannelDelivery.get_or_none(
            ChannelDelivery.id == waiting.id, ChannelDelivery.status == "sent"),
                          timeout=30, what="the retried delivery sent")
        assert sent.attempts == 1
        assert standin.texts_to(openid) == [WELCOME]
        again = api.post(f"/api/v1/channel-deliveries/{waiting.id}/retry",
                         headers={"X-Meiqia-Lang": lang})
        assert again.status_code == 409
        assert again.get_json()["error"]["message"] == {
            "en": "only a failed or retrying message delivery can be retried; this one is "
                  "sent",
            "zh-CN": "只有发送失败或等待重试的消息可以重发；这条的状态是 sent"}[lang]
