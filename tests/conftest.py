"""Shared fixtures (flaskr style): ``app`` on a real SQLite file, ``pg_app`` on the
local PostgreSQL, ``db_app`` on both, ``redis_url``, ``client``, ``runner``, ``api``.

PostgreSQL and Redis tests fail in CI (``CI=true``) when the server is
unreachable, and skip elsewhere with a message that says how to start it.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from meiqia.testing.app import base_config  # noqa: F401 - tests import it from here
from meiqia.testing.app import close_app
from meiqia.testing.app import make_app
from tests.helpers import ApiClient

IN_CI = os.environ.get("CI") == "true"
PG_URL = os.environ.get(
    "MEIQIA_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/meiqia_test"
)
REDIS_URL = os.environ.get("MEIQIA_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")

PG_HOW = (
    "start PostgreSQL (pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) "
    "main start) or set MEIQIA_TEST_DATABASE_URL"
)
REDIS_HOW = (
    "start Redis (redis-server --daemonize yes --port 6379) or set MEIQIA_TEST_REDIS_URL"
)


_OWN_CACHE: list[str] = []


def pytest_configure(config: Any) -> None:
    """A cache folder of the run's own (``MEIQIA_CACHE_DIR``, unless one is set):
    the bot keeps its int8 model graph and its questions' vectors there, and a
    run must not find the vectors of an earlier one (tests count what the model
    embeds)."""
    import tempfile

    if "MEIQIA_CACHE_DIR" not in os.environ:
        _OWN_CACHE.append(tempfile.mkdtemp(prefix="meiqia-test-cache-"))
        os.environ["MEIQIA_CACHE_DIR"] = _OWN_CACHE[0]


def pytest_unconfigure(config: Any) -> None:
    import shutil

    for folder in _OWN_CACHE:
        shutil.rmtree(folder, ignore_errors=True)


def unavailable(what: str, how: str, error: Exception) -> None:
    message = f"{what} unreachable ({error}); {how}"
    if IN_CI:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture
def app(tmp_path: Any) -> Iterator[Any]:
    """The embedded default on a fresh SQLite file: no server needed."""
    app = make_app(tmp_path)
    with app.app_context():
        yield app
    close_app(app)


# --- PostgreSQL ------------------------------------------------------------------


@contextlib.contextmanager
def own_pg_database() -> Iterator[str]:
    """An empty database of our own on the local PostgreSQL server, dropped after."""
    from urllib.parse import urlparse

    import psycopg2
    from psycopg2 import sql

    parsed = urlparse(PG_URL)
    name = f"{parsed.path.lstrip('/') or 'meiqia_test'}_{uuid.uuid4().hex[:8]}"
    admin_dsn = PG_URL.rsplit("/", 1)[0] + "/postgres"
    try:
        conn = psycopg2.connect(admin_dsn, connect_timeout=3)
    except psycopg2.OperationalError as exc:
        unavailable("PostgreSQL", PG_HOW, exc)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = PG_URL.rsplit("/", 1)[0] + "/" + name
    try:
        yield url
    finally:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )
            cur.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        conn.close()


@pytest.fixture(scope="session")
def pg_database_url() -> Iterator[str]:
    """A database of this test session's own on the local PostgreSQL server."""
    with own_pg_database() as url:
        yield url


def truncate_all(url: str) -> None:
    import psycopg2

    conn = psycopg2.connect(url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
            "AND tablename <> 'schema_migration'"
        )
        tables = [row[0] for row in cur.fetchall()]
        if tables:
            cur.execute(
                "TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE"
            )
    conn.close()


@pytest.fixture
def pg_app(tmp_path: Any, pg_database_url: str) -> Iterator[Any]:
    """The app on PostgreSQL (tables emptied before each test)."""
    app = make_app(tmp_path, DATABASE_URL=pg_database_url)
    truncate_all(pg_database_url)
    with app.app_context():
        yield app
    close_app(app)


@pytest.fixture(params=["sqlite", "postgres"])
def db_app(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Any]:
    """The app on SQLite, then on PostgreSQL: for tests that must hold on both."""
    if request.param == "sqlite":
        app = make_app(tmp_path)
    else:
        url = request.getfixturevalue("pg_database_url")
        app = make_app(tmp_path, DATABASE_URL=url)
        truncate_all(url)
    with app.app_context():
        yield app
    close_app(app)


# --- Redis -----------------------------------------------------------------------


@pytest.fixture
def redis_url() -> Iterator[str]:
    """The test Redis, checked reachable; keys of this test are removed after."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError as exc:
        unavailable("Redis", REDIS_HOW, exc)
    yield REDIS_URL
    client.close()


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix of this test's own, deleted afterwards."""
    import redis

    prefix = f"mqtest-{uuid.uuid4().hex[:10]}"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(f"*{prefix}*"))
    if keys:
        client.delete(*keys)
    client.close()


# --- clients ---------------------------------------------------------------------


@pytest.fixture
def client(app: Any) -> Any:
    return app.test_client()


@pytest.fixture
def runner(app: Any) -> Any:
    return app.test_cli_runner()


@pytest.fixture
def api(app: Any) -> ApiClient:
    """A logged-in admin of a fresh team (``api.admin``), with CSRF handled."""
    return ApiClient.registered(app)


@pytest.fixture
def db_api(db_app: Any) -> ApiClient:
    return ApiClient.registered(db_app)


@pytest.fixture
def own_redis(tmp_path: Any) -> Iterator[Any]:
    """A Redis server this test may kill and restart (``tests/servers.py``)."""
    from tests.servers import RedisServer

    server = RedisServer(tmp_path)
    if server.binary is None:
        unavailable("redis-server", "apt-get install redis-server",
                    FileNotFoundError("redis-server not on PATH"))
    server.start()
    yield server
    server.stop()
