"""The job queue: same API and the same recorded state in both modes."""

from __future__ import annotations

import uuid

import pytest

from meiqia import jobs
from meiqia.jobs import Retry
from meiqia.jobs import ThreadQueue
from meiqia.models import JobRecord
from meiqia.models import Team
from tests.conftest import close_app
from tests.conftest import make_app
from tests.unit import job_funcs


def test_inline_job_records_progress_and_result(app):
    team = Team.create(name="旧名")
    job_id = app.extensions["meiqia.jobs"].enqueue(job_funcs.rename_team, team.id, "新名")
    record = JobRecord.get_by_id(job_id)
    assert record.status == "finished" and record.progress == 1.0
    assert record.result == {"renamed": team.id}
    assert record.message == "第 4 步"
    assert Team.get_by_id(team.id).name == "新名"


def test_thread_queue_runs_in_the_background_and_retries(tmp_path):
    app = make_app(tmp_path, JOBS_INLINE=False)
    try:
        with app.app_context():
            queue = app.extensions["meiqia.jobs"]
            assert isinstance(queue, ThreadQueue) and not queue.inline
            key = uuid.uuid4().hex
            job_id = queue.enqueue(job_funcs.flaky, key, 2, retry=Retry(max=3, intervals=(0,)))
            assert jobs_done(job_id)
            record = JobRecord.get_by_id(job_id)
            assert record.status == "finished" and record.attempts == 3
            failing = queue.enqueue(job_funcs.flaky, uuid.uuid4().hex, 9, retry=Retry(max=1, intervals=(0,)))
            assert jobs_done(failing)
            record = JobRecord.get_by_id(failing)
            assert record.status == "failed" and record.attempts == 2
            assert "attempt 2 failed" in record.error
    finally:
        close_app(app)


def jobs_done(job_id: str) -> bool:
    from meiqia.hub import wait_for

    return wait_for(
        lambda: JobRecord.get_by_id(job_id).status in {"finished", "failed"}, timeout=10
    )


def test_enqueue_refuses_lambdas(app):
    with pytest.raises(ValueError):
        app.extensions["meiqia.jobs"].enqueue(lambda: None)


def test_rq_queue_runs_jobs_on_a_worker_with_the_same_records(tmp_path, redis_url, redis_prefix):
    import redis
    from rq import SimpleWorker

    app = make_app(tmp_path, REDIS_URL=redis_url, REDIS_PREFIX=redis_prefix, JOBS_INLINE=False)
    try:
        with app.app_context():
            queue = app.extensions["meiqia.jobs"]
            assert queue.kind == "rq"
            team = Team.create(name="rq 团队")
            job_id = queue.enqueue(job_funcs.rename_team, team.id, "rq 改名")
            assert JobRecord.get_by_id(job_id).status == "queued"
            connection = redis.Redis.from_url(redis_url)
            SimpleWorker([queue.name], connection=connection).work(burst=True)
            record = JobRecord.get_by_id(job_id)
            assert record.status == "finished" and record.result == {"renamed": team.id}
            assert Team.get_by_id(team.id).name == "rq 改名"
            assert queue.health()["ok"]
    finally:
        close_app(app)


def test_progress_outside_a_job_is_a_no_op(app):
    jobs.report_progress(0.5, "nothing")  # must not raise or write
    assert JobRecord.select().count() == 0


def test_the_urgent_jobs_are_the_functions_that_exist():
    """Each job kind a customer waits for names a real job function (a rename would
    quietly send it back to the default queue, behind ticket sinks and exports)."""
    for path in jobs.URGENT_JOBS:
        assert callable(jobs.resolve(path)), path
        assert jobs.queue_class(path) == "urgent"
    assert jobs.queue_class("meiqia.services.ticket_sinks.deliver_job") == "default"
    assert jobs.queue_class("meiqia.services.exports.export_job") == "default"
