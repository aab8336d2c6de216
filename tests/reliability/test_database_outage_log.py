"""A PostgreSQL cut under a live gunicorn (docs/deploy.md §3, production settings):
each background loop of each process logs one short warning when the database stops
answering and one line when it is back; no traceback, no line a second.

An operator's 20 s cut of an idle instance wrote ~2,800 lines with 88 tracebacks
(``presence: the sweep failed`` each second in each process). Here: gunicorn
(gevent, 2 workers) on a database of its own, its sweepers started by a request,
then the database refuses connections and its backends are terminated for some
seconds (``ALTER DATABASE … ALLOW_CONNECTIONS false``, ``pg_terminate_backend``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psycopg2
import pytest
from psycopg2 import sql

from meiqia import migrations
from meiqia.db import make_database
from meiqia.models import ALL_MODELS
from meiqia.models import SchemaMigration
from tests.conftest import own_pg_database
from tests.servers import free_port

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
CUT_SECONDS = 8


def _healthz(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=3) as answer:
            return answer.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def _cut(url: str, seconds: float) -> None:
    name = url.rsplit("/", 1)[1]
    admin = psycopg2.connect(url.rsplit("/", 1)[0] + "/postgres")
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false").format(
                sql.Identifier(name)))
            cur.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE datname = %s", (name,))
            time.sleep(seconds)
    finally:
        with admin.cursor() as cur:
            cur.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(
                sql.Identifier(name)))
        admin.close()


@pytest.mark.postgres
def test_a_database_cut_logs_a_warning_per_loop_not_a_flood(tmp_path):
    with own_pg_database() as url:
        db = make_database(url)
        with db.bind_ctx([SchemaMigration, *ALL_MODELS]), db.connection_context():
            migrations.upgrade(db)
        db.close_all()
        port = free_port()
        log = tmp_path / "gunicorn.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("MEIQIA_")}
        env.update({"MEIQIA_INSTANCE_PATH": str(tmp_path / "inst"), "MEIQIA_WORKERS": "2",
                    "MEIQIA_BIND": f"127.0.0.1:{port}", "MEIQIA_DATABASE_URL": url,
                    "MEIQIA_SECRET_KEY": "database-outage-log-test",
                    "PYTHONPATH": str(ROOT)})
        with log.open("w") as out:
            proc = subprocess.Popen(
                [str(BIN / "gunicorn"), "-c", "python:meiqia.gunicorn_conf", "meiqia.wsgi:app"],
                cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True)
        try:
            deadline = time.monotonic() + 60
            while _healthz(port) != 200:
                assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.3)
            for _ in range(10):  # a request to each worker starts its sweepers
                assert _healthz(port) == 200
            time.sleep(3)
            before = len(log.read_text().splitlines())

            _cut(url, CUT_SECONDS)
            deadline = time.monotonic() + 30
            while _healthz(port) != 200:
                assert time.monotonic() < deadline, "not healthy after the cut"
                time.sleep(0.5)
            # Every loop that logged the cut logs its end at its next sweep, after
            # its back-off (up to 10 s): wait for as many "answers again" lines.
            deadline = time.monotonic() + 40
            while True:
                lines = log.read_text().splitlines()[before:]
                down = sum("the database is unreachable" in line for line in lines)
                back = sum("the database answers again" in line for line in lines)
                if down >= 2 and back >= down:
                    break
                assert time.monotonic() < deadline, "\n".join(lines)[:5000]
                time.sleep(0.5)
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)

    text = "\n".join(lines)
    assert "Traceback" not in text, text[:5000]
    down = [line for line in lines if "the database is unreachable" in line]
    back = [line for line in lines if "the database answers again" in line]
    # presence and channels sweep in each of the two workers: one line each, each way.
    assert 2 <= len(down) <= 8 and len(back) == len(down), text[:5000]
    assert all("WARNING" in line for line in down), down
    others = [line for line in lines if line not in down and line not in back
              and "GET /healthz" not in line]
    assert len(others) <= 4, others


def test_a_sweep_that_fails_for_another_reason_still_logs_its_traceback(app, caplog):
    """Only the database's failures are summed up: a bug in a sweep is logged with its
    traceback every time, as before."""
    import logging

    from meiqia.services.sweeper import Sweeper

    calls = []

    def broken() -> int:
        calls.append(1)
        raise ValueError("坏了：不是数据库的错")

    sweeper = Sweeper(app, 0.05, broken, "测试")
    with caplog.at_level(logging.WARNING, logger="meiqia.services.sweeper"):
        sweeper.ensure_running()
        deadline = time.monotonic() + 10
        while len(calls) < 3:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        sweeper.stop()
        sweeper.thread.join(5)
    failed = [r for r in caplog.records if r.getMessage() == "测试: the sweep failed"]
    assert len(failed) >= 3 and all(r.exc_info and r.exc_info[0] is ValueError
                                    for r in failed)
    assert not [r for r in caplog.records if "unreachable" in r.getMessage()]
