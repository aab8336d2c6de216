"""The e-mail channel in the production shape: two gunicorn web processes
(``deploy/gunicorn.conf.py``, gevent on PostgreSQL) and real mail servers
(Dovecot and aiosmtpd, tests/mail_servers.py).

What an outside tester found: a web process that was already running when the
team first enabled the channel never started the mailbox reader (it learnt of a
channel only at its first request, and only of those enabled then), and a fresh
process started none before its first HTTP request. So when the process that
saved the settings stopped, nobody read new mail until a restart.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from meiqia.models import Conversation
from tests.conftest import close_app
from tests.conftest import make_app
from tests.conftest import truncate_all
from tests.helpers import wait_until
from tests.integration.test_email_channel import SUPPORT
from tests.integration.test_email_channel import VISITOR
from tests.integration.test_email_channel import channel_config
from tests.integration.test_email_channel import mail  # noqa: F401 - the fixture
from tests.integration.test_two_processes import ROOT
from tests.integration.test_two_processes import Http
from tests.integration.test_two_processes import free_port
from tests.integration.test_two_processes import server_command


class Gunicorn:
    """One gunicorn web process; waited for by a TCP connect, never a request, so
    what it does before its first request shows."""

    def __init__(self, env: dict[str, str], tmp: Path, name: str) -> None:
        self.port = free_port()
        self.path = tmp / f"{name}.log"
        self.log = open(self.path, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(server_command(self.port), env=env, cwd=ROOT,
                                     stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def listening(self) -> bool:
        assert self.proc.poll() is None, self.output()
        with contextlib.suppress(OSError), socket.create_connection(
                ("127.0.0.1", self.port), timeout=1):
            return "Booting worker" in self.output()
        return False

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def output(self) -> str:
        self.log.flush()
        return self.path.read_text()

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
                self.proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
            except ProcessLookupError:
                pass
        self.log.close()


def _fresh_database_and_env(tmp_path: Path, pg_database_url: str, secret: str) -> dict[str, str]:
    """The schema on an empty database, and the environment of the gunicorn
    processes of a test (no Redis: the processes share only PostgreSQL)."""
    app = make_app(tmp_path, DATABASE_URL=pg_database_url)  # the schema
    close_app(app)
    truncate_all(pg_database_url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEIQIA_")}
    env.update({
        "MEIQIA_DATABASE_URL": pg_database_url, "MEIQIA_REDIS_URL": "",
        "MEIQIA_SECRET_KEY": secret, "PYTHONUNBUFFERED": "1",
        "MEIQIA_INSTANCE_PATH": str(tmp_path / "instance"),
        "MEIQIA_OUTBOUND_ALLOWED_NETWORKS": "127.0.0.0/8",
        "MEIQIA_CHANNELS_SYNC_SECONDS": "1", "MEIQIA_BOT_WARM_UP": "false",
    })
    return env


def test_a_process_running_before_the_first_enable_reads_the_mailbox_when_the_other_stops(
        tmp_path, pg_database_url, mail):  # noqa: F811 - the fixture
    env = _fresh_database_and_env(tmp_path, pg_database_url, "email-processes-secret")
    a, b = Gunicorn(env, tmp_path, "a"), Gunicorn(env, tmp_path, "b")
    try:
        # Both up before the channel exists; B never gets an HTTP request.
        wait_until(a.listening, 120, "process A listening")
        wait_until(b.listening, 120, "process B listening")
        admin = Http()
        data = admin.call("POST", a.url("/api/v1/auth/register"), {
            "team_name": "邮件双进程", "name": "管理员", "email": "admin@example.com",
            "password": "two-proc-1"})
        admin.csrf = data["csrf_token"]
        saved = admin.call("PUT", a.url("/api/v1/channels/email"), {
            "enabled": True, "config": channel_config(mail, poll_interval=5)})
        assert saved["enabled"] is True

        (tmp_path / "reader").mkdir()
        app = make_app(tmp_path / "reader", DATABASE_URL=pg_database_url,
                       CHANNELS_AUTOSTART=False)
        try:
            with app.app_context():
                def conversations() -> int:
                    from meiqia.db import connection

                    with connection():
                        return Conversation.select().where(
                            Conversation.channel == "email").count()

                def answered(address: str) -> bool:
                    return any(address in rcpts and sender == SUPPORT
                               for sender, rcpts in list(mail.smtp.envelopes))

                mail.send(VISITOR, "第一封", "你们几点上班？")
                wait_until(lambda: conversations() == 1, 60, "the first mail read")
                wait_until(lambda: answered(VISITOR), 60, "the first mail answered")

                a.stop(signal.SIGTERM)  # a deploy: the process that saved the settings goes
                stopped = time.monotonic()
                mail.send("li@customer.test", "第二封", "我要退货")
                wait_until(lambda: conversations() == 2, 60,
                           "the second mail, read by process B")
                wait_until(lambda: answered("li@customer.test"), 60,
                           "the second mail answered by process B")
                print(f"\nA stopped -> B read and answered the next mail in "  # noqa: T201
                      f"{time.monotonic() - stopped:.1f} s")
        finally:
            close_app(app)
        # B read it without ever serving a request.
        assert " /api/" not in b.output() and "GET /" not in b.output(), b.output()
    finally:
        a.stop()
        b.stop()


def test_a_failing_reader_killed_outright_is_shown_stale_not_failing_for_ever(
        tmp_path, pg_database_url, mail):  # noqa: F811 - the fixture
    """An outside check: the process reading the mailbox died (kill -9) while its
    state said "failing"; the Channels page and API kept saying "failing (N in a
    row)" for ever, as if someone were still trying, instead of "stale": nobody
    reads. Process A reads (a closed IMAP port: it fails), process B only serves
    the API (``MEIQIA_CHANNELS_AUTOSTART`` off); A is killed with SIGKILL."""
    from meiqia.channels.email.transport import TIMEOUT

    env = _fresh_database_and_env(tmp_path, pg_database_url, "email-stale-secret")
    a = Gunicorn(env, tmp_path, "a")
    b = Gunicorn({**env, "MEIQIA_CHANNELS_AUTOSTART": "false"}, tmp_path, "b")
    try:
        wait_until(a.listening, 120, "process A listening")
        wait_until(b.listening, 120, "process B listening")
        admin = Http()
        data = admin.call("POST", a.url("/api/v1/auth/register"), {
            "team_name": "邮件读取", "name": "管理员", "email": "admin@example.com",
            "password": "stale-reader-1"})
        admin.csrf = data["csrf_token"]
        admin.call("PUT", a.url("/api/v1/channels/email"), {
            "enabled": True, "config": channel_config(mail, poll_interval=5,
                                                      imap_port=free_port())})

        def reader(lang: str = "en") -> dict:
            return admin.call("GET", b.url("/api/v1/channels/email"),
                              headers={"X-Meiqia-Lang": lang})["reader"]

        failing = wait_until(lambda: (r := reader())["state"] == "failing" and r, 60,
                             "the reader failing, seen from process B")
        a.stop(signal.SIGKILL)  # the reader's process dies outright: no release, no word
        killed = time.monotonic()
        assert a.proc.returncode == -signal.SIGKILL
        last = reader()  # what it wrote last, before it died (a round may have ended)
        assert last["state"] == "failing", last
        # Due again after its pause (5 s doubling) and an attempt; then stale.
        pause = min(5 * 2 ** (last["failures"] - 1), 300)
        stale = wait_until(lambda: (r := reader())["state"] == "stale" and r,
                           pause + TIMEOUT + 30 + 60, "the dead reader shown as stale")
        waited = time.monotonic() - killed
        print(f"\nreader killed while failing ({last['failures']} in a row) -> "  # noqa: T201
              f"stale after {waited:.0f} s: {stale['message']}")
        assert stale["message"].startswith("The mailbox has not been read for ")
        assert "no web process is reading it" in stale["message"]
        assert stale["failures"] == last["failures"] >= failing["failures"]
        assert reader("zh-CN")["message"].endswith("没有进程在读取")
        listed = admin.call("GET", b.url("/api/v1/channels"))
        assert next(c for c in listed if c["type"] == "email")["reader"]["state"] == "stale"
    finally:
        a.stop()
        b.stop()
