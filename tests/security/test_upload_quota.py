"""Issue 15 §9: a visitor token cannot upload without limit.

The attack: a script takes a free visitor token and uploads file after file.
Now each visitor, and all visitors of a team together, have hourly quotas of
files and bytes (config); past them the upload is a 429 in the visitor's
language with Retry-After, before the body is stored, and nothing is left
behind. Racing uploads on several threads (here) and on two server processes
(tests/integration/test_upload_quota_processes.py) cannot pass the limit together.
"""

from __future__ import annotations

import datetime
import io
import os
import threading

import pytest

from meiqia.models import Attachment
from meiqia.models.base import utcnow
from tests.api.test_conversations import start


def upload(client, token, cid, data=b"hello", lang="en", route="uploads"):
    response = client.post(f"/api/v1/widget/conversations/{cid}/{route}?kind=file",
                           headers={"X-Visitor-Token": token, "Accept-Language": lang},
                           data={"file": (io.BytesIO(data), "a.txt")},
                           content_type="multipart/form-data")
    response.close()
    return response


def files_on_disk(app) -> list[str]:
    folder = os.path.join(app.instance_path, "uploads")
    return sorted(os.listdir(folder)) if os.path.isdir(folder) else []


@pytest.fixture
def quota(api):
    """Small quotas, so the test reaches them."""
    api.app.config.update(UPLOAD_QUOTA_VISITOR_COUNT=3, UPLOAD_QUOTA_VISITOR_BYTES=10_000,
                          UPLOAD_QUOTA_TEAM_COUNT=5, UPLOAD_QUOTA_TEAM_BYTES=100_000)
    return api


def test_a_visitor_past_his_hourly_count_gets_a_429_and_nothing_is_stored(quota):
    app = quota.app
    client, token, cid, _ = start(app, quota.team["id"])
    for _ in range(2):
        assert upload(client, token, cid).status_code == 201
    # the leave-a-message form's uploads count too
    assert upload(client, token, cid, route="ticket-uploads").status_code == 201
    before = (Attachment.select().count(), files_on_disk(app))
    refused = upload(client, token, cid, lang="zh-CN")
    assert refused.status_code == 429
    assert 3500 <= int(refused.headers["Retry-After"]) <= 3600
    error = refused.get_json()["error"]
    assert error["code"] == "rate_limited" and error["field"] == "file"
    assert error["message"] == "上传次数已达上限：每小时最多上传 3 个文件，请 60 分钟后再试"
    english = upload(client, token, cid)
    assert english.get_json()["error"]["message"] == (
        "upload quota: you may upload at most 3 files an hour; try again in 60 minutes")
    assert (Attachment.select().count(), files_on_disk(app)) == before
    # another visitor is not held back by him
    other, other_token, other_cid, _ = start(app, quota.team["id"])
    assert upload(other, other_token, other_cid).status_code == 201


def test_bytes_count_and_the_hour_slides(quota):
    app = quota.app
    client, token, cid, _ = start(app, quota.team["id"])
    assert upload(client, token, cid, b"x" * 6000).status_code == 201
    refused = upload(client, token, cid, b"y" * 6000)
    assert refused.status_code == 429
    assert "at most 9.8 KB an hour" in refused.get_json()["error"]["message"]
    assert upload(client, token, cid, b"z" * 3000).status_code == 201  # what fits, fits
    # one larger than the whole hour's allowance can never pass: 413, no Retry-After
    too_big = upload(client, token, cid, b"w" * 12_000)
    assert too_big.status_code == 413 and "Retry-After" not in too_big.headers
    # the first upload was 50 minutes ago: room again in about 10 minutes
    first = Attachment.select().order_by(Attachment.id).first()
    Attachment.update(created_at=utcnow() - datetime.timedelta(minutes=50)).where(
        Attachment.id == first.id).execute()
    again = upload(client, token, cid, b"y" * 6000)
    assert again.status_code == 429 and 590 <= int(again.headers["Retry-After"]) <= 600
    assert "try again in 10 minutes" in again.get_json()["error"]["message"]
    # an hour later it has left the window
    Attachment.update(created_at=utcnow() - datetime.timedelta(minutes=61)).where(
        Attachment.id == first.id).execute()
    assert upload(client, token, cid, b"y" * 6000).status_code == 201


def test_the_team_quota_holds_for_all_its_visitors_together(quota):
    app = quota.app
    visitors = [start(app, quota.team["id"]) for _ in range(3)]
    for client, token, cid, _ in visitors[:2]:
        for _ in range(2):
            assert upload(client, token, cid).status_code == 201
    client, token, cid, _ = visitors[2]
    assert upload(client, token, cid).status_code == 201  # the team's fifth
    refused = upload(client, token, cid, lang="zh-CN")
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    assert refused.get_json()["error"]["message"] == (
        "本网站访客的上传次数已达上限：每小时最多 5 个文件，请 60 分钟后再试")
    # agents are staff: not counted, not held back
    assert quota.post(f"/api/v1/conversations/{visitors[0][2]}/uploads?kind=file",
                      data={"file": (io.BytesIO(b"agent"), "b.txt")},
                      content_type="multipart/form-data").status_code == 201


def test_racing_uploads_cannot_pass_the_quota_together(db_api):
    """Twelve uploads at once by one visitor, limit 3, on SQLite and PostgreSQL:
    exactly three are stored, whatever the interleaving (several trials)."""
    app = db_api.app
    app.config.update(UPLOAD_QUOTA_VISITOR_COUNT=3, UPLOAD_QUOTA_VISITOR_BYTES=0,
                      UPLOAD_QUOTA_TEAM_COUNT=0, UPLOAD_QUOTA_TEAM_BYTES=0)
    def race(token: str, cid: int) -> list[int]:
        statuses: list[int] = []
        barrier = threading.Barrier(12)

        def one() -> None:
            with app.app_context():
                client = app.test_client()
                barrier.wait()
                statuses.append(upload(client, token, cid).status_code)

        threads = [threading.Thread(target=one) for _ in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        return statuses

    for _trial in range(3):
        _, token, cid, _ = start(app, db_api.team["id"])
        statuses = race(token, cid)
        assert sorted(statuses) == [201] * 3 + [429] * 9, statuses
        assert Attachment.select().where(Attachment.conversation == cid).count() == 3
