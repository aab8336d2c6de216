"""Issue 15, item 4: login throttling neither locks the owner out nor tells
which emails have an account.

The attacks: hammer the admin's email with wrong passwords from one client
(the old per-account lockout then kept the admin himself out for 15 minutes);
compare the answers (status, body, time) for an unknown and a known email.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import pytest

from meiqia.models import AuditLog
from tests.conftest import close_app
from tests.conftest import make_app
from tests.helpers import ADMIN_PASSWORD
from tests.helpers import ApiClient

ATTACKER = "203.0.113.66"
OWNER = "198.51.100.7"
KNOWN = "admin@example.com"
UNKNOWN = "nobody-here@example.com"


def login(client: Any, email: str, password: str, ip: str) -> Any:
    return client.post("/api/v1/auth/login", json={"email": email, "password": password},
                       environ_base={"REMOTE_ADDR": ip})


def test_the_owner_logs_in_while_an_attacker_hammers_his_account(api):
    attacker = api.app.test_client()
    owner = api.app.test_client()
    statuses = []
    for attempt in range(40):
        statuses.append(login(attacker, KNOWN, f"guess-{attempt}", ATTACKER).status_code)
        if attempt % 8 == 7:
            # In the middle of the attack, from his own client: let in.
            response = login(owner, KNOWN, ADMIN_PASSWORD, OWNER)
            assert response.status_code == 200, (attempt, response.get_json())
    assert statuses[:5] == [401] * 5
    assert set(statuses[5:]) == {429}  # the attacker is slowed down, not the owner
    # Even his own wrong guesses do not lock him: only his own client's count grows.
    assert login(owner, KNOWN, "typo-pass-1", OWNER).status_code == 401
    assert login(owner, KNOWN, ADMIN_PASSWORD, OWNER).status_code == 200


def test_one_client_is_limited_across_emails(api):
    """Guessing one password against many emails hits the per-client limit."""
    client = api.app.test_client()
    import time

    first = time.monotonic()
    responses = [login(client, f"user{i}@example.com", "Summer-2026", ATTACKER)
                 for i in range(25)]
    refused_at = time.monotonic()
    statuses = [r.status_code for r in responses]
    assert statuses[:20] == [401] * 20 and set(statuses[20:]) == {429}
    # The 429 says when to try again: when the first of the 20 attempts leaves the
    # per-minute window, 60 s after it was made (a header missing or naming another
    # window fails here).
    wait = int(responses[20].headers["Retry-After"])
    assert 60 - (refused_at - first) - 1 <= wait <= 60
    # Another client is not affected.
    assert login(api.app.test_client(), KNOWN, ADMIN_PASSWORD, OWNER).status_code == 200


def test_the_login_form_answers_a_throttled_client_429_with_retry_after(api):
    """docs/security.md §4: past the limit, 429 with Retry-After, through the API
    and the HTML form alike (the form answered 401 without a header)."""
    form = api.app.test_client()
    form.get("/login")
    with form.session_transaction() as session:
        csrf = session["csrf"]

    def attempt(password: str) -> Any:
        return form.post("/login", data={"email": KNOWN, "password": password,
                                         "csrf_token": csrf},
                         headers={"Accept-Language": "zh-CN"},
                         environ_base={"REMOTE_ADDR": ATTACKER})

    for n in range(api.app.config["LOGIN_MAX_FAILURES"]):
        wrong = attempt(f"guess-{n}")
        assert wrong.status_code == 401 and "Retry-After" not in wrong.headers
    page = attempt(ADMIN_PASSWORD)
    assert page.status_code == 429
    wait = int(page.headers["Retry-After"])
    assert 0 < wait <= api.app.config["LOGIN_LOCKOUT_SECONDS"]
    assert "登录尝试次数太多" in page.get_data(as_text=True)
    assert "Location" not in page.headers
    # The API says the same to the same client.
    refused = login(api.app.test_client(), KNOWN, ADMIN_PASSWORD, ATTACKER)
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0


def test_unknown_and_known_emails_get_the_same_answers(api):
    client = api.app.test_client()
    for ip in ("192.0.2.1", "192.0.2.2"):
        known, unknown = (login(client, email, "wrong-pass-1", ip) for email in (KNOWN, UNKNOWN))
        assert known.status_code == unknown.status_code == 401
        assert known.get_json() == unknown.get_json()
    # Past the limit, both get the same 429 (it used to come for known emails only).
    answers = {}
    for email, ip in ((KNOWN, "192.0.2.10"), (UNKNOWN, "192.0.2.11")):
        responses = [login(client, email, "wrong-pass-1", ip) for _ in range(6)]
        assert [r.status_code for r in responses] == [401] * 5 + [429]
        answers[email] = responses[-1].get_json()
    assert answers[KNOWN] == answers[UNKNOWN]
    assert answers[KNOWN]["error"]["code"] == "rate_limited"
    # Both are on record, neither names an account the asker could not name.
    assert AuditLog.select().where(AuditLog.action == "login.failed").count() == 14


def test_unknown_and_known_emails_take_the_same_time(api):
    """Both check a password hash of the same cost: compared in one run, as a
    ratio of medians (no absolute threshold). An unknown email used to skip the
    hash: ~3 ms against ~100 ms."""
    client = api.app.test_client()
    times: dict[str, list[float]] = {KNOWN: [], UNKNOWN: []}
    for trial in range(9):
        for email in (KNOWN, UNKNOWN) if trial % 2 else (UNKNOWN, KNOWN):
            started = time.perf_counter()
            response = login(client, email, "wrong-pass-1", f"10.9.{trial}.{len(email)}")
            times[email].append(time.perf_counter() - started)
            assert response.status_code == 401
    ratio = statistics.median(times[UNKNOWN]) / statistics.median(times[KNOWN])
    assert 0.6 < ratio < 1.6, (ratio, times)


def test_the_limits_are_shared_by_processes_through_redis(tmp_path, redis_url, redis_prefix):
    """Two workers on one Redis count one client's attempts together."""
    first = make_app(tmp_path, REDIS_URL=redis_url, REDIS_PREFIX=redis_prefix)
    second = make_app(tmp_path, REDIS_URL=redis_url, REDIS_PREFIX=redis_prefix)
    try:
        with first.app_context():
            ApiClient.registered(first)
            statuses = [login(first.test_client(), KNOWN, "wrong-pass-1", ATTACKER).status_code
                        for _ in range(3)]
        with second.app_context():
            statuses += [login(second.test_client(), KNOWN, "wrong-pass-1", ATTACKER).status_code
                         for _ in range(3)]
            assert login(second.test_client(), KNOWN, ADMIN_PASSWORD, OWNER).status_code == 200
    finally:
        close_app(first)
        close_app(second)
    assert statuses == [401] * 5 + [429]


