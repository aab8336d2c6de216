"""``meiqia worker``: rq workers that outlive Redis outages and sweep the job records.

One ``meiqia worker`` runs one worker loop per queue class, each in a process of
its own: ``JOB_URGENT_WORKERS`` (1) loops on the urgent queue (what a customer
waits for: channel replies, reply e-mails, WeChat image fetches;
``jobs.URGENT_JOBS``) and one on the default queue (ticket-sink deliveries,
exports, reindexes). rq runs one job at a time per loop, so a sink delivery that
hangs for its whole budget, or an hour-long export, holds the default loop and
never a customer's reply (it did: with one worker, three hanging sink deliveries
sent a channel customer's bot answer 90 s late). The command itself only starts
and watches the loops (``meiqia.job_supervisor``, which loads none of this);
``meiqia worker --queue urgent`` (or ``default``) is one loop, this module, in the
process itself: what the command starts, and a way to add loops of one class.

rq's own loop retries a lost connection only while it waits for a job; a Redis
error anywhere else (maintenance, a job's bookkeeping, registering its death)
makes ``Worker.work()`` return or raise, and the process used to exit with it.
Here the worker is started again, with backoff, once Redis answers: a service
manager sees one long-lived process, as it expects (docs/deploy.md "Jobs").

The worker also runs ``jobs.recover()`` in rq's maintenance step, every
``JOB_RECOVER_SECONDS``: abandoned jobs (their worker was killed) are reaped and
run again, and recorded jobs that Redis lost are queued again. It runs in the
worker's main process, between jobs, never in a forked work horse.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from typing import Any

import redis
from rq import Worker
from rq.exceptions import StopRequested
from rq.job_lifecycle import call_exception_handlers
from rq.worker import WorkerStatus

from meiqia.db import Outage

log = logging.getLogger(__name__)

#: Longest wait between two attempts to reach Redis again (seconds).
MAX_BACKOFF = 30.0
#: Seconds a stopping worker's teardown may take before the process exits anyway.
TEARDOWN_SECONDS = 10.0


class RecoveringWorker(Worker):
    """An rq worker whose maintenance also sweeps meiqia's job records."""

    meiqia_app: Any = None

    def run_maintenance_tasks(self) -> None:
        try:
            sweep(self.meiqia_app)
            self.register_again_if_forgotten()
        finally:
            super().run_maintenance_tasks()

    def handle_exception(self, job: Any, *exc_info: Any) -> None:
        """rq's record of a failed attempt, but without its ERROR and traceback
        for an expected failure (``jobs.RetryLater``: a far side down, such as
        WeChat's media API failing for a while): ``jobs.execute`` already logged
        it as one WARNING line with the reason. Any other exception (a bug)
        keeps rq's traceback."""
        from meiqia.jobs import RetryLater

        if len(exc_info) > 1 and isinstance(exc_info[1], RetryLater):
            call_exception_handlers(self._exc_handlers, job, *exc_info)
            return
        super().handle_exception(job, *exc_info)

    def request_stop(self, signum: Any, frame: Any) -> None:
        """rq's warm shutdown (SIGTERM, SIGINT), bounded once no job runs.

        Twice in loaded test runs a worker asked to stop (after a Redis restart)
        hung after rq's "unsubscribing from channel": its teardown closes the Redis
        connections its pub/sub reader thread may still be using, and the service
        manager had to kill it. With Redis hanging (no answer, no error), any step
        on the way out waits for good: a maintenance pass's Redis call, registering
        the worker's death (rq's connections have no read timeout). Idle, nothing
        is lost by leaving: past ``TEARDOWN_SECONDS`` the process exits with 0, as a
        clean stop does. Busy, the job finishes first and ``teardown`` sets the
        bound then."""
        if self.get_state() != WorkerStatus.BUSY:
            _exit_unless_done_within(TEARDOWN_SECONDS, self)
            leave_hub(self.meiqia_app)
        super().request_stop(signum, frame)

    def teardown(self) -> None:
        """rq's teardown, bounded when the worker is stopping for good after a job
        (see ``request_stop``). The hub's peers are left first: the bound may end
        the process before rq's teardown returns."""
        if self._stop_requested:
            _exit_unless_done_within(TEARDOWN_SECONDS, self)
            leave_hub(self.meiqia_app)
        super().teardown()

    def register_again_if_forgotten(self) -> bool:
        """Register this worker again when Redis has forgotten it.

        An outage met while rq waits for a job is waited out by rq's own loop, which
        reconnects without registering again: after a Redis that restarted empty the
        worker ran jobs but was in no registry, so /healthz reported "no live worker"
        for good. Its heartbeat leaves a hash without ``birth``; that is the sign."""
        try:
            if self.connection.hexists(self.key, "birth"):
                return False
            self.connection.delete(self.key)
            self.register_birth()
        except StopRequested:  # SIGTERM meanwhile: rq's loop must see it (see sweep)
            raise
        except Exception as exc:  # noqa: BLE001 - Redis still away: the next pass
            log.warning("worker: could not register again with Redis: %s", exc)
            return False
        log.warning("worker: Redis had forgotten this worker; registered again")
        return True


#: The database failing under this process's recovery passes (``db.Outage``).
_OUTAGE = Outage(log, "job recovery")


