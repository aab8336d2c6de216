"""An acknowledged visitor message is answered, also when its answering step
failed or its process died (docs/protocol.md, "Guarantees" 1).

A visitor's message is stored and acknowledged first; its answering step (the
bot's answer, routing, the cannot-read line: ``conversations._answering_step``)
runs after. Two things could lose that step, and the client, holding an ``ack``,
never sends the message again:

- the step fails (the database locked or away for a moment, or a bug):
  ``run_step`` hands the message to this process's ``Retrier``, which runs
  ``answer`` again in the background (the socket may be gone) with a bounded
  back-off (``RETRY_WAITS``, for ``RETRY_WITHIN`` seconds): through the job
  queue where it is a real one (rq, or the embedded queue's threads: its record
  is then the retry's), else in its own thread;
- the process dies between the ``ack`` and the answer (killed -9, out of
  memory): each web process's sweeper (``sweep``, every ``ANSWER_SWEEP_SECONDS``)
  finds bot conversations whose last public message is a visitor's text message
  older than ``ANSWER_SWEEP_AFTER`` seconds (and younger than
  ``ANSWER_SWEEP_WITHIN``) and queues ``answer`` for it as the job
  ``answer-<message id>``: that record makes it one attempt per message, so a
  message whose step rightly posts nothing is not tried again and again.

``answer`` is idempotent: it answers only while the conversation is with the bot
and the message is still its last public one (``conversations._lost_answer``'s
conditions), and the bot's answer is stored under a key made from the message
(``conversations._answer_key``), so two runs store one answer.
"""

from __future__ import annotations

import datetime
import heapq
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import peewee
from flask import Flask
from flask import current_app

from meiqia.db import is_database_error

log = logging.getLogger(__name__)

#: Waits (seconds) between the background retries of a failed step; the last repeats.
RETRY_WAITS = (0.5, 1.0, 2.0, 4.0, 5.0)
#: The job queue's own retries of an ``answer`` job (a database that fails again):
#: about nine minutes in all, as long as the process's own retries
#: (ANSWER_RETRY_WITHIN). Four retries in 52 s left a longer outage's answer failed
#: for good, and the sweep skips a message whose job is recorded.
JOB_WAITS = (2, 5, 10, 20, 30, 60, 120, 300)


def job_id(message_id: int) -> str:
    """The job that answers a message: one per message (its record bounds the sweep)."""
    return f"answer-{message_id}"


def run_step(step: Callable[[], Any], conversation_id: int, message_id: int) -> None:
    """Run a message's answering step; when it fails, retry it in the background
    (never raised: the sender has his ``ack`` or his 201 already)."""
    try:
        step()
    except Exception as exc:  # noqa: BLE001 - retried, not lost
        if is_database_error(exc):
            log.warning("answering message %s: the database failed (%s); retrying in the "
                        "background", message_id, type(exc).__name__)
        else:
            log.exception("answering message %s failed; retrying in the background", message_id)
        retry_later(current_app._get_current_object(), conversation_id, message_id)


def answer(conversation_id: int, message_id: int, swept: bool = False) -> str:
    """Answer a stored visitor message if it still needs it; the job of the retries
    and the sweep. Raises when the step fails (the caller tries again)."""
    from meiqia.models import Conversation
    from meiqia.models import Message
    from meiqia.services import conversations
    from meiqia.services import routing

    message = Message.get_or_none(Message.id == message_id)
    conversation = Conversation.get_or_none(Conversation.id == conversation_id)
    if message is None or conversation is None or message.conversation_id != conversation_id:
        return "gone"
    step = conversations._lost_answer(conversation, message, message.kind)
    if step is None:
        return "answered"  # or with a person now, or nothing to answer
    if swept and getattr(step, "func", None) is conversations._ask_for_human:
        # A request for a person whose step may have run and been throttled (the
        # offer at most once per OFFER_AGAIN_SECONDS): then it rightly posted
        # nothing, and is not made up for now.
        current = Conversation.get_by_id(conversation_id)
        if current.offered_at is not None and current.offered_at >= message.created_at - \
                datetime.timedelta(seconds=routing.OFFER_AGAIN_SECONDS):
            return "throttled"
    step()
    return "ran"


