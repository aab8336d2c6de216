"""Login throttling by client and by account+client, never a lockout (issue 15, item 4).

The old rule locked an account after five failures from anywhere: anyone who
knew the admin's email could keep him out, and only existing accounts were
ever locked, which told an attacker which emails exist. Now:

- every login attempt from one client (IP, through TRUSTED_PROXIES) counts
  against LOGIN_RATE_PER_CLIENT, whatever the email: a password-guessing client
  is slowed down across all accounts;
- attempts from one client at one email count against LOGIN_MAX_FAILURES per
  LOGIN_LOCKOUT_SECONDS; a successful login clears that count.

Both keys are the email as typed (normalised), not the account: unknown and
known emails are throttled alike. The owner, logging in from his own client,
is untouched by an attacker hammering his account from another.

Counters live in Redis when REDIS_URL is set (shared by every process), else in
the process. The ``limits`` library does the counting (the storage and
moving-window algorithm flask-limiter is built on); we call it directly
because our keys come from the JSON body and a success must clear its key.
If Redis does not answer, the process falls back to its own memory counters
rather than refusing every login.
"""

from __future__ import annotations

import hashlib
import logging
import threading

from flask import current_app
from limits import RateLimitItemPerSecond
from limits import parse_many
from limits.storage import MemoryStorage
from limits.storage import RedisStorage
from limits.strategies import MovingWindowRateLimiter

from meiqia.services.errors import RateLimited

log = logging.getLogger(__name__)
_KEY = "meiqia.login_throttle"


class _Throttle:
    def __init__(self, redis_url: str, prefix: str, timeout: float) -> None:
        self.memory = MovingWindowRateLimiter(MemoryStorage())
        # limits' MemoryStorage makes a key's lock on first use without a lock of its
        # own: two threads hitting a new key at once can each get a different lock and
        # both count past the limit (24 parallel guesses let 13 through in
        # test_parallel_guesses_cannot_slip_past_the_limit). One lock around it here.
        self.memory_lock = threading.Lock()
        self.shared = None
        if redis_url:
            storage = RedisStorage(redis_url, key_prefix=f"{prefix}:limits",
                                   socket_timeout=max(timeout, 1.0) * 4,
                                   socket_connect_timeout=timeout)
            self.shared = MovingWindowRateLimiter(storage)

    def _call(self, name: str, *args: object) -> bool | None:
        if self.shared is not None:
            try:
                return getattr(self.shared, name)(*args)
            except Exception as exc:  # noqa: BLE001 - Redis down: this process counts alone
                log.warning("login throttle: Redis unavailable, counting in memory: %s", exc)
        with self.memory_lock:
            return getattr(self.memory, name)(*args)

    def hit(self, item: object, *keys: str) -> bool:
        return bool(self._call("hit", item, *keys))

    def clear(self, item: object, *keys: str) -> None:
        self._call("clear", item, *keys)

    def seconds_left(self, item: object, *keys: str) -> int:
        """Seconds until ``item`` lets one more attempt through (at least 1)."""
        import time

        stats = self._call("get_window_stats", item, *keys)
        reset = stats.reset_time if stats is not None else time.time() + 1
        return max(1, int(reset - time.time() + 0.999))


_CREATE = threading.Lock()


def _throttle() -> _Throttle:
    """The app's counters, made once (under a lock: the first logins may come at once,
    and two sets of memory counters would each allow the limit)."""
    app = current_app
    throttle = app.extensions.get(_KEY)
    if throttle is None:
        with _CREATE:
            throttle = app.extensions.get(_KEY)
            if throttle is None:
                throttle = _Throttle(app.config["REDIS_URL"], app.config["REDIS_PREFIX"],
                                     app.config["REDIS_TIMEOUT"])
                app.extensions[_KEY] = throttle
    return throttle


def _account_item() -> object:
    return RateLimitItemPerSecond(current_app.config["LOGIN_MAX_FAILURES"],
                                  current_app.config["LOGIN_LOCKOUT_SECONDS"])


def _email_key(email: str) -> str:
    # Hashed: the counters' keys should not list the emails people typed.
    return hashlib.sha256(email.encode()).hexdigest()[:32]


def attempt(email: str, ip: str) -> None:
    """Count one login attempt; raise RateLimited past either limit.

    Counted before the password is checked, so parallel guesses cannot slip
    past the limit between check and count.
    """
    throttle = _throttle()
    waits = []
    for item in parse_many(current_app.config["LOGIN_RATE_PER_CLIENT"]):
        if not throttle.hit(item, "client", ip):
            waits.append(throttle.seconds_left(item, "client", ip))
    if current_app.config["LOGIN_MAX_FAILURES"]:
        keys = ("account", _email_key(email), ip)
        if not throttle.hit(_account_item(), *keys):
            waits.append(throttle.seconds_left(_account_item(), *keys))
    if waits:
        # Retry-After: when the fullest window lets the next attempt through.
        raise RateLimited("too many login attempts: try again later", retry_after=max(waits))


def registration(ip: str) -> None:
    """Count one team registration from a client (accepted or refused); raise
    RateLimited past REGISTER_RATE_PER_CLIENT. A registration refused because
    the email has an account tells that it has one: an outside check probed 30
    emails in a row, each answered in 6 ms. Throttled like logins, by client."""
    throttle = _throttle()
    waits = [throttle.seconds_left(item, "register", ip)
             for item in parse_many(current_app.config["REGISTER_RATE_PER_CLIENT"])
             if not throttle.hit(item, "register", ip)]
    if waits:
        raise RateLimited("too many registrations from this address: try again later",
                          retry_after=max(waits))


def succeeded(email: str, ip: str) -> None:
    """A right password clears the account+client count (not the client's)."""
    if current_app.config["LOGIN_MAX_FAILURES"]:
        _throttle().clear(_account_item(), "account", _email_key(email), ip)
