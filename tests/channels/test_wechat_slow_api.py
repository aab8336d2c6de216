"""WeChat's API slow or out of reach, against the stand-in (``tests/wechat_standin.py``)
and a real app with a real job queue (a worker thread).

* WeChat waits 5 s for the answer to a callback, then resends it, three tries in
  all. A callback must never wait on WeChat's own API: with ``media/get`` not
  answering, an image callback was answered only after the 6 s of the inline
  fetch, so every try missed WeChat's wait.
* With the API out of reach, reasons read 「微信接口错误 None · …」 (a Python None):
  they lead in Chinese as the e-mail channel's 「无法连接 SMTP 服务器 · …」.
"""

from __future__ import annotations

import itertools
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from meiqia.models import Conversation
from meiqia.models import Message
from tests.channels.test_wechat import OPENID
from tests.channels.test_wechat import PNG
from tests.channels.test_wechat import WeChat
from tests.channels.test_wechat import configure
from tests.channels.test_wechat import conversation_of
from tests.channels.test_wechat import deliveries
from tests.channels.test_wechat import wechat_on_a_job_queue
from tests.conftest import close_app
from tests.conftest import make_app
from tests.helpers import ApiClient
from tests.helpers import wait_until
from tests.wechat_standin import WeChatStandIn
from tests.wechat_standin import running_standin

#: Well within WeChat's 5 s (the checker's bound: 1-2 s), on a busy 2-core machine.
QUICK = 2.0


@pytest.fixture
def standin() -> Iterator[WeChatStandIn]:
    with running_standin() as server:
        yield server


@pytest.fixture
def queued_app(tmp_path: Any, standin: WeChatStandIn) -> Iterator[Any]:
    app = make_app(tmp_path, OUTBOUND_ALLOW_PRIVATE=True, JOBS_INLINE=False,
                   CHANNEL_DELIVERY_RETRY=(50, (1,)), WECHAT_MEDIA_RETRY=(4, (0, 1, 1, 1)))
    try:
        with app.app_context():
            yield app
    finally:
        standin.release()  # a worker still waiting on the stand-in answers now
        close_app(app)


def timed(call: Any) -> tuple[Any, float]:
    started = time.monotonic()
    answer = call()
    return answer, time.monotonic() - started


def test_an_image_callback_is_answered_at_once_while_media_get_hangs(
        queued_app: Any, standin: WeChatStandIn) -> None:
    from meiqia.channels.wechat.views import IMAGE_PENDING

    api = ApiClient.registered(queued_app)
    configure(queued_app, api.team["id"], standin)
    wechat = WeChat(api)
    standin.media["MEDIA_SLOW"] = (PNG, "image/png", "slow.png")
    standin.hang("/cgi-bin/media/get", 30)
    tries = []
    for _try in range(3):  # WeChat's three tries of one callback (the same MsgId)
        answer, took = timed(lambda: wechat.send(wechat.side.image(OPENID, "MEDIA_SLOW",
                                                                     msg_id="9101")))
        assert answer.status_code == 200 and answer.data == b"success", answer.data
        tries.append(round(took, 2))
    assert max(tries) < QUICK, f"callback answered after {tries} s (WeChat waits 5 s)"
    conversation = conversation_of()
    lines = [m.body for m in Message.select().where(
        Message.conversation == conversation.id, Message.sender_kind == "visitor")]
    assert lines == [IMAGE_PENDING], lines
    standin.release()  # the API answers again: the job brings the picture
    image = wait_until(lambda: Message.get_or_none(Message.conversation == conversation.id,
                                                   Message.kind == "image"),
                       timeout=30, what="the image fetched by the job")
    assert image.sender_kind == "visitor"
    queued_app.extensions["meiqia.jobs"].join()
    assert Message.select().where(Message.conversation == conversation.id,
                                  Message.kind == "image").count() == 1
    assert Message.select().where(Message.conversation == conversation.id,
                                  Message.sender_kind == "visitor").count() == 2


