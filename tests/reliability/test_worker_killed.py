"""Fault (c): an rq worker SIGKILLed in the middle of a job.

Nothing of the dead worker gets to write "failed". The job keeps a heartbeat
while it runs; the status APIs (``/api/v1/jobs/<id>``, the exports API) see the
heartbeat stop and retry the job while it has attempts left, else mark it
failed with a message that says the worker stopped. Never "started" forever.
"""

from __future__ import annotations

import datetime

import psycopg2

from meiqia.jobs import ABANDONED
from meiqia.jobs import Retry
from meiqia.models import Agent
from meiqia.models import ExportJob
from tests.conftest import close_app
from tests.conftest import make_app
from tests.conftest import truncate_all
from tests.factories import make_conversation
from tests.factories import make_visitor
from tests.helpers import ApiClient
from tests.helpers import wait_until
from tests.reliability import job_funcs
from tests.reliability.conftest import WorkerProcess
from tests.reliability.conftest import meiqia_env

HEARTBEAT = 0.2


def job_status(api: ApiClient, job_id: str) -> dict:
    response = api.get(f"/api/v1/jobs/{job_id}")
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_killed_worker_job_is_run_again_by_the_next_worker(
        tmp_path, redis_url, redis_prefix, workers):
    config = {"REDIS_URL": redis_url, "REDIS_PREFIX": redis_prefix,
              "JOB_HEARTBEAT": HEARTBEAT}
    app = make_app(tmp_path, JOBS_INLINE=False, **config)
    env = meiqia_env(tmp_path, DATABASE_URL=app.config["DATABASE_URL"], **config)
    gate = tmp_path / "gate"
    try:
        with app.app_context():
            api = ApiClient.registered(app)
            owner = Agent.get_by_id(api.agent["id"])
            job_id = app.extensions["meiqia.jobs"].enqueue(
                job_funcs.block_until, str(gate), retry=Retry(max=1, intervals=(0,)),
                owner=owner, description="slow job")
            workers.append(WorkerProcess(env, tmp_path))
            wait_until(lambda: job_status(api, job_id)["progress"] == 0.1,
                       what="the job running on the worker")
            workers[0].kill()  # mid-job, the work horse with it

            seen = wait_until(lambda: (s := job_status(api, job_id))["status"] != "started"
                              and s, what="the job reaped")
            assert seen["status"] == "queued" and seen["attempts"] == 1
            assert seen["error"] == ABANDONED and seen["message"] == "retrying"

            gate.touch()
            workers.append(WorkerProcess(env, tmp_path))
            done = wait_until(lambda: (s := job_status(api, job_id))["status"] in
                              {"finished", "failed"} and s, what="the retried job")
            assert done["status"] == "finished", (done, workers[1].log())
            assert done["result"] == "through" and done["attempts"] == 2
    finally:
        close_app(app)


def test_export_whose_worker_is_killed_is_run_again_by_the_next_worker(
        tmp_path, pg_database_url, redis_url, redis_prefix, workers):
    config = {"REDIS_URL": redis_url, "REDIS_PREFIX": redis_prefix,
              "JOB_HEARTBEAT": HEARTBEAT, "DATABASE_URL": pg_database_url}
    app = make_app(tmp_path, JOBS_INLINE=False, **config)
    truncate_all(pg_database_url)
    env = meiqia_env(tmp_path, **config)
    lock = psycopg2.connect(pg_database_url)
    watch = psycopg2.connect(pg_database_url)  # pg_stat_activity is frozen inside a
    watch.autocommit = True                     # transaction: look from outside it
    try:
        with app.app_context():
            api = ApiClient.registered(app)
            team, admin = api.team["id"], api.agent["id"]
            ended = datetime.datetime(2026, 11, 20, 4, 0)
            make_conversation(team, make_visitor(team), handler=admin, ended_at=ended,
                              messages=[("visitor", "发票怎么开？", 0), ("agent", "稍等", 20)])
            started = api.post("/api/v1/history/exports", json={"format": "csv"})
            assert started.status_code == 202, started.get_json()
            export_id = started.get_json()["id"]
            job_id = ExportJob.get_by_id(export_id).job_id

            # Hold the export's row: the job starts, then blocks mid-export on it.
            with lock.cursor() as cur:
                cur.execute("SELECT id FROM export_job WHERE id = %s FOR UPDATE",
                            (export_id,))
            workers.append(WorkerProcess(env, tmp_path))
            wait_until(lambda: blocked_backends(watch) == 1, what="the export blocked")
            assert job_status(api, job_id)["status"] == "started"
            workers[0].kill()
            # A dead client's backend waits on the lock until TCP notices; cut it
            # now, as keepalive would, so it cannot write "running" afterwards.
            with watch.cursor() as cur:
                cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE datname = current_database() AND wait_event_type = 'Lock'")
            lock.rollback()

            # Reaped (the status API's look at it): an export has retries
            # (exports.RETRY), so it waits for a worker instead of failing.
            job = wait_until(lambda: (j := job_status(api, job_id))["status"] != "started"
                             and j, what="the export's job reaped")
            assert job["status"] == "queued" and job["attempts"] == 1
            assert job["error"] == ABANDONED
            export = api.get(f"/api/v1/history/exports/{export_id}").get_json()
            assert export["status"] == "queued" and export["download"] is None

            # The next worker runs it again, and the next export too.
            workers.append(WorkerProcess(env, tmp_path))
            again = api.post("/api/v1/history/exports", json={"format": "csv"}).get_json()
            for one in (export_id, again["id"]):
                final = wait_until(
                    lambda one=one: (e := api.get(f"/api/v1/history/exports/{one}")
                                     .get_json())["status"] in {"done", "failed"} and e,
                    what=f"export {one}")
                assert final["status"] == "done", (final, workers[1].log())
                download = api.get(final["download"])
                body = download.get_data().decode("utf-8-sig")
                download.close()
                assert body.count("\n") == 2  # the header and the one conversation
            assert job_status(api, job_id)["attempts"] == 2
    finally:
        lock.close()
        watch.close()
        close_app(app)


