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

A Redis outage is waited out by meiqia, not by rq: rq's idle loop retried with
its own backoff (1 s doubling to 60 s) and one ERROR line per try, its pub/sub
thread logged one every 2 s, its scheduler process died with a traceback, and a
Redis that came back empty had forgotten the worker until the next maintenance
pass: a 20 s outage left /healthz without a default worker for 11 s and without
an urgent one for 42 s (and the urgent loop asleep in rq's backoff meanwhile).
Now the idle loop's heartbeat (the first thing of each of its turns) meets the
outage and waits in ``wait_for_redis``: one line when Redis stops answering, a
ping every ``POLL_SECONDS``, one line when it answers, then the worker registers
again and runs its maintenance at once (the recovery sweep, the scheduler
started again). rq's lines about the same outage are dropped (``_QuietOutage``).
A Redis error anywhere else (a job's bookkeeping, registering its death) makes
``Worker.work()`` return or raise, and the process used to exit with it: here
the worker is started again once Redis answers, after the same wait, so a
service manager sees one long-lived process (docs/deploy.md "Jobs").

The worker also runs ``jobs.recover()`` in rq's maintenance step, every
``JOB_RECOVER_SECONDS``: abandoned jobs (their worker was killed) are reaped and
run again, and recorded jobs that Redis lost are queued again. It runs in the
worker's main process, between jobs, never in a forked work horse.
"""

from __future__ import annotations

import datetime
import logging
import os
import signal
import threading
import time
from typing import Any

import redis
from rq import Worker
from rq.defaults import DEFAULT_LOGGING_DATE_FORMAT
from rq.defaults import DEFAULT_LOGGING_FORMAT
from rq.exceptions import StopRequested
from rq.job_lifecycle import call_exception_handlers
from rq.scheduler import RQScheduler
from rq.worker import WorkerStatus

from meiqia import job_supervisor
from meiqia.db import Outage
from meiqia.failure_log import first_line

log = logging.getLogger(__name__)

#: Seconds between two pings of a Redis that does not answer: a loop is back in
#: Redis's registry (and /healthz counts it) within about this of Redis answering.
POLL_SECONDS = 1.0
#: While Redis stays away, a reminder line this often (seconds).
REMIND_SECONDS = 300.0
#: Longest wait between two starts of an rq loop that keeps ending while Redis
#: answers (seconds).
MAX_BACKOFF = 30.0
#: Seconds a stopping worker's teardown may take before the process exits anyway.
TEARDOWN_SECONDS = 10.0
#: Errors that mean Redis is not answering (down, restarting, unreachable).
REDIS_DOWN = (redis.ConnectionError, redis.TimeoutError)


class _QuietOutage(logging.Filter):
    """Drops rq's own records of a Redis that does not answer: its idle loop's
    "could not connect to Redis instance … retrying" (a line per try), and its
    loop's "found an unhandled exception, quitting" when the exception is a lost
    connection (``work`` waits and starts it again). meiqia's worker says it once
    itself (``wait_for_redis``). Every other rq record passes, a job's included."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = str(record.msg)
        if "could not connect to Redis instance" in text:
            return False
        exc = record.exc_info[1] if record.exc_info else None
        return not ("unhandled exception, quitting" in text and isinstance(exc, REDIS_DOWN))


_QUIET = _QuietOutage()


class _Scheduler(RQScheduler):
    """rq's scheduler (the forked process that queues retries when they are
    due), which waits out a Redis outage instead of dying of it with a
    traceback: each loop's scheduler died in every outage, and until the loop's
    next maintenance pass restarted it no retry went out."""

    def start(self) -> Any:  # noqa: ANN401 - rq's process
        self._loop_pid = os.getpid()
        return super().start()

    def work(self) -> None:
        # The forked scheduler ends with its loop: a loop killed with -9 left it
        # running, a child of init that nothing stopped, queuing retries for a
        # worker that was gone (the stray "meiqia worker --queue default" after a
        # run of the fault tests).
        job_supervisor.die_with(getattr(self, "_loop_pid", os.getppid()))
        logging.getLogger("rq.scheduler").addFilter(_QUIET)
        while True:
            try:
                super().work()
                return
            except REDIS_DOWN:
                pass
            # The worker logs the outage; this process pings until it ends.
            while not self._stop_requested:
                time.sleep(POLL_SECONDS)
                try:
                    self.connection.ping()
                    break
                except redis.RedisError:
                    continue
            if self._stop_requested:
                return


class RecoveringWorker(Worker):
    """An rq worker whose maintenance also sweeps meiqia's job records."""

    meiqia_app: Any = None
    #: Redis's URL, for the short-timeout pings of ``wait_for_redis``.
    meiqia_url: str = ""
    #: What the log calls this loop: the queues it serves.
    meiqia_label: str = ""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if _QUIET not in self.log.filters:
            self.log.addFilter(_QUIET)

    def heartbeat(self, timeout: int | None = None, pipeline: Any = None) -> None:
        """rq's heartbeat; an outage it meets is waited out here, then the worker
        registers again at once (the first thing of each turn of rq's idle loop,
        and after each job). rq's own retry, its lines and its backoff up to 60 s,
        is never reached; a heartbeat into a pipeline or while a job runs is rq's."""
        if pipeline is not None or self.get_state() == WorkerStatus.BUSY:
            return super().heartbeat(timeout, pipeline)
        try:
            return super().heartbeat(timeout)
        except REDIS_DOWN as exc:
            wait_for_redis(self.meiqia_url, exc, self.meiqia_label)
        self.register_again_if_forgotten()
        # rq's maintenance on this turn, not JOB_RECOVER_SECONDS later: the sweep
        # queues again what Redis lost, and a dead scheduler is started again.
        if self.last_cleaned_at is not None:
            self.last_cleaned_at -= datetime.timedelta(seconds=self.maintenance_interval + 1)
        return super().heartbeat(timeout)

    def _pubsub_exception_handler(self, exc: Exception, pubsub: Any, pubsub_thread: Any) -> None:
        """rq's pub/sub thread (commands to the worker) meets the outage too and
        logged it every 2 s: it waits quietly instead (the loop says it once)."""
        if isinstance(exc, redis.ConnectionError):
            time.sleep(POLL_SECONDS)
            return
        super()._pubsub_exception_handler(exc, pubsub, pubsub_thread)

    def _start_scheduler(self, burst: bool = False, logging_level: str | None = "INFO",
                         date_format: str = DEFAULT_LOGGING_DATE_FORMAT,
                         log_format: str = DEFAULT_LOGGING_FORMAT) -> None:
        """rq's, with ``_Scheduler`` for its ``RQScheduler``."""
        self.scheduler = _Scheduler(
            self.queues, connection=self.connection,
            logging_level=logging_level if logging_level is not None else self.log.level,
            date_format=date_format, log_format=log_format, serializer=self.serializer)
        self.scheduler.acquire_locks()
        if not self.scheduler.acquired_locks:
            return
        if not burst:
            self.scheduler.start()
            return
        try:
            self.scheduler.register_birth()
            self.scheduler.enqueue_scheduled_jobs()
        finally:
            self.scheduler.release_locks()
            self.scheduler.register_death()

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

        rq's loop reconnects without registering again: after a Redis that restarted
        empty the worker ran jobs but was in no registry, so /healthz reported "no
        live worker". Called after each outage (``heartbeat``) and in each
        maintenance pass. rq's heartbeat leaves a hash without ``birth``; that, or no
        hash at all, is the sign."""
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


def wait_for_redis(url: str, exc: BaseException, label: str) -> None:
    """Redis failed with ``exc``: ping it every ``POLL_SECONDS`` until it answers.

    One line as the wait begins, one every ``REMIND_SECONDS`` while it lasts, one
    when Redis answers. No backoff: a ping is cheap, and each second a loop waits
    after Redis is back is a second /healthz reports no worker and an urgent job
    (a customer's reply) waits."""
    began = last = time.monotonic()
    log.warning("worker: Redis unreachable (%s); trying again in %.0f s, every %.0f s "
                "until it answers (%s)", first_line(exc), POLL_SECONDS, POLL_SECONDS, label)
    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        while True:
            time.sleep(POLL_SECONDS)
            try:
                client.ping()
                break
            except redis.RedisError as again:
                if time.monotonic() - last >= REMIND_SECONDS:
                    last = time.monotonic()
                    log.warning("worker: Redis still unreachable after %.0f s (%s); trying "
                                "again every %.0f s (%s)", last - began, first_line(again),
                                POLL_SECONDS, label)
    finally:
        client.close()
    log.info("worker: Redis answers again (after %.0f s); %s back at work", time.monotonic()
             - began, label)


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
    label = "the loop on " + ", ".join(names)
    backoff = 1.0  # between starts of an rq loop that gives up while Redis answers
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
            wait_for_redis(url, exc, label)
            continue
        worker.meiqia_app, worker.meiqia_url, worker.meiqia_label = app, url, label
        database.close()
        lost: BaseException | None = None
        started = time.monotonic()
        try:
            worker.work(burst=burst, with_scheduler=True)
        except redis.RedisError as exc:
            lost = exc
        finally:
            client.close()
        # SIGTERM/SIGINT (rq's warm shutdown) stamps the request: stop for good.
        if burst or worker._stop_requested or worker._shutdown_requested_date is not None:
            leave_hub(app)
            return
        # rq's loop gave up: start again once Redis answers. Until then SIGTERM and
        # SIGINT stop the process at once (no job is running).
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
        try:
            client.ping()
        except redis.RedisError as exc:
            wait_for_redis(url, exc, label)
            continue
        finally:
            client.close()
        # Redis answers: rq's loop ended for another reason (it logged why, or
        # ``lost`` says it). Started again, with a growing wait if it keeps ending.
        if time.monotonic() - started > 60:
            backoff = 1.0
        log.error("worker: rq's loop ended%s; starting it again in %.0f s",
                  f" ({lost})" if lost is not None else "", backoff)
        time.sleep(backoff)
        backoff = min(backoff * 2, MAX_BACKOFF)