class Retrier:
    """This process's background retries of failed answering steps: one thread
    (a greenlet under gevent) and a heap of what is due when."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.cv = threading.Condition()
        self.heap: list[tuple[float, int, int, int, int, float]] = []
        self.seq = itertools.count()
        self.pid: int | None = None
        self.waiting: set[int] = set()
        self.closed = False

    def stop(self) -> None:
        with self.cv:
            self.closed = True
            self.cv.notify_all()

    def add(self, conversation_id: int, message_id: int) -> None:
        with self.cv:
            if self.closed:
                return
            if self.pid != os.getpid():  # a forked child: its own thread
                self.pid = os.getpid()
                self.heap.clear()
                self.waiting.clear()
                threading.Thread(target=self._run, name="meiqia-answer-retries",
                                 daemon=True).start()
            if message_id in self.waiting:
                return
            self.waiting.add(message_id)
            now = time.monotonic()
            heapq.heappush(self.heap, (now + RETRY_WAITS[0], next(self.seq), conversation_id,
                                       message_id, 1, now))
            self.cv.notify()

    def _run(self) -> None:
        while True:
            with self.cv:
                while not self.closed and (not self.heap or self.heap[0][0] > time.monotonic()):
                    self.cv.wait(self.heap[0][0] - time.monotonic() if self.heap else None)
                if self.closed:
                    return
                _, _, conversation_id, message_id, attempt, since = heapq.heappop(self.heap)
            done = self._try(conversation_id, message_id)
            with self.cv:
                within = self.app.config.get("ANSWER_RETRY_WITHIN", 600)
                if done or time.monotonic() - since > within:
                    if not done:
                        log.error("answering message %s: gave up after %.0f s of failures",
                                  message_id, within)
                    self.waiting.discard(message_id)
                    continue
                wait = RETRY_WAITS[min(attempt, len(RETRY_WAITS) - 1)]
                heapq.heappush(self.heap, (time.monotonic() + wait, next(self.seq),
                                           conversation_id, message_id, attempt + 1, since))

    def _try(self, conversation_id: int, message_id: int) -> bool:
        """One retry; True when it needs no other (answered, or the job queue has it)."""
        from meiqia import jobs
        from meiqia.db import connection

        try:
            with self.app.app_context(), connection():
                queue = self.app.extensions["meiqia.jobs"]
                if getattr(queue, "inline", False):
                    answer(conversation_id, message_id)
                else:
                    # Recorded, it is the job queue's (and its own retries'): in
                    # production an rq worker answers; a record made before (a run
                    # that failed for good) is left alone.
                    queue.enqueue(answer, conversation_id, message_id,
                                 job_id=job_id(message_id),
                                 retry=jobs.Retry(max=len(JOB_WAITS), intervals=JOB_WAITS),
                                 description=f"answer message {message_id}",
                                 keep_if_refused=True)
            log.info("answering message %s: done after a retry", message_id)
            return True
        except Exception as exc:  # noqa: BLE001 - tried again after a wait
            if is_database_error(exc):
                log.warning("answering message %s: the database failed again (%s: %s)",
                            message_id, type(exc).__name__,
                            (str(exc).strip().splitlines() or [""])[0][:200])
            else:
                log.exception("answering message %s failed again", message_id)
            return False


_RETRIERS: dict[int, Retrier] = {}
_RETRIERS_LOCK = threading.Lock()


def retry_later(app: Flask, conversation_id: int, message_id: int) -> None:
    with _RETRIERS_LOCK:
        retrier = app.extensions.get("meiqia.answer_retrier")
        if retrier is None:
            retrier = app.extensions["meiqia.answer_retrier"] = Retrier(app)
    retrier.add(conversation_id, message_id)


#: Messages one sweep queues at most (the next sweep goes on).
BATCH = 200


def unanswered(now: datetime.datetime | None = None) -> list[tuple[int, int]]:
    """(conversation id, message id) of bot conversations whose last public message
    is a visitor's text message between ANSWER_SWEEP_AFTER and ANSWER_SWEEP_WITHIN
    seconds old, and that no ``answer`` job was recorded for."""
    from meiqia.models import Conversation
    from meiqia.models import Message
    from meiqia.models.base import utcnow
    from meiqia.models.exports import JobRecord

    now = now or utcnow()
    config = current_app.config
    newest = now - datetime.timedelta(seconds=config["ANSWER_SWEEP_AFTER"])
    oldest = now - datetime.timedelta(seconds=config["ANSWER_SWEEP_WITHIN"])
    later = Message.alias()
    after_it = later.select(later.id).where(
        later.conversation == Message.conversation, later.visibility == "public",
        later.id > Message.id)
    recorded = JobRecord.select(JobRecord.id).where(
        JobRecord.id == peewee.Value("answer-").concat(Message.id.cast("TEXT")))
    rows = (Message.select(Message.conversation, Message.id)
            .join(Conversation, on=(Conversation.id == Message.conversation))
            .where(Conversation.status == "bot", Conversation.last_message_at >= oldest,
                   Message.sender_kind == "visitor", Message.kind == "text",
                   Message.visibility == "public",
                   Message.created_at >= oldest, Message.created_at <= newest,
                   ~peewee.fn.EXISTS(after_it), ~peewee.fn.EXISTS(recorded))
            .order_by(Message.id).limit(BATCH).tuples())
    return list(rows)


def sweep() -> int:
    """Queue ``answer`` once for each message ``unanswered`` finds; return how many."""
    from meiqia import jobs

    count = 0
    for conversation_id, message_id in unanswered():
        current_app.extensions["meiqia.jobs"].enqueue(
            answer, conversation_id, message_id, swept=True, job_id=job_id(message_id),
            retry=jobs.Retry(max=len(JOB_WAITS), intervals=JOB_WAITS),
            description=f"answer message {message_id}", keep_if_refused=True)
        count += 1
    return count


def init_app(app: Flask) -> Any:
    """This process sweeps every ``ANSWER_SWEEP_SECONDS`` seconds (``services/sweeper.py``)."""
    from meiqia.services.sweeper import install

    return install(app, "ANSWER_SWEEP_SECONDS", "meiqia.answer_sweep", sweep, "answer-sweep")
