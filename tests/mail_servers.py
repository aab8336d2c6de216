"""Real mail servers for the e-mail channel's tests: Dovecot (IMAP, from the
distribution's packages) as the support mailbox, and aiosmtpd as the SMTP server
the channel sends through, which hands each mail to a test (and, for the
visitor's side, into a Dovecot mailbox by IMAP APPEND, as a mail server's local
delivery would).

Dovecot runs in the foreground (``dovecot -F``) as a child of the test, with a
config file, a passwd-file and the maildirs in a directory of its own, on a free
port; nothing of the machine's own mail setup is used or touched. As root, the
mail files belong to the ``dovecot`` system user (Dovecot refuses mail access
as root); as another user, everything runs as that user.

No pytest here, like tests/servers.py.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import wait_until
from tests.servers import free_port

DOVECOT = shutil.which("dovecot") or ("/usr/sbin/dovecot" if Path("/usr/sbin/dovecot").exists()
                                      else None)
if not Path("/usr/lib/dovecot/imap").exists():  # dovecot-core without dovecot-imapd
    DOVECOT = None
HOW_TO_INSTALL = ("needs Dovecot's IMAP server: apt-get install -y dovecot-imapd "
                  "(the tests start their own on a free port; CI installs it in .ci/run)")

_CONFIG = """\
protocols = imap
listen = 127.0.0.1
base_dir = {dir}/run
state_dir = {dir}/state
log_path = {dir}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
default_login_user = {login_user}
default_internal_user = {internal_user}
first_valid_uid = {uid}
mail_location = maildir:{dir}/mail/%u
mail_uid = {uid}
mail_gid = {gid}
protocol imap {{
  imap_idle_notify_interval = 1 secs
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {dir}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={dir}/home/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
service stats {{
  unix_listener stats-reader {{
    mode = 0666
  }}
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
"""


class DovecotServer:
    """A Dovecot IMAP server on a free port with the given users (name: password)."""

    def __init__(self, users: dict[str, str]) -> None:
        if DOVECOT is None:
            raise FileNotFoundError(HOW_TO_INSTALL)
        self.users = users
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="meiqia-dovecot-"))
        self.proc: subprocess.Popen | None = None
        if os.geteuid() == 0:
            import pwd

            mail = pwd.getpwnam("dovecot")
            self.uid, self.gid = mail.pw_uid, mail.pw_gid
            self.login_user, self.internal_user = "dovenull", "dovecot"
        else:
            import pwd

            me = pwd.getpwuid(os.geteuid())
            self.uid, self.gid = me.pw_uid, me.pw_gid
            self.login_user = self.internal_user = me.pw_name

    @property
    def log(self) -> str:
        path = self.dir / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def start(self) -> None:
        for sub in ("run", "state", "mail", "home"):
            (self.dir / sub).mkdir(exist_ok=True)
        (self.dir / "passwd").write_text(
            "".join(f"{user}:{{PLAIN}}{password}::::::\n" for user, password in self.users.items()))
        config = self.dir / "dovecot.conf"
        config.write_text(_CONFIG.format(
            dir=self.dir, port=self.port, uid=self.uid, gid=self.gid,
            login_user=self.login_user, internal_user=self.internal_user))
        for path in [self.dir, *self.dir.rglob("*")]:
            os.chown(path, self.uid, self.gid) if os.geteuid() == 0 else None
        os.chmod(self.dir, 0o755)
        with open(self.dir / "stderr.log", "wb") as stderr:
            # Its own process group: restart() kills the master and every session.
            self.proc = subprocess.Popen([DOVECOT, "-F", "-c", str(config)],
                                         stdout=subprocess.DEVNULL, stderr=stderr,
                                         start_new_session=True)

        def up() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError("dovecot exited: " + (self.dir / "stderr.log").read_text(
                    errors="replace") + self.log)
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    return s.recv(100).startswith(b"* OK")
            except OSError:
                return False

        wait_until(up, timeout=30, what=f"dovecot on port {self.port}")

    def append(self, user: str, raw: bytes) -> None:
        """Deliver ``raw`` into ``user``'s INBOX (IMAP APPEND as that user)."""
        from imapclient import IMAPClient

        with IMAPClient("127.0.0.1", port=self.port, ssl=False, timeout=10) as client:
            client.plain_login(user, self.users[user])
            client.append("INBOX", raw)
            client.logout()

    def inbox(self, user: str) -> list[bytes]:
        """Every mail in ``user``'s INBOX, oldest first (without marking them read)."""
        from imapclient import IMAPClient

        with IMAPClient("127.0.0.1", port=self.port, ssl=False, timeout=10) as client:
            client.plain_login(user, self.users[user])
            client.select_folder("INBOX", readonly=True)
            uids = client.search("ALL")
            fetched = client.fetch(uids, ["BODY.PEEK[]"]) if uids else {}
            client.logout()
        return [fetched[uid][b"BODY[]"] for uid in sorted(fetched)]

    def kill(self) -> None:
        """Kill the server (every session cut, as a crash would), keeping its
        mailboxes for ``start`` on the same port: an outage."""
        import signal

        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)  # the master and its sessions
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=10)

    def restart(self) -> None:
        """Kill the server and start it again at once (a blip)."""
        self.kill()
        self.start()

    def stop(self) -> None:
        import signal

        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)


class SmtpServer:
    """aiosmtpd on a free port: keeps every mail it accepts (``messages``: raw
    bytes, ``envelopes``), and delivers mail for a local Dovecot user into that
    user's INBOX when ``deliver_to`` maps the address to a ``DovecotServer``.
    ``stop()`` and ``start()`` again on the same port, as an outage would;
    ``refuse`` holds recipients it answers 550 (a mailbox that does not exist)."""

    def __init__(self, deliver_to: dict[str, tuple[DovecotServer, str]] | None = None) -> None:
        self.port = free_port()
        self.deliver_to = deliver_to or {}
        self.messages: list[bytes] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.lock = threading.Lock()
        self.refuse: set[str] = set()
        self.controller: Any = None

    def start(self) -> None:
        from aiosmtpd.controller import Controller

        server = self

        class Handler:
            async def handle_RCPT(self, _server: Any, _session: Any, envelope: Any,
                                  address: str, _options: list) -> str:
                if address.lower() in server.refuse:
                    return "550 5.1.1 mailbox unavailable"
                envelope.rcpt_tos.append(address)
                return "250 OK"

            async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:
                raw = envelope.original_content or envelope.content
                with server.lock:
                    server.messages.append(raw)
                    server.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
                for rcpt in envelope.rcpt_tos:
                    target = server.deliver_to.get(rcpt.lower())
                    if target:
                        mailbox, user = target
                        path = f"Return-Path: <{envelope.mail_from}>\r\n".encode()
                        mailbox.append(user, path + raw)
                return "250 OK"

        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    """A real SMTP server (aiosmtpd) for one test; import it where a test needs it."""
    server = SmtpServer()
    server.start()
    yield server
    server.stop()
