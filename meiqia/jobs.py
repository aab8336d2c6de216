"""The job queue: background work with progress, the same API in both modes.

``enqueue(func, *args, retry=…, job_id=…)`` takes a module-level function (or
its dotted path) and arguments that are ids and plain values only. The job's
state, progress and result live in the ``job_record`` table, so the UI reads
them the same way whether the job ran on the embedded worker thread or on an
rq worker process (DESIGN §1, STYLE rule 9).

Inside a job, ``report_progress(fraction, message)`` updates that row.

A running attempt writes a heartbeat every ``JOB_HEARTBEAT`` seconds. A worker
killed mid-job (SIGKILL, out of memory, its host gone) cannot record anything,
so ``reap()`` treats a started job silent for three heartbeats as abandoned: it
is run again from the call stored with its record while attempts remain, else
marked failed with a message that says why.

The record is the source of truth, not the backend's memory. It stores the
call and when the next attempt is due (``run_at``); an attempt starts only by
claiming the record (queued → started), so a second copy of the same job (a
re-queue racing the original) does nothing. Hence: the embedded queue resumes
its recorded jobs and their retry times on start (``ThreadQueue.resume``), and
``recover()`` — run on a schedule by ``meiqia worker`` and the embedded queue —
reaps abandoned jobs and re-queues those Redis lost (``RqQueue.requeue_lost``).
A job may therefore run more than once (at least once, never lost); jobs with
an outside effect carry an idempotency key so the receiver can drop a repeat
(ticket sinks: docs/plugins.md).
"""

from __future__ import annotations

import contextvars
import datetime
import heapq
import importlib
import itertools
import json
import logging
import os
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from typing import Any

from flask import current_app
from flask import has_app_context

from meiqia.db import connection
from meiqia.models.base import utcnow
from meiqia.models.exports import JobRecord

log = logging.getLogger(__name__)

_current_job: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "meiqia_job", default=None
)


@dataclass(frozen=True)
class Retry:
    """Run a failing job up to ``max`` more times, waiting ``intervals`` seconds."""

    max: int = 3
    intervals: tuple[int, ...] = field(default=(5, 30, 120))

    def delay(self, attempt: int) -> int:
        if not self.intervals:
            return 0
        return self.intervals[min(attempt - 1, len(self.intervals) - 1)]


def func_path(func: Callable[..., Any] | str) -> str:
    """The dotted path of a module-level function (what the queue stores)."""
    if isinstance(func, str):
        return func
    if "<" in func.__qualname__ or "." in func.__qualname__:
        raise ValueError(f"{func!r} is not a module-level function")
    return f"{func.__module__}.{func.__qualname__}"


#: Jobs a customer is waiting for: his channel's replies (a bot answer, an agent's
#: reply), the answer to a question whose answering step failed (services/answering.py),
#: the e-mail of a ticket reply, a WeChat image he sent. Under rq they have
#: a queue of their own (``RqQueue``), run by worker loops of their own
#: (``meiqia worker``), so they never wait behind third-party sink deliveries or
#: long jobs (exports, reindexes, regrades), which share the default queue.
URGENT_JOBS = frozenset({
    "meiqia.channels.outbound.deliver_job",
    "meiqia.services.answering.answer",
    "meiqia.services.tickets.reply_email_job",
    "meiqia.channels.wechat.views.fetch_image_job",
})
#: The queue classes, in the order a worker that serves both takes them.
QUEUE_CLASSES = ("urgent", "default")


def queue_class(path: str) -> str:
    """Which queue a job of function ``path`` goes to: ``urgent`` or ``default``."""
    return "urgent" if path in URGENT_JOBS else "default"


def resolve(path: str) -> Callable[..., Any]:
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def report_progress(fraction: float, message: str = "") -> None:
    """Record the running job's progress (0..1); a no-op outside a job."""
    job_id = _current_job.get()
    if job_id is None:
        return
    fraction = max(0.0, min(1.0, float(fraction)))
    JobRecord.update(progress=fraction, message=message).where(
        JobRecord.id == job_id
    ).execute()


def current_job_id() -> str | None:
    return _current_job.get()


