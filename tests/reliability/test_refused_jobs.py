"""A request refused with 503 because the queue is down (Redis stopped) leaves
nothing behind: no job record and no ``failed`` count in ``meiqia_jobs``
(docs/deploy.md §3, "Redis outages": "keep nothing half-done"). A job-failure
alert must not fire for work that never ran.

Every route that queues a job a person waits for, on a real Redis that is stopped:
a history export, a knowledge-base reindex, a regrade (new grades).
"""

from __future__ import annotations

import datetime

from meiqia.models import ExportJob
from meiqia.models import JobRecord
from tests.conftest import close_app
from tests.conftest import make_app
from tests.factories import make_conversation
from tests.factories import make_visitor
from tests.helpers import wait_until
from tests.reliability.test_database_faults import open_chat

TOKEN = "opsfix-scrape-token-0123456789"


def _failed_figure(app) -> str:
    scrape = app.test_client().get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert scrape.status_code == 200
    lines = [line for line in scrape.get_data(as_text=True).splitlines()
             if line.startswith('meiqia_jobs{status="failed"}')]
    return lines[0] if lines else ""


def test_requests_refused_while_redis_is_down_leave_no_failed_job(tmp_path, own_redis):
    app = make_app(tmp_path, REDIS_URL=own_redis.url, REDIS_PREFIX="refused",
                   JOBS_INLINE=False, REDIS_TIMEOUT=0.2, METRICS_TOKEN=TOKEN)
    try:
        with app.app_context():
            api, _visitor, _token, _cid = open_chat(app)
            team = api.team["id"]
            make_conversation(team, make_visitor(team), handler=api.agent["id"],
                              ended_at=datetime.datetime(2026, 11, 20, 4, 0),
                              messages=[("visitor", "我想导出记录", 0)])
            before = JobRecord.select().count()
            assert _failed_figure(app) == ""
            own_redis.stop()

            zh = {"Accept-Language": "zh-CN"}
            refused = {
                "export": api.post("/api/v1/history/exports", json={"format": "csv"},
                                   headers=zh),
                "reindex": api.post("/api/v1/knowledge/reindex", headers=zh),
                "regrade": api.put("/api/v1/conversation-rules", headers=zh, json={
                    "grades": [{"grade": "A", "min_messages": 10}]}),
            }
            for what, response in refused.items():
                assert response.status_code == 503, (what, response.get_json())
                assert response.headers.get("Retry-After"), what
                error = response.get_json()["error"]
                assert error["code"] == "unavailable" and "Redis" in error["message"], what
                assert "任务队列" in error["message"], (what, error)
            # Nothing half-done: no export row, no job record at all, no failure counted.
            assert ExportJob.select().count() == 0
            assert [(j.name, j.status, j.error) for j in JobRecord.select()
                    if j.status == "failed"] == []
            assert JobRecord.select().count() == before
            assert _failed_figure(app) == ""

            own_redis.start()
            wait_until(lambda: app.test_client().get("/healthz").status_code == 200,
                       what="health ok after Redis is back")
            export = api.post("/api/v1/history/exports", json={"format": "csv"})
            assert export.status_code == 202, export.get_json()
            assert JobRecord.select().count() == before + 1
    finally:
        close_app(app)