@pytest.mark.parametrize("value", ["lots", "5/fortnight"])
def test_a_malformed_rate_is_refused_at_start_up(tmp_path, value):
    from meiqia.config import ConfigError

    with pytest.raises(ConfigError, match="LOGIN_RATE_PER_CLIENT"):
        make_app(tmp_path, LOGIN_RATE_PER_CLIENT=value)


def _parallel_guesses(app: Any, count: int) -> list[int]:
    """``count`` wrong guesses at once from one client, each on its own thread and
    test client, released together by a barrier."""
    import threading

    barrier = threading.Barrier(count)
    statuses: list[int] = []
    lock = threading.Lock()

    def guess(n: int) -> None:
        client = app.test_client()
        with app.app_context():
            barrier.wait()
            status = login(client, KNOWN, f"parallel-{n}", ATTACKER).status_code
        with lock:
            statuses.append(status)

    threads = [threading.Thread(target=guess, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return statuses


@pytest.mark.parametrize("storage", ["memory", "redis"])
def test_parallel_guesses_cannot_slip_past_the_limit(tmp_path, storage, request):
    """Counted before the password is checked, atomically: of 24 guesses sent at
    once (3 trials), never more than LOGIN_MAX_FAILURES reach the password check."""
    config: dict[str, Any] = {}
    if storage == "redis":
        config = {"REDIS_URL": request.getfixturevalue("redis_url"),
                  "REDIS_PREFIX": request.getfixturevalue("redis_prefix")}
    app = make_app(tmp_path, LOGIN_RATE_PER_CLIENT="1000/minute", **config)
    try:
        with app.app_context():
            ApiClient.registered(app)
        for trial in range(3):
            with app.app_context():
                statuses = _parallel_guesses(app, 24)
                assert len(statuses) == 24
                assert statuses.count(401) <= 5 and statuses.count(429) >= 19, statuses
                if trial == 0:
                    assert statuses.count(401) == 5
                # The owner, meanwhile, from his own client.
                assert login(app.test_client(), KNOWN, ADMIN_PASSWORD, OWNER).status_code == 200
                app.extensions["meiqia.login_throttle"].memory.storage.reset()
                if storage == "redis":
                    app.extensions["meiqia.login_throttle"].shared.storage.reset()
    finally:
        close_app(app)


def test_open_registration_is_throttled_by_client(tmp_path):
    """An outside check probed 30 emails in a row through open registration: a taken
    one answers 409 (it has an account), a free one 201, no 429 ever. Registrations,
    accepted or refused, now count against REGISTER_RATE_PER_CLIENT per client; the
    answer past it is 429 in the client's language, with Retry-After, and creates
    nothing. Another client is not affected."""
    from meiqia.models import Team

    app = make_app(tmp_path, OPEN_REGISTRATION=True, REGISTER_RATE_PER_CLIENT="3/hour",
                   TRUSTED_PROXIES=1)
    try:
        with app.app_context():
            ApiClient.registered(app)  # admin@example.com, from 127.0.0.1
            client = app.test_client()

            def register(email: str, ip: str) -> Any:
                return client.post("/api/v1/auth/register", json={
                    "team_name": "探测", "name": "探测者", "email": email,
                    "password": "probe-pass-123"},
                    headers={"X-Forwarded-For": ip, "X-Meiqia-Lang": "zh-CN"})

            answers = [register(email, "203.0.113.9").status_code
                       for email in ("admin@example.com", "free1@example.com",
                                     "admin@example.com", "free2@example.com")]
            assert answers == [409, 201, 409, 429], answers
            refused = register("free3@example.com", "203.0.113.9")
            assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
            assert refused.get_json()["error"]["message"] == "从这个地址注册的次数太多，请稍后再试"
            assert Team.select().count() == 2  # the owner's and free1's
            assert register("free4@example.com", "198.51.100.7").status_code == 201
    finally:
        close_app(app)


def test_a_malformed_registration_rate_is_refused_at_start_up(tmp_path):
    from meiqia.config import ConfigError

    with pytest.raises(ConfigError, match="REGISTER_RATE_PER_CLIENT"):
        make_app(tmp_path, REGISTER_RATE_PER_CLIENT="lots")