def last_attempt() -> bool:
    """Whether the running job's attempt is its last (no retry follows a failure):
    a job that waits for a far side can then say it gave up, instead of leaving
    the "on its way" it said before. True outside a job (nothing retries it)."""
    job_id = _current_job.get()
    if job_id is None:
        return True
    record = JobRecord.get_or_none(JobRecord.id == job_id)
    return record is None or record.attempts >= record.max_attempts


#: Heartbeats a started job may miss before it counts as abandoned.
STALE_BEATS = 3
ABANDONED = "the worker stopped while running this job (killed or crashed)"


def heartbeat_interval() -> float:
    if has_app_context():
        return float(current_app.config.get("JOB_HEARTBEAT", 10.0))
    return 10.0


class _Heartbeat:
    """A thread that stamps ``heartbeat_at`` while one attempt runs.

    A thread, not the job's own progress calls: a job may run a long query
    without reporting anything and is still alive.
    """

    def __init__(self, job_id: str, interval: float) -> None:
        self.job_id = job_id
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"meiqia-beat-{job_id[:8]}",
                                        daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                with connection():
                    JobRecord.update(heartbeat_at=utcnow()).where(
                        JobRecord.id == self.job_id, JobRecord.status == "started"
                    ).execute()
            except Exception as exc:  # noqa: BLE001 - a missed beat is not fatal
                log.warning("job %s: heartbeat failed: %s", self.job_id, exc)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval + 5)


#: How long past a sweep's window its claim of a lost job holds (``requeue_lost``).
REQUEUE_CLAIM_SECONDS = 30


class RetryLater(Exception):
    """Raised by a job whose attempt failed for a reason it expects (the far
    side did not answer): retried like any failure, logged as one warning line
    instead of an error with a traceback."""