def test_no_callback_waits_on_the_api(queued_app: Any, standin: WeChatStandIn) -> None:
    """Text, voice, video, subscribe and unsubscribe while no endpoint of the API
    answers at all (the token, custom/send and media/get hang): each answered at
    once; replies and the welcome line wait in their delivery jobs."""
    api = ApiClient.registered(queued_app)
    configure(queued_app, api.team["id"], standin)
    api.patch("/api/v1/team", json={"settings": {"welcome_message": "欢迎关注小美商城！"}})
    wechat = WeChat(api)
    for path in ("/cgi-bin/token", "/cgi-bin/message/custom/send", "/cgi-bin/media/get"):
        standin.hang(path, 30)
    voice = (f"<xml><ToUserName>gh</ToUserName><FromUserName>{OPENID}</FromUserName>"
             f"<CreateTime>{int(time.time())}</CreateTime><MsgType>voice</MsgType>"
             "<MediaId>V9</MediaId><Format>amr</Format><MsgId>9202</MsgId></xml>")
    video = (f"<xml><ToUserName>gh</ToUserName><FromUserName>{OPENID}</FromUserName>"
             f"<CreateTime>{int(time.time())}</CreateTime><MsgType>video</MsgType>"
             "<MediaId>M9</MediaId><ThumbMediaId>T9</ThumbMediaId><MsgId>9203</MsgId></xml>")
    took = {}
    for name, xml_text in (("subscribe", wechat.side.event(OPENID, "subscribe")),
                           ("text", wechat.side.text(OPENID, "你们几点发货？")),
                           ("voice", voice), ("video", video),
                           ("image", wechat.side.image(OPENID, "MEDIA_X", msg_id="9204")),
                           ("unsubscribe", wechat.side.event(OPENID, "unsubscribe",
                                                             int(time.time()) + 1))):
        answer, took[name] = timed(lambda x=xml_text: wechat.send(x))
        assert answer.data == b"success", (name, answer.data)
    assert max(took.values()) < QUICK, took
    conversation = conversation_of()
    assert Message.select().where(Message.conversation == conversation.id,
                                  Message.sender_kind == "visitor").count() == 4


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed when the block ends: nothing listens


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_an_api_out_of_reach_is_said_in_words_not_none(
        queued_app: Any, standin: WeChatStandIn, lang: str) -> None:
    api = ApiClient.registered(queued_app)
    configure(queued_app, api.team["id"], standin)
    nowhere = f"http://127.0.0.1:{closed_port()}"
    config = {"app_id": "wx1234567890abcdef", "app_secret": "s3cr3t", "token": "meiqiaToken2026",
              "encryption_mode": "plain", "api_base_url": nowhere}
    # The test-connection answer (what the Channels dialog shows), in either language.
    tested = api.post("/api/v1/channels/wechat/test", json={"config": config},
                      headers={"X-Meiqia-Lang": lang, "Accept-Language": lang})
    said = tested.get_json()
    assert said["ok"] is False, said
    assert "None" not in said["message"], said
    # In the admin's language only, with the address it could not reach.
    if lang == "zh-CN":
        assert said["message"] == f"无法连接微信接口（{nowhere[len('http://'):]}）", said
    else:
        assert said["message"].startswith("cannot connect to the WeChat API: could not "
                                          "reach "), said
        assert nowhere[len("http://"):] in said["message"], said

    # The reason agents read beside a reply that keeps failing.
    agent = api.online_agent()
    wechat = WeChat(api)
    wechat.text("人工")
    conversation = conversation_of()
    assert Conversation.get_by_id(conversation.id).handler_id == agent.agent["id"]
    wait_until(lambda: all(d.status == "sent" for d in deliveries(conversation.id)),
               what="the handover line sent")
    configure(queued_app, api.team["id"], standin, mode="safe", api_base_url=nowhere)
    agent.post(f"/api/v1/conversations/{conversation.id}/messages",
               json={"body": "您好，我来帮您查一下。", "client_msg_id": "nowhere-1"})
    url = f"/api/v1/conversations/{conversation.id}/deliveries"

    def retrying() -> dict | None:
        last = agent.get(url, headers={"X-Meiqia-Lang": lang}).get_json()["deliveries"][-1]
        return last if last["status"] == "retrying" and last["reason"] else None

    shown = wait_until(retrying, timeout=30, what="the delivery shown as retrying")
    assert "None" not in shown["reason"], shown
    # In the agent's language only (it was 中文 · English for everyone).
    if lang == "zh-CN":
        assert shown["reason"].startswith("无法连接微信接口"), shown
        assert "cannot connect" not in shown["reason"], shown
    else:
        assert shown["reason"].startswith("cannot connect to the WeChat API"), shown
        assert "无法" not in shown["reason"], shown


