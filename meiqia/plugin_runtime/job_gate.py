"""One call at a time into a plugin's job hook, across every process.

Job hooks (a channel's ``deliver``, a sink's ``create_ticket``/``update_ticket``)
run in jobs, and the job threads (embedded) or worker loops (``meiqia worker``)
are shared by every channel, sink, export and reply e-mail. A job waits for its
plugin call, so each call into a plugin that hangs held a shared thread or loop
for its whole budget (30 s): four such deliveries held every job thread of an
embedded server, and under rq, where each job runs in a new work horse, they ran
one after the other on the one urgent loop, so another channel's bot answer
waited minutes (a docs-only plugin author found both).

Hence ``one_call_inside(plugin, lane, budget)``: at most one job is inside a
plugin's lane (a channel's type, a sink's type) at a time. Another waits up to
``INSIDE_WAIT`` s for it, not at all once the one inside has run longer than
that, and then fails at once (``Busy``): its job is retried later on its own
schedule, and the shared thread goes on with the rest of the queue. A call that
timed out keeps the lane closed for one more budget (``Pass.keep``): the plugin is
most likely still hanging, and the next jobs each learn it at once instead of
waiting a whole budget again, one after the other, on a loop everybody shares.

The gate is a key in Redis under rq (every ``meiqia worker`` and every work horse
share it), a lock in memory in the embedded server.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

from flask import current_app

log = logging.getLogger("meiqia.plugins")

#: Seconds a call waits for another call into the same lane to end.
INSIDE_WAIT = 2.0
#: Seconds the gate's key outlives the call's budget (a worker killed inside the
#: plugin holds it no longer than its call could have run).
GATE_MARGIN = 1.0

#: Deletes the gate's key only while it is still this call's.
_RELEASE = ("if redis.call('get', KEYS[1]) == ARGV[1] then "
            "return redis.call('del', KEYS[1]) end return 0")
#: Takes the key over from an earlier attempt of the same job (ARGV[1]: its token,
#: ARGV[2]: this attempt's, ARGV[3]: the key's life in ms).
_TAKE_OVER = ("if redis.call('get', KEYS[1]) == ARGV[1] then "
              "return redis.call('set', KEYS[1], ARGV[2], 'PX', ARGV[3]) end return nil")
#: Keeps the key, still this call's, for ARGV[2] ms more (a call that timed out),
#: marked as kept so that no later attempt of the same job takes it over.
_KEEP = ("if redis.call('get', KEYS[1]) == ARGV[1] then "
         "return redis.call('set', KEYS[1], ARGV[1] .. ':kept', 'PX', ARGV[2]) end "
         "return nil")


class Busy(Exception):
    """Another call is inside the lane (or the last one timed out a moment ago)."""


class Pass:
    """This call's place inside the lane; ``keep()`` after a timeout."""

    def __init__(self, budget: float) -> None:
        self.budget = budget
        self.kept = False

    def keep(self) -> None:
        """The call timed out: keep the lane closed for one more budget."""
        self.kept = True


class _Inside:
    """One lane's gate in this process: a lock, since when its holder has been
    inside, and until when a timed-out call keeps it closed."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.since: float | None = None
        self.closed_until = 0.0


_INSIDE: dict[tuple[str, str], _Inside] = {}
_INSIDE_GUARD = threading.Lock()


def _busy(plugin: str, lane: str) -> Busy:
    return Busy(f"timed out: all its threads are still running (another call of {lane} "
                "is inside, one at a time; retried later)")


@contextlib.contextmanager
def one_call_inside(plugin: str, lane: str, budget: float) -> Iterator[Pass]:
    """Be the one job inside ``plugin``'s ``lane``, or raise ``Busy`` (see above),
    whose text is the runtime's for a plugin whose threads are all taken."""
    client = _gate_client()
    if client is not None:
        import redis

        try:
            key, token = _take_in_redis(client, plugin, lane, budget)
        except redis.RedisError as exc:
            log.warning("plugin %s: the one-at-a-time gate of %s in Redis is unreachable "
                        "(%s); this process's gate only", plugin, lane, exc)
        else:
            ticket = Pass(budget)
            try:
                yield ticket
            finally:
                _give_back_in_redis(client, key, token, ticket, plugin)
            return
    with _one_thread_inside(plugin, lane, budget) as ticket:
        yield ticket