def sweep(app: Any) -> int:
    """One ``jobs.recover()`` pass; logged, never raised (a database or Redis
    hiccup must not stop the worker: the next pass tries again)."""
    from meiqia import jobs
    from meiqia.db import connection
    from meiqia.db import database

    try:
        with app.app_context(), connection():
            count = jobs.recover(app.extensions["meiqia.jobs"])
        _OUTAGE.recovered()
        if count:
            log.info("job recovery: %d job(s) reaped or queued again", count)
        return count
    except StopRequested:
        # rq's SIGTERM handler raises it wherever the idle worker is: swallowed here
        # (a stop as a loop starts, in its first maintenance), the loop listened on
        # until the teardown bound ended it 10 s later, and its scheduler with it.
        raise
    except Exception as exc:  # noqa: BLE001 - tried again at the next maintenance
        if _OUTAGE.failed(exc) is None:  # the database down: one warning, not each pass
            log.exception("job recovery failed; trying again at the next pass")
        return 0
    finally:
        # No pooled connection may be inherited by the next forked work horse.
        close_idle = getattr(database.obj, "close_idle", None)
        if close_idle is not None:
            close_idle()


def wait_for_redis(url: str, backoff: float) -> None:
    """Ping Redis until it answers, waiting longer each time (at most MAX_BACKOFF)."""
    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        while True:
            try:
                client.ping()
                return
            except redis.RedisError as exc:
                log.warning("worker: Redis unreachable (%s); trying again in %.0f s", exc,
                            backoff)
                time.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
    finally:
        client.close()


def leave_hub(app: Any) -> None:
    """Leave the hub's peers (``<prefix>:hub-peers``) on a clean stop.

    ``meiqia worker`` ends with ``os._exit`` (cli.py says why), so the hub's own
    ``atexit`` never ran: the worker's id stayed in the hash, and 8 s later every
    web process took it for a killed process and resynced every socket
    (docs/deploy.md §5). ``close()`` leaves unless a failed publish is still
    unannounced or Redis is away, the two cases where the silence must speak.
    Called as the stop begins (idle, or once the running job is done), before rq's
    teardown, which may hang and be cut short by ``_exit_unless_done_within``."""
    hub = app.extensions.get("meiqia.hub") if app is not None else None
    if hub is None:
        return
    try:
        hub.close()
    except Exception as exc:  # noqa: BLE001 - stopping anyway: the silence tells
        log.warning("worker: could not leave the hub's peers: %s", exc)


def _exit_unless_done_within(seconds: float, worker: Any = None) -> threading.Thread:
    """A daemon timer that ends the process with 0 unless it has exited first (it is
    never disarmed: the caller is on its way out). The worker's rq scheduler, a
    process forked from it, is killed first: it outlived the worker (a loop started
    and stopped by ``meiqia worker`` left one running for good)."""
    def leave() -> None:
        time.sleep(seconds)
        log.warning("worker: teardown still not done after %.0f s; exiting", seconds)
        scheduler = getattr(getattr(worker, "scheduler", None), "_process", None)
        try:
            if scheduler is not None and scheduler.is_alive():
                os.kill(scheduler.pid, signal.SIGKILL)
        except (OSError, ValueError, AssertionError):
            pass
        logging.shutdown()
        os._exit(0)

    timer = threading.Thread(target=leave, name="meiqia-teardown-watchdog", daemon=True)
    timer.start()
    return timer


def run(app: Any, burst: bool = False, kind: str | None = None) -> None:
    """One worker loop in this process, until stopped (SIGTERM/SIGINT) or, with
    ``burst``, until its queues are empty: on the queue of class ``kind``, or on
    both (urgent first) without one. ``meiqia worker`` without ``--queue`` runs
    none itself: its loops are child processes (``meiqia.job_supervisor``)."""
    queue = app.extensions["meiqia.jobs"]
    work(app, [queue.queues[kind].name] if kind is not None else queue.names, burst=burst)


def work(app: Any, names: list[str], burst: bool = False) -> None:
    """One worker loop on the rq queues ``names``, in this process: rq's worker,
    started again when Redis comes back, until stopped or, with ``burst``, until
    the queues are empty."""
    from meiqia.db import database

    queue = app.extensions["meiqia.jobs"]
    url = app.config["REDIS_URL"]
    recover_every = float(app.config["JOB_RECOVER_SECONDS"])
    backoff = 1.0
    while True:
        # Blocking dequeues need a client without the web process's short timeouts.
        client = redis.Redis.from_url(url, socket_connect_timeout=5)
        try:
            # rq's constructor already talks to Redis: unreachable at start-up (or
            # when starting again), wait for it as after an outage instead of exiting.
            worker = RecoveringWorker(names, connection=client,
                                      worker_ttl=queue.worker_ttl,
                                      job_monitoring_interval=queue.worker_ttl,
                                      maintenance_interval=max(1, int(recover_every)))
        except redis.RedisError as exc:
            client.close()
            log.warning("worker: Redis unreachable (%s); trying again in %.0f s", exc, backoff)
            time.sleep(backoff)
            wait_for_redis(url, min(backoff * 2, MAX_BACKOFF))
            backoff = min(backoff * 2, MAX_BACKOFF)
            log.info("worker: Redis answers; starting the worker")
            continue
        worker.meiqia_app = app
        database.close()
        started = time.monotonic()
        try:
            worker.work(burst=burst, with_scheduler=True)
        except redis.RedisError as exc:
            log.error("worker: lost Redis (%s)", exc)
        finally:
            client.close()
        # SIGTERM/SIGINT (rq's warm shutdown) stamps the request: stop for good.
        if burst or worker._stop_requested or worker._shutdown_requested_date is not None:
            leave_hub(app)
            return
        # rq's loop gave up (it logged why): start again once Redis answers. Until
        # then SIGTERM and SIGINT stop the process at once (no job is running).
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        if time.monotonic() - started > 60:
            backoff = 1.0  # it worked for a while: a new outage starts the count again
        wait_for_redis(url, backoff)
        backoff = min(backoff * 2, MAX_BACKOFF)
        log.info("worker: Redis answers again; starting the worker again")
