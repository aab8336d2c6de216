"""History exports survive the faults a job may meet, and end ``done`` with one file.

An export is a job with retries (``exports.RETRY``), and each attempt writes its
file from the start. Three faults, each made for real mid-file (a few thousand
conversations, so the file is being written when it strikes):

* the rq work horse and its ``meiqia worker`` are killed -9: the job's heartbeat
  stops, it is reaped and run again by the next worker;
* the embedded server (``meiqia run`` on SQLite, jobs in its threads) is killed -9
  and started again: its recovery sweep reaps the job and runs it again;
* PostgreSQL terminates the job's connections (``pg_terminate_backend``, twice):
  the attempt records its failure on a new connection, with the database's
  reason, and the retry finishes the export.
"""

from __future__ import annotations

import csv
import datetime
import io
import os
import sqlite3
import subprocess
import sys

import psycopg2

from meiqia.models import Agent
from meiqia.models import ExportJob
from tests.conftest import close_app
from tests.conftest import make_app
from tests.conftest import truncate_all
from tests.factories import make_conversation
from tests.factories import make_visitor
from tests.helpers import ApiClient
from tests.helpers import wait_until
from tests.reliability.conftest import ROOT
from tests.reliability.conftest import WorkerProcess
from tests.reliability.conftest import meiqia_env
from tests.reliability.test_job_faults import kill_group
from tests.reliability.test_job_faults import run_again
from tests.reliability.test_worker_killed import job_status

HEARTBEAT = 0.2
#: Conversations in the export: enough that it takes a while to write.
COPIES = 3000
ENDED = datetime.datetime(2026, 11, 20, 4, 0)


def seed(api: ApiClient, conn, copies: int = COPIES) -> int:  # noqa: ANN001 - DB-API
    """One ended conversation with a transcript, then ``copies`` copies of it (and of
    its messages) made in SQL, on either database; the number of conversations."""
    team, admin = api.team["id"], api.agent["id"]
    source = make_conversation(
        team, make_visitor(team, name="张三"), handler=admin, ended_at=ENDED,
        messages=[(("visitor" if n % 2 else "agent"), f"第 {n} 句：发票怎么开？" * 3, n * 5)
                  for n in range(20)])
    mark = "%s" if isinstance(conn, psycopg2.extensions.connection) else "?"
    cur = conn.cursor()

    def columns(table: str) -> str:
        cur.execute(f"SELECT * FROM {table} LIMIT 0")
        return ", ".join(d[0] for d in cur.description if d[0] not in {"id"})

    conv_cols = columns("conversation")
    msg_cols = columns("message")
    msg_rest = ", ".join(c for c in msg_cols.split(", ") if c != "conversation_id")
    for _ in range(copies):
        cur.execute(f"INSERT INTO conversation ({conv_cols}) SELECT {conv_cols} FROM "
                    f"conversation WHERE id = {mark} RETURNING id", (source.id,))
        new = cur.fetchone()[0]
        cur.execute(f"INSERT INTO message (conversation_id, {msg_rest}) SELECT {mark}, "
                    f"{msg_rest} FROM message WHERE conversation_id = {mark}",
                    (new, source.id))
    conn.commit()
    return copies + 1


def export_files(folder) -> list[str]:  # noqa: ANN001 - a Path
    return sorted(os.listdir(folder)) if folder.exists() else []


def check_download(api: ApiClient, export: dict, total: int) -> None:
    response = api.get(export["download"])
    rows = list(csv.reader(io.StringIO(response.get_data().decode("utf-8-sig"))))
    response.close()
    assert len(rows) == total + 1  # the header and each conversation once
    assert len({row[0] for row in rows[1:]}) == total


def poll_export(api: ApiClient, export_id: int) -> dict:
    return api.get(f"/api/v1/history/exports/{export_id}").get_json()