def _gate_client() -> Any:
    """The Redis client of the rq queue (production), else None (embedded)."""
    queue = current_app.extensions.get("meiqia.jobs")
    return queue.client if getattr(queue, "kind", "") == "rq" else None


def _take_in_redis(client: Any, plugin: str, lane: str, budget: float) -> tuple[str, str]:
    """``SET key token NX PX`` with the key living for the budget. Held by another
    call: polled for INSIDE_WAIT s, not at all once the other has been inside
    longer (the key's age) or a timed-out call keeps it, then ``Busy``.

    Held by an earlier attempt of this very job (the token starts with the job's
    id), the key is taken over: that attempt's worker was killed inside the plugin
    (the recovery sweep runs the job again), and its key must not refuse it."""
    from meiqia import jobs

    life = int((budget + GATE_MARGIN) * 1000)
    key = f"{current_app.config['REDIS_PREFIX']}:plugin-inside:{plugin}:{lane}"
    job_id = jobs.current_job_id()
    token = f"{job_id or '-'}:{uuid.uuid4().hex}"
    deadline = time.monotonic() + INSIDE_WAIT
    while not client.set(key, token, nx=True, px=life):
        holder = client.get(key)
        if isinstance(holder, bytes):
            holder = holder.decode("utf-8", "replace")
        if holder and holder.endswith(":kept"):
            raise _busy(plugin, lane)
        if (job_id and holder and holder.startswith(f"{job_id}:")
                and client.eval(_TAKE_OVER, 1, key, holder, token, life)):
            log.warning("plugin %s: an earlier attempt of job %s died inside %s; its "
                        "gate is taken over", plugin, job_id, lane)
            break
        left = client.pttl(key)  # -2: gone meanwhile (try again); -1: no expiry
        inside = (life - left) / 1000 if left >= 0 else 0.0
        if left == -1 or inside > INSIDE_WAIT or time.monotonic() >= deadline:
            raise _busy(plugin, lane)
        time.sleep(0.05)
    return key, token


def _give_back_in_redis(client: Any, key: str, token: str, ticket: Pass, plugin: str) -> None:
    import redis

    try:
        if ticket.kept:
            client.eval(_KEEP, 1, key, token, int(ticket.budget * 1000))
        else:
            client.eval(_RELEASE, 1, key, token)
    except redis.RedisError as exc:  # the key expires by itself
        log.warning("plugin %s: could not open the gate in Redis again (%s); it expires "
                    "by itself", plugin, exc)


@contextlib.contextmanager
def _one_thread_inside(plugin: str, lane: str, budget: float) -> Iterator[Pass]:
    """The gate in this process: a lock per lane (see ``one_call_inside``)."""
    with _INSIDE_GUARD:
        inside = _INSIDE.setdefault((plugin, lane), _Inside())
    if time.monotonic() < inside.closed_until:
        raise _busy(plugin, lane)
    since = inside.since
    slow = since is not None and time.monotonic() - since > INSIDE_WAIT
    if not inside.lock.acquire(timeout=0 if slow else INSIDE_WAIT):
        raise _busy(plugin, lane)
    if time.monotonic() < inside.closed_until:  # timed out while this one waited
        inside.lock.release()
        raise _busy(plugin, lane)
    inside.since = time.monotonic()
    ticket = Pass(budget)
    try:
        yield ticket
    finally:
        if ticket.kept:
            inside.closed_until = time.monotonic() + budget
        inside.since = None
        inside.lock.release()
