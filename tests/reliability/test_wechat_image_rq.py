"""In production (rq and ``meiqia worker``), WeChat's resends of an image callback
leave the image's fetch job and its retry schedule alone, and a media API that
fails for a while is logged as one warning line per attempt, not a traceback.

Found by an outside check (gunicorn, ``meiqia worker``, PostgreSQL, Redis and a
WeChat stand-in whose media/get did not answer): WeChat resends a callback it got
no quick answer to, with the same MsgId, and each resend queued the fetch job
again under its fixed id. rq runs a job queued again at once, so the retries
ignored their schedule ("scheduled for retry at 13:18:39" ran at 13:18:29.49, three
attempts in 18 s where the schedule said 10 s, then 60 s). And rq logged each
failed attempt at ERROR with the job's traceback.

Real ``meiqia worker``, real Redis and PostgreSQL, the WeChat stand-in
(tests/wechat_standin.py) answering media/get with -1 (system busy).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from meiqia.models import JobRecord
from tests.channels.test_wechat import OPENID
from tests.channels.test_wechat import PNG
from tests.channels.test_wechat import WeChat
from tests.channels.test_wechat import configure
from tests.channels.test_wechat_slow_api import RESENDS_RETRY
from tests.channels.test_wechat_slow_api import fetch_times_follow
from tests.conftest import close_app
from tests.conftest import make_app
from tests.conftest import truncate_all
from tests.helpers import ApiClient
from tests.helpers import wait_until
from tests.reliability import job_funcs
from tests.reliability.conftest import WorkerProcess
from tests.reliability.conftest import meiqia_env
from tests.wechat_standin import WeChatStandIn
from tests.wechat_standin import running_standin


@pytest.fixture
def standin() -> Iterator[WeChatStandIn]:
    with running_standin() as server:
        yield server


def test_resent_image_callbacks_leave_the_rq_fetch_and_its_retries_alone(
        tmp_path, pg_database_url, redis_url, redis_prefix, workers, standin):
    config = {"DATABASE_URL": pg_database_url, "REDIS_URL": redis_url,
              "REDIS_PREFIX": redis_prefix, "OUTBOUND_ALLOW_PRIVATE": True,
              "JOB_RECOVER_SECONDS": 1}
    app = make_app(tmp_path, JOBS_INLINE=False, WECHAT_MEDIA_RETRY=RESENDS_RETRY, **config)
    truncate_all(pg_database_url)
    try:
        with app.app_context():
            api = ApiClient.registered(app).without_bot()
            configure(app, api.team["id"], standin)
            standin.media["MEDIA_BUSY"] = (PNG, "image/png", "busy.png")
            standin.fail_media(100)  # system busy, for the whole test
            workers.append(WorkerProcess(meiqia_env(tmp_path, **config), tmp_path))
            client = app.test_client()
            wait_until(lambda: client.get("/healthz").get_json()["queue"].get(
                "urgent_workers", 0) >= 1, timeout=60, what="the urgent worker loop")
            wechat = WeChat(api)
            for _try in range(3):  # WeChat's three tries of one message, 1.5 s apart
                answer = wechat.send(wechat.side.image(OPENID, "MEDIA_BUSY", msg_id="9401"))
                assert answer.data == b"success", answer.data
                time.sleep(1.5)
            record = wait_until(
                lambda: JobRecord.get_or_none(
                    JobRecord.name.startswith("fetch WeChat image"),
                    JobRecord.status == "finished"),
                timeout=60, what="the fetch given up after its last try")
            time.sleep(3)  # no attempt after the last one
            fetch_times_follow(RESENDS_RETRY, list(standin.media_gets))
            assert record.attempts == 3 and "system error" in record.result, \
                (record.attempts, record.result)
            # A real bug still gets rq's ERROR with its traceback.
            bug = app.extensions["meiqia.jobs"].enqueue(job_funcs.broken, "缺少的键")
            wait_until(lambda: JobRecord.get_by_id(bug).status == "failed",
                       timeout=30, what="the broken job failed")
    finally:
        close_app(app)
    for worker in workers:
        worker.stop()
    log = workers[0].log()
    said = [line for line in log.splitlines() if "fetch_image_job" in line
            and "will be retried" in line or "given up after its last try" in line]
    assert len(said) == 3 and all("WARNING" in line and "system error" in line
                                  for line in said), log
    fetch, _, bug = log.partition("tests.reliability.job_funcs.broken")
    assert "Traceback" not in fetch and "ERROR" not in fetch, log
    assert "ERROR" in bug and "Traceback" in bug and "KeyError: '缺少的键'" in bug, log