def test_an_export_whose_worker_is_killed_mid_file_is_run_again_and_done(
        tmp_path, pg_database_url, redis_url, redis_prefix, workers):
    config = {"REDIS_URL": redis_url, "REDIS_PREFIX": redis_prefix,
              "JOB_HEARTBEAT": HEARTBEAT, "JOB_RECOVER_SECONDS": 1,
              "DATABASE_URL": pg_database_url}
    app = make_app(tmp_path, JOBS_INLINE=False, **config)
    truncate_all(pg_database_url)
    env = meiqia_env(tmp_path, **config)
    conn = psycopg2.connect(pg_database_url)
    folder = tmp_path / "instance" / "exports"
    try:
        with app.app_context():
            api = ApiClient.registered(app)
            total = seed(api, conn)
            started = api.post("/api/v1/history/exports",
                               json={"format": "csv", "with_content": True})
            assert started.status_code == 202, started.get_json()
            export_id = started.get_json()["id"]
            job_id = ExportJob.get_by_id(export_id).job_id

            workers.append(WorkerProcess(env, tmp_path))
            wait_until(lambda: 0 < poll_export(api, export_id)["done"] < total,
                       what="the export mid-file")
            partial = export_files(folder)
            workers[0].kill()  # the work horse with it: nothing records anything
            assert len(partial) == 1 and poll_export(api, export_id)["status"] == "running"

            workers.append(WorkerProcess(env, tmp_path))
            final = wait_until(lambda: (e := poll_export(api, export_id))["status"]
                               in {"done", "failed"} and e, what="the export run again")
            assert final["status"] == "done", (final, workers[1].log())
            assert final["done"] == total and final["error"] == ""
            job = job_status(api, job_id)
            assert job["status"] == "finished" and job["attempts"] == 2
            # The killed attempt's part is gone: one file, the finished one.
            files = export_files(folder)
            assert len(files) == 1 and files != partial
            assert ExportJob.get_by_id(export_id).file_name == files[0]
            check_download(api, final, total)
    finally:
        conn.close()
        close_app(app)


#: The embedded server's first life: starts an export of the agent named on the
#: command line in its own job threads, then idles until it is killed.
EXPORT_THEN_IDLE = """
import sys, threading
from meiqia import create_app
from meiqia.db import connection
from meiqia.models import Agent
from meiqia.services import exports

app = create_app()
with app.test_request_context(), connection():
    export = exports.start(Agent.get_by_id(int(sys.argv[1])),
                           {"format": "csv", "with_content": True})
print("export", export.id, flush=True)
threading.Event().wait(300)
"""


def test_an_export_of_an_embedded_server_killed_mid_file_ends_done_after_a_restart(
        tmp_path):
    app = make_app(tmp_path)
    db = app.config["DATABASE_URL"].removeprefix("sqlite:///")
    folder = tmp_path / "instance" / "exports"
    procs: list[subprocess.Popen] = []
    try:
        with app.app_context():
            api = ApiClient.registered(app)
            with sqlite3.connect(db) as conn:
                total = seed(api, conn)
            admin = Agent.get_by_id(api.agent["id"])
        close_app(app)
        env = meiqia_env(tmp_path, DATABASE_URL=app.config["DATABASE_URL"],
                         JOBS_INLINE="false", JOB_HEARTBEAT=str(HEARTBEAT),
                         JOB_RECOVER_SECONDS="1")

        def export_row() -> tuple | None:
            with sqlite3.connect(db) as conn:
                return conn.execute("SELECT status, done, file_name, job_id FROM export_job"
                                    ).fetchone()

        log = open(tmp_path / "first.log", "wb")  # noqa: SIM115 - the process keeps it
        procs.append(subprocess.Popen([sys.executable, "-c", EXPORT_THEN_IDLE, str(admin.id)],
                                      env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                      start_new_session=True))
        log.close()
        wait_until(lambda: (row := export_row()) and 0 < row[1] < total,
                   what="the export mid-file")
        partial = export_files(folder)
        kill_group(procs[0])
        assert len(partial) == 1 and export_row()[0] == "running"

        procs.append(run_again(env, tmp_path))
        row = wait_until(lambda: (r := export_row())[0] in {"done", "failed"} and r,
                         timeout=120, what="the export after the restart")
        second = (tmp_path / "second.log").read_text(errors="replace")
        assert row[0] == "done" and row[1] == total, (row, second)
        with sqlite3.connect(db) as conn:
            job = conn.execute("SELECT status, attempts FROM job_record WHERE id = ?",
                               (row[3],)).fetchone()
        assert job == ("finished", 2)
        assert export_files(folder) == [row[2]] and row[2] not in partial
        with open(folder / row[2], encoding="utf-8-sig", newline="") as fh:
            assert len(list(csv.reader(fh))) == total + 1
    finally:
        for proc in procs:
            kill_group(proc)
        close_app(app)