def blocked_backends(conn) -> int:  # noqa: ANN001 - a psycopg2 connection
    """Backends of this database waiting for a row lock (the export, mid-job)."""
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND wait_event_type = 'Lock'")
        return cur.fetchone()[0]


def test_a_live_job_is_not_reaped(app):
    """Only silence counts: a started job with a fresh heartbeat is left alone."""
    from meiqia import jobs
    from meiqia.models import JobRecord
    from meiqia.models.base import utcnow

    JobRecord.create(id="alive", name="alive", status="started", started_at=utcnow(),
                     heartbeat_at=utcnow(), max_attempts=2, attempts=1,
                     call={"path": "x.y", "args": [], "kwargs": {}, "intervals": []})
    JobRecord.create(id="silent", name="silent", status="started", attempts=1,
                     started_at=utcnow() - datetime.timedelta(minutes=5),
                     heartbeat_at=utcnow() - datetime.timedelta(minutes=5))
    assert jobs.reap() == ["silent"]  # no stored call: it cannot run again
    assert JobRecord.get_by_id("alive").status == "started"
    silent = JobRecord.get_by_id("silent")
    assert silent.status == "failed" and silent.error == ABANDONED
    assert jobs.reap() == []  # reaped once


#: A web process that stores an agent's reply and is killed (-9) before it can
#: publish it: what a worker lost between ``COMMIT`` and ``PUBLISH`` leaves behind.
STORE_THEN_DIE = """
import sys, threading, time
from meiqia import create_app
from meiqia.db import connection, database
from meiqia.models import Conversation, Message
from meiqia.services import delivery
from meiqia.models.base import utcnow

app = create_app()
with app.app_context():
    assert app.extensions["meiqia.hub"].wait_ready(10)
    hub = app.extensions["meiqia.hub"]
    deadline = time.monotonic() + 30  # its heartbeat in Redis: the others know it
    while not hub.client.hexists(hub.peers_key, hub.id) and time.monotonic() < deadline:
        hub._stop.wait(0.05)
    cid, agent = int(sys.argv[1]), int(sys.argv[2])
    with connection(), database.atomic():  # as post_message stores: with its seq
        seq = delivery.next_position(cid)[0]
        message = Message.create(conversation=cid, sender_kind="agent", agent=agent,
                                 shown_agent=agent, body="提交了但没发布", created_at=utcnow(),
                                 seq=seq)
        Conversation.update(last_message_id=message.id).where(
            Conversation.id == cid).execute()
    print("stored", message.id, flush=True)
    threading.Event().wait(120)  # killed here, before publishing anything
"""


def test_a_process_killed_between_commit_and_publish_loses_no_delivery(
        tmp_path, redis_url, redis_prefix):
    """The other process notices the silence (hub heartbeat, 8 s) and every open
    socket of the conversation gets the stored message from the database, once."""
    import subprocess
    import sys

    from tests.reliability.test_database_faults import open_chat
    from tests.ws.conftest import LiveServer
    from tests.ws.conftest import Socket
    from tests.ws.conftest import cookie_of

    config = {"REDIS_URL": redis_url, "REDIS_PREFIX": redis_prefix}
    app = make_app(tmp_path, **config)
    server = LiveServer(app)
    env = meiqia_env(tmp_path, DATABASE_URL=app.config["DATABASE_URL"], **config)
    dying = None
    try:
        with app.app_context():
            assert app.extensions["meiqia.hub"].wait_ready()
            api, _, token, cid = open_chat(app)
            agent = Socket(server.url("/ws/agent"), cookie_of(api))
            agent.expect("hello")
            visitor = Socket(server.url(f"/ws/visitor?token={token}"))
            visitor.expect("hello")
            dying = subprocess.Popen(
                [sys.executable, "-c", STORE_THEN_DIE, str(cid), str(api.agent["id"])],
                env=env, stdout=subprocess.PIPE, text=True)
            line = dying.stdout.readline().split()
            assert line[:1] == ["stored"], line
            stored = int(line[1])
            dying.kill()
            dying.wait(timeout=10)
            for socket in (visitor, agent):
                frame = socket.expect("message", where=lambda d: d.get("id") == stored,
                                      timeout=30)
                assert frame["data"]["body"] == "提交了但没发布"
            # Once: a second resync (another silent peer, an outage) skips it.
            app.extensions["meiqia.hub"]._resync_all(0.0)
            visitor.send("message", {"body": "还在吗", "client_msg_id": "k1"})
            visitor.expect("ack")
            agent.expect("message", where=lambda d: d.get("body") == "还在吗")
            for socket in (visitor, agent):
                assert [f["id"] for f in socket.seen if f["type"] == "message"].count(stored) == 1
    finally:
        if dying is not None:
            if dying.poll() is None:
                dying.kill()
                dying.wait(timeout=10)
            dying.stdout.close()
        Socket.close_all()
        server.stop()
        close_app(app)