def execute(job_id: str, path: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
    """Run one attempt of a job and record it; re-raise so the backend can retry.

    Both backends call this, so a job's life is recorded the same way. The
    attempt claims the record (queued → started): a copy of a job that another
    copy already ran or is running returns None without running it.
    """
    with connection():
        claimed = JobRecord.update(
            status="started", started_at=utcnow(), heartbeat_at=utcnow(), run_at=None,
            attempts=JobRecord.attempts + 1,
        ).where(JobRecord.id == job_id, JobRecord.status == "queued").execute()
        if not claimed:
            record = JobRecord.get_or_none(JobRecord.id == job_id)
            if record is not None:
                log.info("job %s (%s) is %s already: this copy does not run it",
                         job_id, path, record.status)
                return None
        token = _current_job.set(job_id)
        beat = _Heartbeat(job_id, heartbeat_interval())
        try:
            result = resolve(path)(*args, **kwargs)
        except Exception as exc:
            final = _record_failure(job_id, exc)
            if isinstance(exc, RetryLater):
                # Expected (a far side down): one line, no traceback.
                log.warning("job %s (%s) %s: %s", job_id, path,
                            "failed for good" if final else "will be retried", exc)
            else:
                log.error("job %s (%s) failed:\n%s", job_id, path, traceback.format_exc())
            raise
        finally:
            beat.stop()
            _current_job.reset(token)
        JobRecord.update(
            status="finished",
            progress=1.0,
            result=result if _jsonable(result) else None,
            finished_at=utcnow(),
            error="",
        ).where(JobRecord.id == job_id).execute()
        return result


#: Tries to record a failed attempt, a new connection each, before leaving it to ``reap``.
RECORD_TRIES = 3


def failure_reason(exc: BaseException) -> str:
    """What a failed attempt's record says. A database error is named as one: the
    driver's text alone ("terminating connection due to administrator command",
    "server closed the connection unexpectedly") does not say what broke."""
    if is_database_error(exc):
        detail = next((line.strip() for line in str(exc).splitlines() if line.strip()),
                      type(exc).__name__)
        return f"the database failed during the job: {detail}"[:2000]
    return f"{type(exc).__name__}: {exc}"[:2000]


def is_database_error(exc: BaseException) -> bool:
    from meiqia.db import is_database_error as database_failed

    return database_failed(exc)


def fresh_connection() -> None:
    """Give this thread a working database connection again.

    A job holds one connection for its whole run; when the database cut it (a
    terminated backend, a restart, a failover) every later statement on it fails,
    so the job could not record its own failure and sat "started" until ``reap``
    took it for a dead worker. The broken connection is dropped (a rolled-back
    or dead one is never handed out again: the pool pings at check-out)."""
    from meiqia.db import database

    try:
        database.close()
    except Exception:  # noqa: BLE001 - already broken: forget it
        database._state.reset()
    database.connect(reuse_if_open=True)


def _record_failure(job_id: str, exc: BaseException) -> bool:
    """Record a failed attempt (queued again while attempts remain, else failed);
    return whether it was the last. A database error may have broken this thread's
    connection: each try after the first takes a new one. If the database stays
    away, the record stays "started" and ``reap`` retries it once its heartbeat is
    stale (the heartbeat stopped with this attempt)."""
    for tries in range(1, RECORD_TRIES + 1):
        try:
            if tries > 1 or is_database_error(exc):
                fresh_connection()
            record = JobRecord.get_or_none(JobRecord.id == job_id)
            final = record is None or record.attempts >= record.max_attempts
            JobRecord.update(
                status="failed" if final else "queued",
                error=failure_reason(exc),
                message="" if final else "retrying",
                finished_at=utcnow() if final else None,
                run_at=None if final else utcnow() + datetime.timedelta(
                    seconds=_retry_delay(record)),
            ).where(JobRecord.id == job_id, JobRecord.status == "started").execute()
            return final
        except Exception as again:  # noqa: BLE001 - the database is still away
            log.warning("job %s: could not record its failure (%s)%s", job_id, again,
                        "; trying again" if tries < RECORD_TRIES else
                        "; the recovery sweep retries it")
            if tries < RECORD_TRIES:
                time.sleep(tries)
    return False


def _retry_delay(record: JobRecord) -> int:
    """Seconds until the retry after the record's last attempt (its stored intervals)."""
    intervals = tuple((record.call or {}).get("intervals") or ())
    return Retry(intervals=intervals).delay(record.attempts)


def _jsonable(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool | list | dict)


def _stored_call(path: str, args: list[Any], kwargs: dict[str, Any],
                 retry: Retry | None) -> dict[str, Any] | None:
    """The call as JSON, so a reaped job can run again; None if it is not JSON."""
    call = {"path": path, "args": args, "kwargs": kwargs,
            "intervals": list(retry.intervals) if retry else []}
    try:
        json.dumps(call)
    except (TypeError, ValueError):
        return None
    return call


def reap(job_id: str | None = None, queue: BaseQueue | None = None) -> list[str]:
    """Retry or fail started jobs whose heartbeat stopped; return their ids.

    Called on a schedule by ``recover()`` and by the job and export status APIs
    (``job_id`` given: that job only), so an abandoned job is resolved by the
    next sweep or the next look at it, in any process. The
    update is conditional on the heartbeat seen, so two processes reaping at once
    act once, and a job that beat again in between is left alone.
    """
    stale = datetime.timedelta(seconds=heartbeat_interval() * STALE_BEATS)
    cutoff = utcnow() - stale
    query = JobRecord.select().where(
        JobRecord.status == "started",
        (JobRecord.heartbeat_at < cutoff)
        | (JobRecord.heartbeat_at.is_null() & (JobRecord.started_at < cutoff)),
    )
    if job_id is not None:
        query = query.where(JobRecord.id == job_id)
    reaped = []
    queue = queue or current_app.extensions["meiqia.jobs"]
    for record in list(query):
        call = record.call
        again = bool(call) and record.attempts < record.max_attempts
        seen = (JobRecord.heartbeat_at.is_null() if record.heartbeat_at is None
                else JobRecord.heartbeat_at == record.heartbeat_at)
        changed = JobRecord.update(
            status="queued" if again else "failed",
            error=ABANDONED,
            message="retrying" if again else "",
            heartbeat_at=None,
            finished_at=None if again else utcnow(),
        ).where(JobRecord.id == record.id, JobRecord.status == "started", seen).execute()
        if not changed:
            continue
        log.error("job %s (%s): %s; %s", record.id, record.name, ABANDONED,
                  "running it again" if again else "marked failed")
        queue.forget(record.id)
        if again:
            queue._submit(record.id, call["path"], list(call["args"]),
                          dict(call["kwargs"]), _retry_left(record, 1))
        reaped.append(record.id)
    return reaped


def _retry_left(record: JobRecord, starting: int = 0) -> Retry | None:
    """The retries a recorded job has left after ``starting`` more attempts, with
    the waits that follow them (so a backend's own retry clock agrees with the
    ``run_at`` that ``execute`` records)."""
    left = record.max_attempts - record.attempts - starting
    intervals = tuple((record.call or {}).get("intervals") or ())
    done = max(0, record.attempts + starting - 1)
    if intervals:
        intervals = intervals[min(done, len(intervals) - 1):]
    return Retry(max=left, intervals=intervals) if left > 0 else None


def recover(queue: BaseQueue | None = None) -> int:
    """One recovery sweep: reap abandoned jobs, re-queue jobs the backend lost.

    Run every ``JOB_RECOVER_SECONDS`` by each ``meiqia worker`` (rq) and by the
    embedded queue; safe in several processes at once (every step is a
    conditional update of the record). Returns how many jobs it acted on.
    """
    queue = queue or current_app.extensions["meiqia.jobs"]
    return len(reap(queue=queue)) + queue.requeue_lost()


class BaseQueue:
    kind = "base"

    def enqueue(
        self,
        func: Callable[..., Any] | str,
        *args: Any,
        retry: Retry | None = None,
        job_id: str | None = None,
        description: str = "",
        owner: Any = None,
        keep_if_refused: bool = False,
        delay: float = 0.0,
        **kwargs: Any,
    ) -> str:
        """Queue ``func(*args, **kwargs)`` and return the job id.

        ``owner`` (an agent) may read the job's progress through the API. A
        ``job_id`` already recorded is not recorded again, and a job that has
        run (or is running) does not run again for it: a fixed id is an
        idempotency key. Nor is it submitted again while it waits (queued, or
        scheduled for a retry) or runs (``_leave_alone``): a copy queued again
        would run at once, ahead of its retry's due time. If the backend refuses the job (Redis down), the
        error is raised and the record this call made is taken back: the
        caller answers 503 and keeps nothing, so no job that never ran counts as
        failed (``meiqia_jobs``); a record made before (a fixed id) is left as
        it was.

        With ``keep_if_refused`` (work nobody waits for at the screen: a
        delivery, a reply e-mail, a fetch) a refused job stays ``queued`` in
        its record instead, and the id is returned: the workers' recovery sweep
        (``requeue_lost``) queues it once Redis answers again, as it does for a
        job Redis lost. Not for a job a person asked for and is told about (an
        export answers 503, and his retry would make a second one).

        ``delay``: the first attempt runs that many seconds from now, not at once
        (its due time recorded as ``run_at``, as a retry's): a channel delivery
        whose channel is busy with another one waits its turn this way, without
        spending an attempt.
        """
        path = func_path(func)
        job_id = job_id or uuid.uuid4().hex
        with connection():
            recorded = JobRecord.insert(
                id=job_id,
                name=description or path,
                max_attempts=1 + (retry.max if retry else 0),
                team_id=getattr(owner, "team_id", None),
                requested_by=getattr(owner, "id", None),
                call=_stored_call(path, list(args), kwargs, retry),
                run_at=utcnow() + datetime.timedelta(seconds=delay) if delay > 0 else None,
            ).on_conflict_ignore().as_rowcount().execute()
        try:
            if not recorded and self._leave_alone(job_id):
                return job_id
            self._submit(job_id, path, list(args), kwargs, retry, delay=delay)
        except Exception as exc:
            if keep_if_refused:
                log.warning("job %s (%s): not queued (%s); the recovery sweep queues it "
                            "when the queue answers again", job_id, description or path,
                            type(exc).__name__)
                return job_id
            # The caller is told (Redis down: 503) and keeps nothing: neither does
            # the record, or a job that never ran would count as failed.
            if recorded:
                with connection():
                    JobRecord.delete().where(JobRecord.id == job_id,
                                             JobRecord.status == "queued").execute()
            raise
        return job_id

    def _leave_alone(self, job_id: str) -> bool:
        """Whether ``enqueue`` of an id already recorded must not submit it again.

        A job that ran, runs or failed for good needs nothing. A queued one whose
        retry is not due yet is held by the backend's schedule (rq's scheduled
        registry, the embedded queue's heap), or, if the backend lost it, queued
        again when due by the recovery sweep (``requeue_lost``) or ``resume``: a
        copy submitted now would run at once, ahead of its due time (WeChat's
        three tries of one image callback ran its fetch's retries 6 s apart where
        the schedule said 10 s, then 60 s). A queued one that is due is
        submitted again unless the backend holds it (``holds``): a job whose
        submission was refused (``keep_if_refused``) or lost goes now.
        """
        with connection():
            record = JobRecord.get_or_none(JobRecord.id == job_id)
        if record is None:
            return False
        if record.status != "queued":
            return True
        if record.run_at is not None and record.run_at > utcnow():
            return True
        return self.holds(job_id)

    def holds(self, job_id: str) -> bool:
        """Whether the backend holds the job: waiting, scheduled or running."""
        return False

    def _submit(
        self,
        job_id: str,
        path: str,
        args: list[Any],
        kwargs: dict[str, Any],
        retry: Retry | None,
        delay: float = 0.0,
    ) -> None:
        raise NotImplementedError

    def health(self) -> dict[str, Any]:
        raise NotImplementedError

    def forget(self, job_id: str) -> None:
        """Drop what the backend still holds of an abandoned attempt (see ``reap``)."""

    def start(self, serve: bool = True) -> None:
        """Start the backend's threads in this process (embedded only)."""

    def requeue_lost(self) -> int:
        """Queue again recorded jobs the backend lost; how many (see ``recover``)."""
        return 0

    def close(self) -> None:
        """Stop the backend's threads (embedded) or connections."""


class ThreadQueue(BaseQueue):
    """Embedded default: ``JOB_THREADS`` worker threads in the web process.

    With ``inline=True`` jobs run in the caller's thread (the CLI and tests that
    want the result at once). A retry waits in the queue's schedule (a heap by
    due time), and its due time is also in the job's record: on start the queue
    resumes every recorded queued job at its recorded time (``resume``), so a
    restart — even ``kill -9`` — loses none. Several threads, so one slow job
    holds one of them, not all the others.
    """

    kind = "thread"

    def __init__(self, app: Any, inline: bool = False) -> None:
        self.app = app
        self.inline = inline
        self.size = max(1, int(app.config.get("JOB_THREADS", 4)))
        self.recover_every = float(app.config.get("JOB_RECOVER_SECONDS", 15.0))
        self._cv = threading.Condition()
        self._heap: list[tuple[float, int, tuple]] = []
        self._seq = itertools.count()
        self._running = 0
        #: Job ids this process holds (waiting in the heap or running): resume
        #: leaves them to their copy here.
        self._held: dict[str, int] = {}
        self._threads: list[threading.Thread] = []
        self._pid: int | None = None
        self._serving_pid: int | None = None
        self._closed = False

    def holds(self, job_id: str) -> bool:
        with self._cv:
            return job_id in self._held

    def _submit(self, job_id, path, args, kwargs, retry, delay=0.0) -> None:  # noqa: ANN001
        item = (job_id, path, args, kwargs, retry, 1)
        if self.inline:
            self._run(item)
            return
        self._push(item, delay)

    def _push(self, item: tuple, delay: float) -> None:
        self.start(serve=False)
        with self._cv:
            self._held[item[0]] = self._held.get(item[0], 0) + 1
            heapq.heappush(self._heap, (time.monotonic() + max(0.0, delay),
                                        next(self._seq), item))
            self._cv.notify()

    def start(self, serve: bool = True) -> None:
        """Start this process's worker threads (once per process: a forked child
        starts its own). ``serve``: this process is the server, so it also resumes
        the recorded jobs and reaps abandoned ones (a CLI command that queues a job
        starts the workers only: it must not take over the server's jobs)."""
        if self.inline or self._closed:
            return
        pid = os.getpid()
        with self._cv:
            threads = []
            if self._pid != pid:
                self._pid = pid
                self._held.clear()
                self._heap.clear()  # a forked child: the parent's copies are the parent's
                self._threads = [threading.Thread(target=self._work, daemon=True,
                                                  name=f"meiqia-jobs-{n}")
                                 for n in range(self.size)]
                threads += self._threads
            if serve and self._serving_pid != pid:
                self._serving_pid = pid
                sweep = threading.Thread(target=self._sweep, name="meiqia-jobs-sweep",
                                         daemon=True)
                self._threads.append(sweep)
                threads.append(sweep)
        for thread in threads:
            thread.start()

    def _sweep(self) -> None:
        """Resume the recorded jobs, then reap abandoned ones every few seconds."""
        from meiqia.db import Outage

        resumed = False
        outage = Outage(log, "job queue: the recovery sweep")
        while not self._closed:
            try:
                with self.app.app_context(), connection():
                    if not resumed:
                        self.resume()
                        resumed = True
                    recover(self)
                outage.recovered()
            except Exception as exc:  # noqa: BLE001 - a database hiccup (or not migrated yet)
                if outage.failed(exc) is None:
                    log.exception("job queue: the recovery sweep failed; trying again")
            with self._cv:
                self._cv.wait(outage.wait or (self.recover_every if resumed else 1.0))

    def resume(self) -> int:
        """Schedule every recorded queued job at its recorded time; return how many.

        A job whose call could not be stored (not JSON) cannot run again: it is
        marked failed with the reason.
        """
        now = utcnow()
        count = 0
        records = list(JobRecord.select().where(JobRecord.status == "queued"))
        with self._cv:
            held = set(self._held)
        for record in records:
            if record.id in held:
                continue
            call = record.call
            if not call:
                JobRecord.update(status="failed", finished_at=now,
                                 error="the process stopped before this job ran, and its "
                                       "call was not recorded").where(
                    JobRecord.id == record.id, JobRecord.status == "queued").execute()
                continue
            delay = (record.run_at - now).total_seconds() if record.run_at else 0.0
            item = (record.id, call["path"], list(call["args"]), dict(call["kwargs"]),
                    _retry_left(record, 1), 1)
            self._push(item, delay)
            count += 1
        if count:
            log.info("job queue: resumed %d recorded job(s)", count)
        return count

    def _work(self) -> None:
        while True:
            with self._cv:
                while True:
                    if self._closed:
                        return
                    now = time.monotonic()
                    if self._heap and self._heap[0][0] <= now:
                        item = heapq.heappop(self._heap)[2]
                        self._running += 1
                        break
                    self._cv.wait(self._heap[0][0] - now if self._heap else None)
            try:
                self._run(item)
            finally:
                with self._cv:
                    self._running -= 1
                    left = self._held.get(item[0], 1) - 1
                    if left > 0:
                        self._held[item[0]] = left
                    else:
                        self._held.pop(item[0], None)
                    self._cv.notify_all()

    def _run(self, item: tuple) -> None:
        job_id, path, args, kwargs, retry, attempt = item
        with self.app.app_context():
            try:
                execute(job_id, path, args, kwargs)
            except Exception:  # noqa: BLE001 - recorded by execute()
                if self.inline:
                    if retry and attempt <= retry.max:
                        self._run((job_id, path, args, kwargs, retry, attempt + 1))
                    return
                # The retry is due when the record says (execute() wrote it).
                with connection():
                    record = JobRecord.get_or_none(JobRecord.id == job_id)
                if record is not None and record.status == "queued":
                    delay = ((record.run_at - utcnow()).total_seconds()
                             if record.run_at else 0.0)
                    self._push((job_id, path, args, kwargs, retry, attempt + 1), delay)

    def _busy(self) -> bool:
        now = time.monotonic()
        return self._running > 0 or any(due <= now for due, _, _ in self._heap)

    def join(self, timeout: float = 30.0) -> bool:
        """Wait until no job is running or due now (tests); later retries don't count."""
        deadline = time.monotonic() + timeout
        with self._cv:
            while self._busy():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cv.wait(min(left, 0.05))
        return True

    def health(self) -> dict[str, Any]:
        with self._cv:
            waiting = len(self._heap)
        alive = sum(t.is_alive() for t in self._threads if t.name != "meiqia-jobs-sweep")
        return {"ok": True, "kind": self.kind, "waiting": waiting, "running": self._running,
                "threads": alive if self._pid == os.getpid() else 0}

    def close(self) -> None:
        with self._cv:
            self._closed = True
            self._cv.notify_all()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=3)