def test_an_export_whose_database_connection_is_cut_mid_file_is_retried_and_done(
        tmp_path, pg_database_url, redis_url, redis_prefix, workers):
    config = {"REDIS_URL": redis_url, "REDIS_PREFIX": redis_prefix,
              "JOB_HEARTBEAT": 1.0, "JOB_RECOVER_SECONDS": 1,
              "DATABASE_URL": pg_database_url}
    app = make_app(tmp_path, JOBS_INLINE=False, **config)
    truncate_all(pg_database_url)
    env = meiqia_env(tmp_path, **config)
    conn = psycopg2.connect(pg_database_url)
    watch = psycopg2.connect(pg_database_url)
    watch.autocommit = True
    folder = tmp_path / "instance" / "exports"
    try:
        with app.app_context():
            api = ApiClient.registered(app)
            total = seed(api, conn)
            conn.close()
            workers.append(WorkerProcess(env, tmp_path))
            started = api.post("/api/v1/history/exports",
                               json={"format": "csv", "with_content": True})
            export_id = started.get_json()["id"]
            job_id = ExportJob.get_by_id(export_id).job_id
            wait_until(lambda: 0 < poll_export(api, export_id)["done"] < total,
                       what="the export mid-file")
            for _ in range(2):  # as an operator's pg_terminate_backend, or a failover
                with watch.cursor() as cur:
                    cur.execute("SELECT count(pg_terminate_backend(pid)) FROM "
                                "pg_stat_activity WHERE datname = current_database() "
                                "AND pid <> pg_backend_pid()")

            # The attempt failed for that reason, said so, and waits for its retry.
            failed = wait_until(lambda: (j := job_status(api, job_id))["attempts"] >= 1
                                and j["status"] != "started" and j, what="the attempt's end")
            assert failed["status"] == "queued" and failed["attempts"] == 1, failed
            assert failed["error"].startswith("the database failed during the job: "), failed
            # The server's own words ("terminating connection due to administrator
            # command" or "server closed the connection unexpectedly"), not "killed".
            assert "connection" in failed["error"], failed
            zh = api.get(f"/api/v1/history/exports/{export_id}",
                         headers={"X-Meiqia-Lang": "zh-CN"}).get_json()
            assert zh["status"] == "queued" and zh["done"] == 0
            assert zh["error"].startswith("任务运行时数据库出错：")
            assert zh["error_en"] == failed["error"]

            final = wait_until(lambda: (e := poll_export(api, export_id))["status"]
                               in {"done", "failed"} and e, what="the retried export")
            assert final["status"] == "done", (final, workers[0].log())
            assert final["done"] == total and final["error"] == ""
            assert job_status(api, job_id)["attempts"] == 2
            assert export_files(folder) == [ExportJob.get_by_id(export_id).file_name]
            check_download(api, final, total)
            assert "the worker stopped" not in workers[0].log()
    finally:
        conn.close()
        watch.close()
        close_app(app)
