"""The job queue: background work with progress, the same API in both modes.

``enqueue(func, *args, retry=…, job_id=…)`` takes a module-level function (or
its dotted path) and arguments that are ids and plain values only. The job's
state, progress and result live in the ``job_record`` table, so the UI reads
them the same way whether the job ran on the embedded worker thread or on an
rq worker process (DESIGN §1, STYLE rule 9).

Inside a job, ``report_progress(fraction, message)`` updates that row.

A running attempt writes a heartbeat every ``JOB_HEARTBEAT`` seconds. A worker
killed mid-job (SIGKILL, out of memory, its host gone) cannot record anything,
so ``reap()`` (called by the status APIs) treats a started job silent for three
heartbeats as abandoned: it is run again from the call stored with its record
while attempts remain, else marked failed with a message that says why.
"""

from __future__ import annotations

import contextvars
import datetime
import importlib
import json
import logging
import queue
import threading
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


def execute(job_id: str, path: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
    """Run one attempt of a job and record it; re-raise so the backend can retry.

    Both backends call this, so a job's life is recorded the same way.
    """
    with connection():
        JobRecord.update(
            status="started", started_at=utcnow(), heartbeat_at=utcnow(),
            attempts=JobRecord.attempts + 1,
        ).where(JobRecord.id == job_id).execute()
        token = _current_job.set(job_id)
        beat = _Heartbeat(job_id, heartbeat_interval())
        try:
            result = resolve(path)(*args, **kwargs)
        except Exception as exc:
            record = JobRecord.get_or_none(JobRecord.id == job_id)
            final = record is None or record.attempts >= record.max_attempts
            JobRecord.update(
                status="failed" if final else "queued",
                error=f"{type(exc).__name__}: {exc}",
                message="" if final else "retrying",
                finished_at=utcnow() if final else None,
            ).where(JobRecord.id == job_id).execute()
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


def reap(job_id: str | None = None) -> list[str]:
    """Retry or fail started jobs whose heartbeat stopped; return their ids.

    Called by the job and export status APIs (``job_id`` given: that job only),
    so an abandoned job is resolved by the next look at it, in any process. The
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
    for record in query:
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
        queue = current_app.extensions["meiqia.jobs"]
        queue.forget(record.id)
        if again:
            left = record.max_attempts - record.attempts - 1
            retry = Retry(max=left, intervals=tuple(call["intervals"])) if left > 0 else None
            queue._submit(record.id, call["path"], list(call["args"]),
                          dict(call["kwargs"]), retry)
        reaped.append(record.id)
    return reaped


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
        **kwargs: Any,
    ) -> str:
        """Queue ``func(*args, **kwargs)`` and return the job id.

        ``owner`` (an agent) may read the job's progress through the API.
        """
        path = func_path(func)
        job_id = job_id or uuid.uuid4().hex
        with connection():
            JobRecord.insert(
                id=job_id,
                name=description or path,
                max_attempts=1 + (retry.max if retry else 0),
                team_id=getattr(owner, "team_id", None),
                requested_by=getattr(owner, "id", None),
                call=_stored_call(path, list(args), kwargs, retry),
            ).on_conflict_ignore().execute()
        self._submit(job_id, path, list(args), kwargs, retry)
        return job_id

    def _submit(
        self,
        job_id: str,
        path: str,
        args: list[Any],
        kwargs: dict[str, Any],
        retry: Retry | None,
    ) -> None:
        raise NotImplementedError

    def health(self) -> dict[str, Any]:
        raise NotImplementedError

    def forget(self, job_id: str) -> None:
        """Drop what the backend still holds of an abandoned attempt (see ``reap``)."""

    def close(self) -> None:
        """Stop the backend's threads (embedded) or connections."""


class ThreadQueue(BaseQueue):
    """Embedded default: one worker thread in the web process; no server needed.

    With ``inline=True`` jobs run in the caller's thread (the CLI and tests that
    want the result at once). Retries wait on a timer, not in the worker thread.
    """

    kind = "thread"

    def __init__(self, app: Any, inline: bool = False) -> None:
        self.app = app
        self.inline = inline
        self._queue: queue.Queue[Any] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._timers: set[threading.Timer] = set()

    def _submit(self, job_id, path, args, kwargs, retry) -> None:  # noqa: ANN001
        item = (job_id, path, args, kwargs, retry, 1)
        if self.inline:
            self._run(item)
            return
        self._ensure_thread()
        self._queue.put(item)

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._work, name="meiqia-jobs", daemon=True
                )
                self._thread.start()

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            self._run(item)
            self._queue.task_done()

    def _run(self, item: tuple) -> None:
        job_id, path, args, kwargs, retry, attempt = item
        with self.app.app_context():
            try:
                execute(job_id, path, args, kwargs)
            except Exception:  # noqa: BLE001 - recorded by execute()
                if retry and attempt <= retry.max:
                    again = (job_id, path, args, kwargs, retry, attempt + 1)
                    if self.inline:
                        self._run(again)
                        return
                    timer = threading.Timer(retry.delay(attempt), self._requeue, [again])
                    timer.daemon = True
                    self._timers.add(timer)
                    timer.start()

    def _requeue(self, item: tuple) -> None:
        self._timers = {t for t in self._timers if t.is_alive()}
        self._ensure_thread()
        self._queue.put(item)

    def join(self, timeout: float = 30.0) -> bool:
        """Wait until queued jobs are done (tests)."""
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._queue.unfinished_tasks == 0:
                return True
            time.sleep(0.01)
        return False

    def health(self) -> dict[str, Any]:
        return {"ok": True, "kind": self.kind, "waiting": self._queue.qsize()}

    def close(self) -> None:
        for timer in list(self._timers):
            timer.cancel()
        if self._thread is not None and self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout=3)