#: The image fetch's schedule in the retry tests: two retries, 4 s after each failure.
RESENDS_RETRY = (2, (4, 4))


def fetch_times_follow(schedule: tuple[int, tuple[int, ...]], times: list[float]) -> list[float]:
    """The gaps between the fetch attempts, checked against ``schedule``: one attempt
    and ``count`` retries, each after its wait (late by at most a few seconds of a
    busy machine, never early)."""
    count, waits = schedule
    gaps = [round(later - earlier, 2) for earlier, later in itertools.pairwise(times)]
    assert len(times) == 1 + count, f"{len(times)} fetch attempts, gaps {gaps} s"
    for n, gap in enumerate(gaps):
        assert waits[n] - 0.5 <= gap <= waits[n] + 4, \
            f"retry {n + 1} came {gap} s after the attempt before it, scheduled {waits[n]} s"
    return gaps


def test_resent_image_callbacks_leave_the_fetch_and_its_retries_alone(
        tmp_path: Any, standin: WeChatStandIn, caplog: pytest.LogCaptureFixture) -> None:
    """WeChat resends a callback it got no quick answer to (same MsgId, three tries):
    each resend queued the fetch job again under its fixed id, which ran it at once,
    ahead of its retry's due time (three attempts in 18 s where the schedule said
    10 s, then 60 s). With media/get failing (-1, system busy) and the three tries
    1.5 s apart, the attempts follow the schedule; each failure is one WARNING line
    with WeChat's reason, no traceback."""
    import logging

    from meiqia.models import JobRecord

    caplog.set_level(logging.INFO, logger="meiqia")
    with wechat_on_a_job_queue(tmp_path, standin,
                               WECHAT_MEDIA_RETRY=RESENDS_RETRY) as (app, api, wechat):
        standin.media["MEDIA_BUSY"] = (PNG, "image/png", "busy.png")
        standin.fail_media(100)  # system busy, for the whole test
        for _try in range(3):  # WeChat's three tries of one message
            answer = wechat.send(wechat.side.image(OPENID, "MEDIA_BUSY", msg_id="9301"))
            assert answer.data == b"success", answer.data
            time.sleep(1.5)
        wait_until(lambda: JobRecord.get_or_none(
                JobRecord.name.startswith("fetch WeChat image"),
                JobRecord.status == "finished"),
                   timeout=40, what="the fetch given up after its last try")
        time.sleep(2)  # no attempt after the last one
        fetch_times_follow(RESENDS_RETRY, list(standin.media_gets))
        record = JobRecord.get(JobRecord.name.startswith("fetch WeChat image"))
        assert record.attempts == 3 and "system error" in record.result, \
            (record.attempts, record.result)
        assert Message.select().where(
            Message.body.startswith("[图片 image: 多次尝试仍无法从微信获取")).count() == 1
    lines = [r for r in caplog.records if r.name == "meiqia.jobs"
             and "fetch_image_job" in r.getMessage()
             or r.name == "meiqia.channels.wechat" and "given up" in r.getMessage()]
    said = [(r.levelname, r.getMessage()) for r in lines]
    # Two retries, then the last try gives up (agents get a line): three warnings.
    assert [level for level, _ in said] == ["WARNING"] * 3, said
    assert all("\n" not in text and "system error" in text for _, text in said), said
    assert not any(r.exc_info or "Traceback" in r.getMessage() for r in caplog.records), said
