"""The thread that reads new mail of the support mailbox.

Where the server has IMAP IDLE (RFC 2177: Dovecot, Gmail, QQ, 163, Exchange) the
thread waits in IDLE and the server says "new mail" at once; it still leaves
IDLE every ``poll_interval`` seconds (at most 25 minutes, under the 29 the RFC
allows) to look for itself, as a pushed notice can be lost. Without IDLE it
looks every ``poll_interval`` seconds.

Which mail is new: the highest UID handled is kept in the channel's state with
the folder's UIDVALIDITY; a later mail has a higher UID. The first time (or when
the server renumbered the folder) it starts at the oldest *unread* mail (or at
the folder's UIDNEXT when all is read), so connecting a mailbox with years of old
mail does not start years of conversations. A mail
is read with ``BODY.PEEK`` and marked ``\\Seen`` once handled, so people looking
at the mailbox see what the channel took. Handling is idempotent by Message-ID
(the runtime stores an external id once), so two processes polling the same
mailbox, or a crash between handling and saving the UID, never make a mail
count twice. A mail whose handling fails is tried again next round, at most
``MAX_ATTEMPTS`` times, then skipped with an error in the log (one broken mail
must not stop the mailbox). A mail the server cannot take *now* (``unavailable``:
a privacy hook could not check it under ``PRIVACY_FALLBACK = "refuse"``, or the
database is down) is not counted: it waits, and the mail after it with it.

Every web process runs the team's channel, but only one reads the mailbox at a
time: a claim in the channel's state, renewed each round and taken over by
another process when it runs out (``_claim``).
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

from imapclient.exceptions import IMAPClientError

from meiqia.channels.email.transport import MailError
from meiqia.channels.email.transport import Server
from meiqia.channels.email.transport import open_imap

MAX_ATTEMPTS = 3
#: Mails fetched per FETCH command.
BATCH = 20
#: Longest wait in IDLE before looking again (RFC 2177: re-issue within 29 min).
MAX_IDLE = 25 * 60
#: Longest pause after failures (doubling from the poll interval).
MAX_BACKOFF = 300
#: The state key of the claim that makes one process the mailbox's reader.
LEASE_KEY = "imap_reader"
#: The state key of how reading goes (``EmailChannel.reader_status`` shows it).
STATUS_KEY = "reader_status"


class Poller:
    """Reads ``folder`` of ``server`` on its own thread and hands each new mail's
    raw bytes to ``handle`` (which runs in ``unit()``, a context with the app and
    a database connection) in ``app_context()``."""

    def __init__(self, server: Server, folder: str, interval: float,
                 handle: Callable[[bytes], None], state: Any, unit: Callable[[], Any],
                 log: logging.Logger, use_idle: bool = True,
                 app_context: Callable[[], Any] | None = None) -> None:
        self.server = server
        self.folder = folder or "INBOX"
        self.interval = max(float(interval), 1.0)
        self.handle = handle
        self.state = state
        self.unit = unit
        self.log = log
        self.use_idle = use_idle
        #: The thread runs in the app's context: the SSRF gate reads the instance's
        #: OUTBOUND_* settings from it.
        self.app_context = app_context or contextlib.nullcontext
        self.stopped = threading.Event()
        self.thread: threading.Thread | None = None
        self.client: Any = None
        self.attempts: dict[int, int] = {}
        #: Rounds completed (a round: connect if needed, fetch what is new).
        self.rounds = 0
        self.idling = False
        #: This reader's claim on the mailbox (see ``_claim``).
        self.token = secrets.token_hex(8)

    # --- lifecycle ---------------------------------------------------------------

    def start(self) -> None:
        if self.thread is not None and self.thread.is_alive():
            return
        self.stopped.clear()
        self.thread = threading.Thread(target=self._run, daemon=True,
                                       name=f"meiqia-email-{self.server.user}")
        self.thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self.stopped.set()
        thread = self.thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        self.thread = None
        self._release()

    # --- one reader per mailbox ------------------------------------------------------

    @property
    def lease_seconds(self) -> float:
        """How long a claim holds without renewal: two rounds and a margin."""
        return 2 * min(self.interval, MAX_IDLE) + 30

    def _claim(self) -> bool:
        """Claim (or renew) the mailbox for this reader; False while another
        process's reader holds it. Every web process runs the channel, but one
        IMAP session per mailbox is enough, and providers limit them (Gmail allows
        15 per account). A reader that dies loses its claim after
        ``lease_seconds``; two that claim at the same moment read together for a
        round at most, which the Message-ID idempotency makes harmless."""
        with self.unit():
            lease = self.state.get(LEASE_KEY) or {}
            now = time.time()
            if lease.get("token") not in (None, self.token) and lease.get("until", 0) > now:
                return False
            self.state.set(LEASE_KEY, {"token": self.token, "until": now + self.lease_seconds})
        return True

    def _release(self) -> None:
        """Give the mailbox up at once (a restart after a settings change)."""
        try:
            with self.app_context(), self.unit():
                if (self.state.get(LEASE_KEY) or {}).get("token") == self.token:
                    self.state.set(LEASE_KEY, {"token": None, "until": 0})
        except Exception:  # noqa: BLE001 - the claim runs out by itself
            self.log.debug("e-mail: could not release the mailbox", exc_info=True)

    # --- the loop ----------------------------------------------------------------

    def _run(self) -> None:
        with self.app_context():
            self._loop()

    def _loop(self) -> None:
        failures = 0
        while not self.stopped.is_set():
            rounds = self.rounds
            try:
                if not self._claim():  # another process reads the mailbox
                    self.stopped.wait(min(self.interval, self.lease_seconds))
                    continue
                self._session()
                failures = 0
            except (MailError, IMAPClientError, OSError) as exc:
                failures = _failures_after(failures, self.rounds > rounds)
                reason = exc.reason if isinstance(exc, MailError) else f"{type(exc).__name__}"
                self.log.warning("e-mail: reading %s failed (%s); trying again", self.folder,
                                 reason)
                if isinstance(exc, MailError):
                    self._record(error={"zh": exc.zh, "en": exc.en}, failures=failures)
                else:  # the session broke off: its type only, never the server's words
                    self._record(error={"zh": "IMAP 会话中断",
                                        "en": f"IMAP: the session broke off ({reason})"},
                                 failures=failures)
            except Exception as exc:  # noqa: BLE001 - a database hiccup: try again next round
                failures = _failures_after(failures, self.rounds > rounds)
                self.log.exception("e-mail: handling new mail failed; trying again")
                self._record(error={"zh": "处理新邮件出错（见服务器日志）",
                                    "en": f"handling new mail failed ({type(exc).__name__}; "
                                          "see the server log)"}, failures=failures)
            if failures:
                self.stopped.wait(min(self.interval * 2 ** (failures - 1), MAX_BACKOFF))

    def _session(self) -> None:
        client = open_imap(self.server)
        self.client = client
        try:
            info = client.select_folder(self.folder)
            validity = int(info.get(b"UIDVALIDITY", 0))
            uidnext = int(info.get(b"UIDNEXT", 0)) or None
            idle = self.use_idle and client.has_capability("IDLE")
            while not self.stopped.is_set():
                self.fetch_new(client, validity, uidnext)
                uidnext = None  # only the first look uses it
                self.rounds += 1
                self._record(error=None)
                if not self._claim():
                    return  # our claim ran out and another reader took over
                if idle:
                    self._wait_idle(client)
                else:
                    self.stopped.wait(self.interval)
        finally:
            self.client = None
            try:
                client.logout()
            except Exception:  # noqa: BLE001 - the connection may be gone already
                try:
                    client.shutdown()
                except Exception:  # noqa: BLE001
                    pass

    def _wait_idle(self, client: Any) -> None:
        """Wait in IDLE until the server reports a change, the interval passes or
        the poller is stopped (checked every second)."""
        client.idle()
        self.idling = True
        try:
            deadline = time.monotonic() + min(self.interval, MAX_IDLE)
            while not self.stopped.is_set() and time.monotonic() < deadline:
                responses = client.idle_check(timeout=1)
                if any(r[1] in (b"EXISTS", b"RECENT") for r in responses
                       if isinstance(r, tuple) and len(r) > 1):
                    break
        finally:
            self.idling = False
            client.idle_done()

    # --- which mail is new -------------------------------------------------------

    def fetch_new(self, client: Any, validity: int, uidnext: int | None = None) -> int:
        """Hand every new mail of the selected folder to ``handle``; the count.
        ``uidnext``: the folder's UIDNEXT when it was selected (a mail arriving
        after that has at least this UID, so the first look misses none)."""
        with self.unit():
            mark = self.state.get("imap") or {}
        if mark.get("folder") != self.folder or mark.get("uidvalidity") != validity:
            # First look (or the folder was renumbered): from the oldest unread mail.
            unseen = client.search(["UNSEEN"])
            if unseen:
                last = min(unseen) - 1
            elif uidnext:
                last = uidnext - 1
            else:
                last = max(client.search(["ALL"]), default=0)
            with self.unit():
                self.state.set("imap", {"folder": self.folder, "uidvalidity": validity,
                                        "last_uid": last})
        else:
            last = int(mark.get("last_uid", 0))
        uids = [uid for uid in client.search(["UID", f"{last + 1}:*"]) if uid > last]
        handled = 0
        for start in range(0, len(uids), BATCH):
            batch = sorted(uids)[start:start + BATCH]
            fetched = client.fetch(batch, ["BODY.PEEK[]"])
            for uid in batch:
                raw = (fetched.get(uid) or {}).get(b"BODY[]")
                if raw is not None and not self._handle_one(uid, raw):
                    return handled  # failed: again next round, from this mail
                last = max(last, uid)
                with self.unit():
                    self.state.set("imap", {"folder": self.folder, "uidvalidity": validity,
                                            "last_uid": last})
                if raw is not None:
                    client.add_flags([uid], [b"\\Seen"], silent=True)
                    handled += 1
        return handled

    def _handle_one(self, uid: int, raw: bytes) -> bool:
        """True when the mail is done with (handled, or given up on)."""
        try:
            with self.unit():
                self.handle(raw)
            self.attempts.pop(uid, None)
            return True
        except Exception as exc:  # noqa: BLE001 - decided below: again, or skip this one mail
            if _for_now(exc):
                # Nothing wrong with the mail: the server cannot take it now (a privacy
                # hook could not check it and PRIVACY_FALLBACK is "refuse", the
                # database is busy). Skipping it after MAX_ATTEMPTS rounds marked it
                # read and lost the customer's mail; it waits, from this mail on.
                self.log.warning("e-mail: mail UID %s of %s cannot be taken now (%s); "
                                 "trying again next round", uid, self.folder, exc)
                return False
            attempts = self.attempts.get(uid, 0) + 1
            self.attempts[uid] = attempts
            if attempts >= MAX_ATTEMPTS:
                self.log.exception("e-mail: mail UID %s of %s failed %d times; skipped",
                                   uid, self.folder, attempts)
                self.attempts.pop(uid, None)
                return True
            self.log.exception("e-mail: mail UID %s of %s failed; trying again", uid,
                               self.folder)
            return False

    def _record(self, error: dict[str, str] | None, failures: int = 0) -> None:
        """How reading goes, in the channel state, for the admin's Channels page
        (``EmailChannel.reader_status``): the time of the last round that read
        the mailbox, and the last failure (each language's words, its time, how
        many in a row). Written by the one reader, once a round."""
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        try:
            with self.unit():
                status = dict(self.state.get(STATUS_KEY) or {})
                if error is None:
                    status.update(read_at=now, failures=0)
                else:
                    status.update(error=error, error_at=now, failures=failures)
                status["folder"] = self.folder
                self.state.set(STATUS_KEY, status)
        except Exception:  # noqa: BLE001 - health is best effort; the log has it too
            self.log.debug("e-mail: could not record the mailbox status", exc_info=True)


def _failures_after(failures: int, read: bool) -> int:
    """Failures in a row once a session ended in one. A session that read the
    mailbox first (an IDLE session breaks off rather than return) ends the
    earlier run: counting on from it made a one-second blip after an outage
    wait the outage's back-off (up to ``MAX_BACKOFF``) and show "failing, 7 in
    a row" right after a good read."""
    return 1 if read else failures + 1


def _for_now(exc: BaseException) -> bool:
    """A refusal that says "not now" rather than "not this mail": the service's
    ``unavailable`` (HTTP 503; docs/plugins.md, "Inbound: receive") or the database
    unreachable. Such a mail is never given up on."""
    import peewee
    from playhouse.pool import MaxConnectionsExceeded

    return getattr(exc, "code", None) == "unavailable" or isinstance(
        exc, peewee.OperationalError | peewee.InterfaceError | MaxConnectionsExceeded)