class RqQueue(BaseQueue):
    """Production: rq on Redis; ``meiqia worker`` processes run the jobs.

    Two rq queues, one per queue class (``queue_class``): ``<prefix>-urgent`` for
    the work a customer waits for, ``<prefix>-default`` for the rest. Each
    ``meiqia worker`` runs worker loops on each in processes of their own, so a
    sink delivery that hangs (or an hour-long export) holds a default loop, never
    the loops that send the customers' replies.
    """

    kind = "rq"

    def __init__(self, client: Any, prefix: str, recover_every: float = 15.0) -> None:
        from rq import Queue

        self.client = client
        #: What ``meiqia worker`` passes to rq: it beats at least this often.
        self.worker_ttl = worker_ttl(recover_every)
        self.name = f"{prefix}-default"
        self.rq_queue = Queue(self.name, connection=client)
        self.urgent_name = f"{prefix}-urgent"
        self.urgent_queue = Queue(self.urgent_name, connection=client)
        #: The rq queue of each queue class.
        self.queues = {"urgent": self.urgent_queue, "default": self.rq_queue}
        #: Every queue's name, urgent first (a burst worker that serves both).
        self.names = [self.queues[kind].name for kind in QUEUE_CLASSES]

    def holds(self, job_id: str) -> bool:
        from rq.job import Job
        from rq.job import JobStatus

        job = Job.fetch_many([job_id], connection=self.client)[0]
        return job is not None and job.get_status(refresh=False) in {
            JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED, JobStatus.STARTED}

    def _submit(self, job_id, path, args, kwargs, retry, delay=0.0) -> None:  # noqa: ANN001
        from rq import Retry as RqRetry

        rq_queue = self.queues[queue_class(path)]
        options = {
            "args": (job_id, path, args, kwargs), "job_id": job_id, "timeout": 3600,
            "result_ttl": 86400, "failure_ttl": 7 * 86400, "description": path,
            "retry": RqRetry(max=retry.max, interval=list(retry.intervals)) if retry else None,
        }
        if delay > 0:  # rq's scheduler (every ``meiqia worker`` runs it) queues it then
            due = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=delay)
            rq_queue.schedule_job(rq_queue.create_job(execute, **options), due)
            return
        rq_queue.enqueue_call(execute, **options)

    def forget(self, job_id: str) -> None:
        """Take the dead attempt out of rq's started registry.

        Otherwise rq's own abandoned-job cleanup (minutes later) would retry it a
        second time, or run a fresh attempt's failure path.
        """
        from rq.registry import StartedJobRegistry

        for rq_queue in self.queues.values():
            registry = StartedJobRegistry(queue=rq_queue)
            # Entries are "<job id>:<execution id>"; the execution's own key may have
            # expired already, so match on the job id rather than ask the job.
            dead = [entry for entry in self.client.zrange(registry.key, 0, -1)
                    if registry.parse_job_id(entry) == job_id]
            if dead:
                self.client.zrem(registry.key, *dead)

    def requeue_lost(self, grace: float | None = None, limit: int = 500) -> int:
        """Queue again the recorded queued jobs that Redis no longer holds.

        A Redis restart without persistence (or a failover) drops the queue, the
        scheduled retries and the job hashes; the records remain. A record queued
        and due for longer than ``grace`` seconds whose rq job is gone (or ended)
        is submitted again. The record is claimed first (``run_at`` compared and
        set), so two sweeping workers submit it once; a job that runs twice all
        the same is stopped by ``execute``'s claim.
        """
        if grace is None:
            grace = float(current_app.config.get("JOB_RECOVER_SECONDS", 15.0))
        now = utcnow()
        cutoff = now - datetime.timedelta(seconds=grace)
        records = list(JobRecord.select().where(
            JobRecord.status == "queued", JobRecord.call.is_null(False),
            (JobRecord.run_at < cutoff)
            | (JobRecord.run_at.is_null() & (JobRecord.created_at < cutoff)),
        ).order_by(JobRecord.created_at).limit(limit))
        if not records:
            return 0
        requeued = 0
        for record in records:
            if self.holds(record.id):
                continue
            seen = (JobRecord.run_at.is_null() if record.run_at is None
                    else JobRecord.run_at == record.run_at)
            # The claim moves the record's due time past this sweep's window: a
            # sweep that reads it between this claim and the submit below (when Redis
            # does not hold the job yet) finds it not due, instead of claiming it
            # again (two sweeps with a grace of 0 queued one job twice).
            claimed = JobRecord.update(
                run_at=now + datetime.timedelta(seconds=max(grace, 1.0) + REQUEUE_CLAIM_SECONDS),
            ).where(JobRecord.id == record.id, JobRecord.status == "queued", seen).execute()
            if not claimed:
                continue
            call = record.call
            log.warning("job %s (%s): Redis lost it; queued again", record.id, record.name)
            self._submit(record.id, call["path"], list(call["args"]), dict(call["kwargs"]),
                         _retry_left(record, 1))
            requeued += 1
        return requeued

    def live_workers(self, kind: str = "default") -> int:
        """rq workers of one queue class with a recent heartbeat (a killed worker's
        registration outlives it by up to its TTL: its heartbeat does not)."""
        from rq import Worker

        now = datetime.datetime.now(datetime.UTC)
        live = 0
        for worker in Worker.all(queue=self.queues[kind]):
            beat = worker.last_heartbeat
            if beat is None:
                continue
            if beat.tzinfo is None:
                beat = beat.replace(tzinfo=datetime.UTC)
            if (now - beat).total_seconds() <= self.worker_ttl + 5:
                live += 1
        return live

    def health(self) -> dict[str, Any]:
        try:
            waiting = self.rq_queue.count
            urgent_waiting = self.urgent_queue.count
            workers = self.live_workers()
            urgent_workers = self.live_workers("urgent")
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            return {"ok": False, "kind": self.kind, "error": str(exc)}
        health = {"ok": True, "kind": self.kind, "waiting": waiting + urgent_waiting,
                  "workers": workers, "urgent_workers": urgent_workers}
        if not workers:
            health["degraded"] = ("no live `meiqia worker`: jobs are recorded and queued "
                                  "but nothing runs them")
        elif not urgent_workers:
            health["degraded"] = ("no live worker on the urgent queue: customers' channel "
                                  "replies and reply e-mails are recorded and queued but "
                                  "nothing sends them")
        return health