class RqQueue(BaseQueue):
    """Production: rq on Redis; ``meiqia worker`` processes run the jobs."""

    kind = "rq"

    def __init__(self, client: Any, prefix: str) -> None:
        from rq import Queue

        self.client = client
        self.name = f"{prefix}-default"
        self.rq_queue = Queue(self.name, connection=client)

    def _submit(self, job_id, path, args, kwargs, retry) -> None:  # noqa: ANN001
        from rq import Retry as RqRetry

        self.rq_queue.enqueue_call(
            execute,
            args=(job_id, path, args, kwargs),
            job_id=job_id,
            timeout=3600,
            result_ttl=86400,
            failure_ttl=7 * 86400,
            retry=RqRetry(max=retry.max, interval=list(retry.intervals))
            if retry
            else None,
            description=path,
        )

    def forget(self, job_id: str) -> None:
        """Take the dead attempt out of rq's started registry.

        Otherwise rq's own abandoned-job cleanup (minutes later) would retry it a
        second time, or run a fresh attempt's failure path.
        """
        from rq.registry import StartedJobRegistry

        registry = StartedJobRegistry(queue=self.rq_queue)
        # Entries are "<job id>:<execution id>"; the execution's own key may have
        # expired already, so match on the job id rather than ask the job.
        dead = [entry for entry in self.client.zrange(registry.key, 0, -1)
                if registry.parse_job_id(entry) == job_id]
        if dead:
            self.client.zrem(registry.key, *dead)

    def health(self) -> dict[str, Any]:
        try:
            waiting = self.rq_queue.count
            from rq import Worker

            workers = len(Worker.all(queue=self.rq_queue))
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            return {"ok": False, "kind": self.kind, "error": str(exc)}
        return {"ok": True, "kind": self.kind, "waiting": waiting, "workers": workers}


def init_app(app: Any) -> BaseQueue:
    """Choose the job queue from ``REDIS_URL`` and keep it in ``app.extensions``."""
    if app.config["REDIS_URL"] and not app.config["JOBS_INLINE"]:
        from meiqia.hub import make_redis

        client = make_redis(app.config["REDIS_URL"], app.config["REDIS_TIMEOUT"])
        jobs: BaseQueue = RqQueue(client, app.config["REDIS_PREFIX"])
    else:
        jobs = ThreadQueue(app, inline=app.config["JOBS_INLINE"])
    app.extensions["meiqia.jobs"] = jobs
    return jobs
