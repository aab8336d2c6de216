"""Jobs survive the faults of issue 18 item 5, with real processes and a real receiver.

Each test sends ticket-sink deliveries (webhook jobs) to a local HTTP receiver
that keeps one effect per ``Idempotency-Key`` (tests/reliability/sink_faults.py),
injects a fault, and checks from the database and the receiver that every
recorded job ran and every delivery's effect happened once:

(a) embedded: the server process is killed -9 while 8 deliveries wait to retry;
    ``meiqia run`` started again resumes them at their recorded times;
(b) production: Redis goes away (killed, restarted empty) while 8 deliveries wait
    in it; ``meiqia worker`` survives and re-queues what Redis lost;
(c) production: the worker is killed -9 mid-delivery; the next worker reaps the
    job and runs it again, with the same key, so the receiver drops the repeat.

benchmarks/job_faults.py runs the same faults longer and with more deliveries.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from meiqia.jobs import ThreadQueue
from tests.conftest import close_app
from tests.conftest import make_app
from tests.helpers import wait_until
from tests.reliability import job_funcs
from tests.reliability.conftest import ROOT
from tests.reliability.conftest import WorkerProcess
from tests.reliability.conftest import meiqia_env
from tests.reliability.sink_faults import KeyedReceiver
from tests.reliability.sink_faults import counts
from tests.reliability.sink_faults import new_tickets
from tests.reliability.sink_faults import sqlite_path
from tests.reliability.sink_faults import team_with_sink

N = 8

#: The embedded server's first life: it sends the deliveries of the tickets named
#: on the command line (the receiver is down: each waits to retry), then idles
#: until it is killed.
DISPATCH_THEN_IDLE = """
import sys, threading
from meiqia import create_app
from meiqia.db import connection
from meiqia.models import Ticket, TicketSink
from meiqia.services import ticket_sinks

app = create_app()
with app.app_context(), connection():
    TicketSink.update(enabled=True).execute()
    for ticket_id in sys.argv[1:]:
        ticket_sinks.dispatch(Ticket.get_by_id(int(ticket_id)), "created", {})
