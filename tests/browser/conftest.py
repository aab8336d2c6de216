"""Browser tests: the real app on a SQLite file, served on 127.0.0.1, driven by Chromium.

Debian's Chromium is used (``/usr/bin/chromium``; Playwright's own download does not
work here). Without it the tests fail in CI (``CI=true``) and skip elsewhere, saying
how to install it. ``server`` serves a fresh app per test with werkzeug's threaded
server (websockets included); ``new_context`` opens an isolated browser profile
(cookies, storage), so two contexts are an agent and a visitor on two machines.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import IN_CI
from tests.conftest import close_app
from tests.conftest import make_app
from tests.helpers import ADMIN_PASSWORD
from tests.helpers import ApiClient

CHROMIUM = os.environ.get("MEIQIA_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
]
INSTALL = "apt-get update && apt-get install -y chromium fonts-wqy-zenhei fonts-noto-color-emoji"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
#: Playwright's wait for a condition the page should reach (not a timing assertion).
WAIT_MS = 15_000
try:
    from playwright.sync_api import expect
except ImportError:  # the browser tests skip, saying how to install it
    pass
else:
    # expect() waited 5 s where page actions wait WAIT_MS: a server step slowed past
    # 5 s by a loaded CI machine failed a test that was only slow (a password change
    # took 6 s under two CPU hogs).
    expect.set_options(timeout=WAIT_MS)


def pytest_collection_modifyitems(items: list[Any]) -> None:
    for item in items:
        if "tests/browser/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not os.path.exists(CHROMIUM):
        message = f"{CHROMIUM} not found: install it with `{INSTALL}`"
        if IN_CI:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@dataclass
class Server:
    app: Any
    url: str

    def api(self) -> ApiClient:
        """An API client as the team's admin (registered by ``admin``)."""
        client = ApiClient(self.app)
        assert client.login("admin@example.com", ADMIN_PASSWORD).status_code == 200
        return client


@contextmanager
def serve(tmp_path: Any, plugins: tuple = (), **config: Any) -> Iterator[Server]:
    """A fresh app (``config`` over the test defaults, ``plugins`` registered) on a
    free local port."""
    from werkzeug.serving import make_server

    app = make_app(tmp_path, plugins=plugins, **config)
    http = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    try:
        yield Server(app, f"http://127.0.0.1:{http.server_port}")
    finally:
        http.shutdown()
        thread.join(timeout=5)
        close_app(app)


@pytest.fixture
def server(tmp_path: Any) -> Iterator[Server]:
    with serve(tmp_path) as running:
        yield running


@pytest.fixture
def admin(server: Server) -> ApiClient:
    """A registered team whose admin is 王管理 (admin@example.com)."""
    with server.app.app_context():
        return ApiClient.registered(server.app)


@pytest.fixture
def new_context(browser: Any) -> Iterator[Any]:
    """``new_context(**options)`` opens a fresh browser profile; all are closed after."""
    contexts: list[Any] = []

    def make(**options: Any) -> Any:
        options.setdefault("locale", "zh-CN")
        context = browser.new_context(**options)
        context.set_default_timeout(WAIT_MS)
        contexts.append(context)
        return context

    yield make
    for context in contexts:
        context.close()


def login(page: Any, server: Server, email: str = "admin@example.com",
          password: str = ADMIN_PASSWORD, next: str = "/workspace") -> None:
    """Log in through the form, as a person would, and land on ``next`` (the login
    page's ``?next=``, as when a page sends him to log in; without it, the dashboard)."""
    page.goto(f"{server.url}/login?next={next}")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{server.url}{next}")


def screenshot(page: Any, name: str) -> None:
    """Save a screenshot for docs/screenshots/ (README shows them)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


def hold_the_first(page: Any, url: str, method: str) -> list[Any]:
    """Hold the first ``method`` request to ``url`` (a glob or a pattern) unanswered;
    the test answers it with ``continue_()`` when it chooses. Every other request
    goes through. Returns the list the held route lands in."""
    held: list[Any] = []

    def hold(route: Any) -> None:
        if route.request.method == method and not held:
            held.append(route)
        else:
            route.continue_()

    page.route(url, hold)
    return held