def worker_ttl(recover_every: float) -> int:
    """The rq worker TTL for a recovery sweep every ``recover_every`` seconds.

    rq's idle loop blocks ``ttl - 15`` s between heartbeats and maintenance (our
    sweep runs in its maintenance), and a busy worker beats every
    ``job_monitoring_interval``, which ``meiqia worker`` sets to the TTL too.
    """
    return max(16, int(recover_every) + 15)


def init_app(app: Any) -> BaseQueue:
    """Choose the job queue from ``REDIS_URL`` and keep it in ``app.extensions``."""
    if app.config["REDIS_URL"] and not app.config["JOBS_INLINE"]:
        from meiqia.hub import make_redis

        client = make_redis(app.config["REDIS_URL"], app.config["REDIS_TIMEOUT"])
        jobs: BaseQueue = RqQueue(client, app.config["REDIS_PREFIX"],
                                  app.config["JOB_RECOVER_SECONDS"])
    else:
        jobs = ThreadQueue(app, inline=app.config["JOBS_INLINE"])
        # The threads start with the first request of each process (a forked child
        # starts its own); `meiqia run` and the WSGI module start them at once, so a
        # restarted server resumes its recorded jobs without waiting for a visitor.
        # CLI commands never start them: they must not run the server's jobs.
        app.before_request(jobs.start)
    app.extensions["meiqia.jobs"] = jobs
    return jobs