print("dispatched", flush=True)
threading.Event().wait(300)
"""


def run_again(env: dict, tmp_path) -> subprocess.Popen:
    """``meiqia run`` started again on the same instance (after a kill -9), its
    output in ``second.log``."""
    log = open(tmp_path / "second.log", "wb")  # noqa: SIM115 - the process keeps it
    meiqia = os.path.join(os.path.dirname(sys.executable), "meiqia")
    proc = subprocess.Popen([meiqia, "run", "--port", "0"], env=env, cwd=ROOT, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    return proc


def kill_group(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def test_embedded_kill_9_while_deliveries_wait_to_retry_loses_none(tmp_path):
    receiver = KeyedReceiver(status=503)
    config = {"OUTBOUND_ALLOW_PRIVATE": True}
    app = make_app(tmp_path, **config)
    db = sqlite_path(app.config["DATABASE_URL"])
    procs: list[subprocess.Popen] = []
    try:
        with app.app_context():
            # The sink is off while the tickets are made, so this (inline) app
            # sends nothing: the deliveries belong to the server process below.
            api, _ = team_with_sink(app, receiver.url, enabled=False)
            tickets = new_tickets(api, N)
        close_app(app)
        env = meiqia_env(tmp_path, DATABASE_URL=app.config["DATABASE_URL"],
                         OUTBOUND_ALLOW_PRIVATE="true", JOBS_INLINE="false",
                         SINK_RETRY_SECONDS="3,3,3,3,3,3", JOB_RECOVER_SECONDS="1")
        log = open(tmp_path / "first.log", "wb")  # noqa: SIM115 - the process keeps it
        procs.append(subprocess.Popen(
            [sys.executable, "-c", DISPATCH_THEN_IDLE, *map(str, tickets)], env=env,
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
        log.close()
        # Every delivery failed once and waits, with its retry time recorded.
        before = wait_until(lambda: (c := counts(db))["retrying"]["waiting"] == N
                            and c["deliveries"]["pending"] == N and c,
                            what=f"{N} deliveries waiting to retry")
        kill_group(procs[0])
        assert before["jobs"]["queued"] == N and not before["deliveries"]["delivered"]
        assert receiver.taken() == 0 and len(receiver.requests) >= N

        receiver.status = 200
        procs.append(run_again(env, tmp_path))
        after = wait_until(lambda: (c := counts(db))["deliveries"]["delivered"] == N
                           and c["jobs"]["finished"] == N and c,
                           timeout=120, what=f"{N} deliveries after the restart")
        assert after["jobs"] == {"finished": N}, after
        assert receiver.taken() == N and not receiver.twice()
        assert not receiver.repeats and not receiver.missing_key
        assert "resumed 8 recorded job(s)" in (tmp_path / "second.log").read_text()
    finally:
        for proc in procs:
            kill_group(proc)
        receiver.close()
        close_app(app)


def on_redis(tmp_path, own_redis, prefix: str, retry_seconds: list[int]):
    """An app on the test's own Redis (rq queue, a sweep every second) and the
    environment of a ``meiqia worker`` beside it: (app, database path, env)."""
    config = {"REDIS_URL": own_redis.url, "REDIS_PREFIX": prefix,
              "OUTBOUND_ALLOW_PRIVATE": True, "SINK_RETRY_SECONDS": retry_seconds,
              "JOB_RECOVER_SECONDS": 1, "REDIS_TIMEOUT": 0.2}
    app = make_app(tmp_path, JOBS_INLINE=False, **config)
    env = meiqia_env(tmp_path, DATABASE_URL=app.config["DATABASE_URL"],
                     **{k: (",".join(map(str, v)) if isinstance(v, list) else v)
                        for k, v in config.items()})
    return app, sqlite_path(app.config["DATABASE_URL"]), env


def test_worker_survives_a_redis_outage_and_requeues_what_redis_lost(
        tmp_path, own_redis, workers):
    receiver = KeyedReceiver(status=503)
    app, db, env = on_redis(tmp_path, own_redis, "jobfaults", [2, 2, 2, 2, 2, 2])
    client = app.test_client()
    try:
        with app.app_context():
            # No worker yet: /healthz says so (degraded, still 200).
            health = client.get("/healthz")
            assert health.status_code == 200
            assert health.get_json()["status"] == "degraded"
            assert "meiqia worker" in health.get_json()["queue"]["degraded"]
            workers.append(WorkerProcess(env, tmp_path))
            wait_until(lambda: client.get("/healthz").get_json()["status"] == "ok",
                       what="the worker seen by /healthz")

            api, _ = team_with_sink(app, receiver.url)
            new_tickets(api, N)
            wait_until(lambda: counts(db)["retrying"]["waiting"] == N,
                       what=f"{N} deliveries waiting to retry in Redis")
            own_redis.stop()  # Redis is gone, and with it the scheduled retries
            # Down until both loops wait for it ("Redis unreachable", one line each),
            # wherever each was when Redis went. Both must keep the process alive.
            wait_until(lambda: workers[0].log().count("Redis unreachable") >= 2,
                       what="the worker waiting out the outage")
            assert workers[0].proc.poll() is None, workers[0].log()
            own_redis.start()  # empty: no persistence
            receiver.status = 200
            after = wait_until(lambda: (c := counts(db))["deliveries"]["delivered"] == N
                               and c["jobs"]["finished"] == N and c, timeout=120,
                               what=f"{N} deliveries after the outage")
            assert workers[0].proc.poll() is None, workers[0].log()
            assert after["jobs"] == {"finished": N}, after
            assert receiver.taken() == N and not receiver.twice()
            assert "queued again" in workers[0].log()
            wait_until(lambda: client.get("/healthz").get_json()["status"] == "ok",
                       what="/healthz ok again with the worker back")
    finally:
        receiver.close()
        close_app(app)
    # Stopped by SIGTERM as a service manager stops it: it exits, not restarts.
    workers[0].stop()
    assert workers[0].proc.returncode == 0, workers[0].log()
    # Back at work after the outage, both loops.
    log = workers[0].log()
    assert log.count("Redis answers again") == 2, log


def test_a_worker_started_while_redis_is_down_waits_for_it(tmp_path, own_redis, workers):
    """``meiqia worker`` started before Redis (a boot, Redis restarting) waits with the
    log line docs/deploy.md promises, then works: it used to exit with 1 and a
    traceback (rq's worker talks to Redis as it is built)."""
    app, db, env = on_redis(tmp_path, own_redis, "jobfaults", [2])
    close_app(app)
    own_redis.stop()  # nothing listens on the worker's Redis port now
    workers.append(WorkerProcess(env, tmp_path))
    # Each worker loop (a process per queue class) says it waits, once.
    wait_until(lambda: workers[0].log().count("Redis unreachable") >= 2,
               what="the worker waiting for Redis")
    log = workers[0].log()
    assert workers[0].proc.poll() is None, log
    assert log.count("trying again in 1 s") == 2, log
    assert "Traceback" not in log, log

    own_redis.start()
    wait_until(lambda: workers[0].log().count("Listening on") == 2,
               what="the worker started")
    log = workers[0].log()
    assert log.count("Redis unreachable") == 2 and log.count("Redis answers again") == 2, log
    app = make_app(tmp_path, JOBS_INLINE=False, **{k: v for k, v in app.config.items()
                                                   if k in ("REDIS_URL", "REDIS_PREFIX")})
    try:
        with app.app_context():
            marker = tmp_path / "ran"
            app.extensions["meiqia.jobs"].enqueue(job_funcs.count_run, str(marker))
            wait_until(marker.exists, what="a job run by the worker")
    finally:
        close_app(app)
    workers[0].stop()
    assert workers[0].proc.returncode == 0, workers[0].log()


def test_a_worker_is_registered_again_as_soon_as_redis_answers(tmp_path, own_redis, workers):
    """Redis restarted (empty) under an idle ``meiqia worker``: both loops are in
    Redis's registry again, /healthz counts them and an urgent job runs, all within
    a bounded poll of Redis answering, and the log says once per loop that Redis is
    unreachable and once that it answers, without rq's lines or tracebacks.

    rq's own loop used to wait out the outage, with an ERROR line per try and its
    backoff up to 60 s, its scheduler died with a traceback, and the loop was
    registered again only at its next maintenance pass: /healthz said "degraded"
    (no urgent worker) for 42 s after a 20 s outage. A sweep every 60 s here makes
    that pass far later than the poll's bound."""
    config = {"REDIS_URL": own_redis.url, "REDIS_PREFIX": "jobback",
              "JOB_RECOVER_SECONDS": 60, "REDIS_TIMEOUT": 0.2}
    app = make_app(tmp_path, JOBS_INLINE=False, **config)
    env = meiqia_env(tmp_path, DATABASE_URL=app.config["DATABASE_URL"], **config)
    client = app.test_client()

    def both_loops() -> bool:
        queue = client.get("/healthz").get_json()["queue"]
        return queue.get("workers") == 1 and queue.get("urgent_workers") == 1

    try:
        with app.app_context():
            workers.append(WorkerProcess(env, tmp_path))
            wait_until(both_loops, what="both loops seen by /healthz")
            own_redis.stop()
            wait_until(lambda: workers[0].log().count("Redis unreachable") == 2,
                       what="each loop saying it waits for Redis")
            own_redis.start()  # empty: no worker is registered in it
            wait_until(both_loops, timeout=20, what="both loops registered again")
            assert client.get("/healthz").get_json()["status"] == "ok"
            marker = tmp_path / "urgent-ran"
            app.extensions["meiqia.jobs"].urgent_queue.enqueue(job_funcs.count_run,
                                                               str(marker))
            wait_until(marker.exists, timeout=20, what="an urgent job run")
    finally:
        close_app(app)
    workers[0].stop()
    log = workers[0].log()
    assert log.count("Redis unreachable") == 2, log
    assert log.count("Redis answers again") == 2, log
    assert "Traceback" not in log and "could not connect to Redis" not in log, log


def test_deliveries_made_while_redis_is_down_go_out_when_it_is_back(
        tmp_path, own_redis, workers):
    """Tickets written during a Redis outage: their deliveries cannot be queued.
    Each stays ``pending`` with its job recorded as queued (not ``failed``, which
    only a person's retry would send), and the worker's recovery sweep queues
    them once Redis answers: every one delivered once, nobody clicking retry."""
    receiver = KeyedReceiver(status=200)
    app, db, env = on_redis(tmp_path, own_redis, "jobrefused", [2, 2, 2])
    client = app.test_client()
    try:
        with app.app_context():
            workers.append(WorkerProcess(env, tmp_path))
            wait_until(lambda: client.get("/healthz").get_json()["status"] == "ok",
                       what="the worker seen by /healthz")
            api, _ = team_with_sink(app, receiver.url)
            own_redis.stop()
            new_tickets(api, N)  # each answered 201: the tickets are stored
            during = counts(db)
            assert during["deliveries"] == {"pending": N}, during
            assert during["jobs"] == {"queued": N}, during
            own_redis.start()  # empty: it never held these jobs
            after = wait_until(lambda: (c := counts(db))["deliveries"]["delivered"] == N
                               and c["jobs"]["finished"] == N and c, timeout=120,
                               what=f"{N} deliveries queued by the sweep after the outage")
            assert after["deliveries"] == {"delivered": N}, after
            assert receiver.taken() == N and not receiver.twice()
            assert "queued again" in workers[0].log()
    finally:
        receiver.close()
        close_app(app)


def test_a_worker_killed_mid_delivery_is_reaped_and_the_repeat_dropped(
        tmp_path, redis_url, redis_prefix, workers):
    receiver = KeyedReceiver(status=200)
    receiver.hold.clear()  # the delivery hangs in flight until released
    config = {"REDIS_URL": redis_url, "REDIS_PREFIX": redis_prefix,
              "OUTBOUND_ALLOW_PRIVATE": True, "JOB_HEARTBEAT": 0.2,
              "JOB_RECOVER_SECONDS": 1}
    app = make_app(tmp_path, JOBS_INLINE=False, **config)
    db = sqlite_path(app.config["DATABASE_URL"])
    env = meiqia_env(tmp_path, DATABASE_URL=app.config["DATABASE_URL"], **config)
    try:
        with app.app_context():
            api, _ = team_with_sink(app, receiver.url)
            workers.append(WorkerProcess(env, tmp_path))
            new_tickets(api, 1)
            wait_until(lambda: receiver.requests, what="the delivery in flight")
            assert counts(db)["jobs"] == {"started": 1}
            client = app.test_client()
            assert client.get("/healthz").get_json()["queue"]["workers"] == 1
            workers[0].kill()  # mid-request: nothing of it records anything
            receiver.release()
            # Its registration outlives it in Redis; its heartbeat does not. Its loops
            # (one per queue class) stop counting each at its own last beat, and the
            # first to go already degrades /healthz: wait for both.
            health = wait_until(lambda: (h := client.get("/healthz").get_json())["status"]
                                == "degraded" and h["queue"]["workers"] == 0
                                and h["queue"]["urgent_workers"] == 0 and h,
                                what="/healthz noticing the dead worker")
            assert health["queue"]["degraded"]

            workers.append(WorkerProcess(env, tmp_path))
            after = wait_until(lambda: (c := counts(db))["deliveries"]["delivered"] == 1
                               and c["jobs"]["finished"] == 1 and c,
                               what="the delivery reaped and sent again")
            assert after["jobs"] == {"finished": 1}, after
            # Sent twice with the same key; the effect happened once.
            assert len(receiver.requests) == 2 and len(set(receiver.requests)) == 1
            assert receiver.taken() == 1 and sum(receiver.repeats.values()) == 1
            assert "reaped or queued again" in workers[1].log()
    finally:
        receiver.close()
        close_app(app)


def test_one_slow_embedded_job_does_not_hold_the_others(tmp_path):
    app = make_app(tmp_path, JOBS_INLINE=False, JOB_THREADS=2)
    gate = tmp_path / "gate"
    try:
        with app.app_context():
            queue = app.extensions["meiqia.jobs"]
            assert isinstance(queue, ThreadQueue)
            from meiqia.models import JobRecord

            slow = queue.enqueue(job_funcs.block_until, str(gate))
            quick = queue.enqueue(job_funcs.block_until, str(tmp_path))  # exists: at once
            wait_until(lambda: JobRecord.get_by_id(quick).status == "finished",
                       what="the quick job while the slow one runs")
            assert JobRecord.get_by_id(slow).status == "started"
            gate.touch()
            wait_until(lambda: JobRecord.get_by_id(slow).status == "finished",
                       what="the slow job")
    finally:
        close_app(app)


def test_a_second_copy_of_a_job_does_not_run_it_again(app, tmp_path):
    """A re-queue racing the original (Redis kept the job after all, two sweeps, rq's
    own retry of an abandoned job): the copy that finds the record no longer queued
    does nothing."""
    from meiqia import jobs
    from meiqia.models import JobRecord

    effects = tmp_path / "effects"
    job_id = app.extensions["meiqia.jobs"].enqueue(job_funcs.count_run, str(effects))
    assert JobRecord.get_by_id(job_id).status == "finished"
    path = jobs.func_path(job_funcs.count_run)
    assert jobs.execute(job_id, path, [str(effects)], {}) is None
    # The same id queued again (a fixed id is an idempotency key): not run again.
    assert app.extensions["meiqia.jobs"].enqueue(job_funcs.count_run, str(effects),
                                                 job_id=job_id) == job_id
    assert effects.read_text() == "ran\n"
    record = JobRecord.get_by_id(job_id)
    assert record.status == "finished" and record.attempts == 1


def test_two_sweeps_at_once_queue_a_lost_job_once(tmp_path, redis_url, redis_prefix):
    """Two workers' recovery sweeps race over the same lost jobs: each job is queued
    again by exactly one of them (the record is claimed by compare-and-set)."""
    import threading

    from meiqia.db import connection

    app = make_app(tmp_path, JOBS_INLINE=False, REDIS_URL=redis_url, REDIS_PREFIX=redis_prefix)
    try:
        with app.app_context():
            queue = app.extensions["meiqia.jobs"]
            ids = {queue.enqueue(job_funcs.count_run, str(tmp_path / "x")) for _ in range(20)}
            queue.rq_queue.empty()  # Redis lost them (jobs and their hashes)
            assert queue.rq_queue.count == 0
            barrier, done = threading.Barrier(2), []

            def sweep() -> None:
                with app.app_context(), connection():
                    barrier.wait()
                    done.append(queue.requeue_lost(grace=0))

            threads = [threading.Thread(target=sweep) for _ in range(2)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=60)
            assert sum(done) == len(ids)
            assert sorted(queue.rq_queue.job_ids) == sorted(ids)
            with connection():
                assert queue.requeue_lost(grace=0) == 0  # in Redis again: nothing lost
    finally:
        close_app(app)


def _catches(pid: int, signum: int) -> bool:
    """Whether process ``pid`` has a handler for ``signum`` (``SigCgt`` in /proc)."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("SigCgt:"):
                return bool(int(line.split()[1], 16) >> (signum - 1) & 1)
    return False


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid``."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    if int(fh.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry))
            except (OSError, IndexError, ValueError):
                continue
    return found


def test_a_worker_stopped_while_redis_hangs_still_exits(tmp_path, own_redis, workers):
    """SIGTERM while Redis is frozen (SIGSTOP: it holds its connections and answers
    nothing, as a host that hangs does). rq's teardown then waits on Redis for good
    (registering the worker's death has no socket timeout), and a service manager
    would have to kill the worker. It now exits by itself, with 0, once its teardown
    has taken ``TEARDOWN_SECONDS`` (nothing is running then)."""
    from meiqia import job_supervisor
    from meiqia import job_worker
    from meiqia.config import DEFAULTS

    plan = len(job_supervisor.loop_plan(DEFAULTS))  # 2: one urgent, one default loop
    app = make_app(tmp_path, JOBS_INLINE=False, REDIS_URL=own_redis.url,
                   REDIS_PREFIX="jobhang")
    env = meiqia_env(tmp_path, DATABASE_URL=app.config["DATABASE_URL"],
                     REDIS_URL=own_redis.url, REDIS_PREFIX="jobhang")
    try:
        workers.append(WorkerProcess(env, tmp_path))
        wait_until(lambda: "Listening on" in workers[0].log(), what="the worker listening")
        # rq logs "Listening on" before it starts its scheduler (Redis calls) and only
        # then takes SIGTERM; frozen before that, a worker loop dies of the signal's
        # default action (-15), which is not the case this test is about. Each loop
        # (job_supervisor.loop_plan) is a child of the command.
        wait_until(lambda: _catches(workers[0].proc.pid, signal.SIGTERM)
                   and len(loops := _children(workers[0].proc.pid)) == plan
                   and all(_catches(pid, signal.SIGTERM) for pid in loops),
                   what="every worker loop handling SIGTERM")
        os.kill(own_redis.proc.pid, signal.SIGSTOP)
        try:
            workers[0].proc.terminate()
            code = workers[0].proc.wait(timeout=job_worker.TEARDOWN_SECONDS + 20)
        finally:
            os.kill(own_redis.proc.pid, signal.SIGCONT)
        assert code == 0, workers[0].log()
        # Every loop stopped so, the command after them.
        assert workers[0].log().count("teardown still not done") == plan, workers[0].log()
    finally:
        close_app(app)


def _gone(pid: int) -> bool:
    """Whether process ``pid`` has ended (gone, or a zombie not yet reaped)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def test_a_loop_killed_with_sigkill_takes_its_scheduler_with_it(tmp_path, redis_url,
                                                                 redis_prefix, workers):
    """Each worker loop forks rq's scheduler. A loop killed with -9 left it running,
    a child of init that nothing stopped (found by an outside check; the stray
    "worker --queue default" process a full test run left behind). It now ends with
    its loop, and the loop started again has a scheduler of its own."""
    env = meiqia_env(tmp_path, REDIS_URL=redis_url, REDIS_PREFIX=redis_prefix,
                     DATABASE_URL=f"sqlite:///{tmp_path}/meiqia.sqlite3")
    subprocess.run([sys.executable, "-m", "meiqia.cli", "db", "upgrade"], env=env,
                   cwd=tmp_path, check=True, capture_output=True, timeout=120)
    workers.append(WorkerProcess(env, tmp_path))
    supervisor = workers[0].proc.pid

    def loop_with_scheduler() -> tuple[int, int] | None:
        for loop in _children(supervisor):
            forked = _children(loop)
            if len(forked) == 1:  # its scheduler (no job runs: no work horse)
                return loop, forked[0]
        return None

    loop, scheduler = wait_until(loop_with_scheduler, timeout=60,
                                 what="a worker loop and its scheduler")
    os.kill(loop, signal.SIGKILL)
    wait_until(lambda: _gone(scheduler), timeout=30, what="the killed loop's scheduler gone")
    # The supervisor starts the loop again; it has a scheduler of its own.
    wait_until(lambda: (found := loop_with_scheduler()) and found[0] != loop, timeout=60,
               what="the loop started again with its scheduler")
