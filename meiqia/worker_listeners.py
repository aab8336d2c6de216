"""When a gunicorn worker's own listening socket (``reuse_port``) takes part in the
kernel's balancing: only while the worker can serve.

With ``SO_REUSEPORT`` the kernel hashes each new connection to one of the sockets
listening on the port, whether or not its process accepts. gunicorn's worker binds
and listens right after the fork, seconds before the app (and the bot's indexes) are
loaded, so after a crash or a deploy about half the new connections waited in the
backlog of a worker still booting, for as long as it booted (docs/deploy.md §3). And
on a deploy (SIGHUP) the old workers stopped listening at once, leaving only
sockets whose workers were still booting.

So, hooks of ``meiqia/gunicorn_conf.py``:

- ``unlisten`` (``post_fork``): the new worker's socket leaves the group at once
  (``shutdown(SHUT_RD)`` on a listening socket: it stays bound, stops listening);
- ``listen`` (``post_worker_init``, the app loaded): it joins again, and the worker
  is recorded ready;
- a worker told to stop (SIGTERM: a deploy, fewer workers, a shutdown) keeps serving
  while another worker is still booting (a deploy's replacements), up to the boot
  limit (gunicorn's ``timeout``), and only then stops as gunicorn does (its listening
  socket closed first, the requests in progress finished).

The master keeps a small record of each worker's state (``Record``): a file per
worker in a directory of its own, ``booting`` from ``pre_fork``, ``ready`` and
``leaving`` as the worker writes them, removed by ``child_exit``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import tempfile
import threading
import time
from typing import Any

BOOTING = "booting"
READY = "ready"
LEAVING = "leaving"

#: How often a stopping worker looks whether its replacements are up.
_POLL_SECONDS = 0.1


def per_worker_sockets(cfg: Any) -> bool:  # noqa: ANN401 - gunicorn's Config
    """Whether each worker binds a socket of its own (gunicorn's own condition)."""
    return bool(cfg.reuse_port) and hasattr(socket, "SO_REUSEPORT")


class Record:
    """Each worker's state, in files a worker and the master both see (one per
    worker age, gunicorn's unique number for each worker it spawns)."""

    def __init__(self, path: str) -> None:
        self.path = path

    @classmethod
    def create(cls, parent: str | None = None) -> Record:
        """A new record named by this master's pid. Records of masters that are
        gone (killed with SIGKILL: ``on_exit`` never ran) are removed first, so a
        host that restarts gunicorn that way does not gather them."""
        parent = parent or tempfile.gettempdir()
        remove_orphans(parent)
        return cls(tempfile.mkdtemp(prefix=f"{_PREFIX}{os.getpid()}-", dir=parent))

    def set(self, age: int, state: str, pid: int = 0) -> None:
        """Write atomically: a reader sees the old state or the new, never half.
        ``pid``: the worker's, once known (the master writes ``booting`` before
        the fork)."""
        tmp = os.path.join(self.path, f".{age}.{os.getpid()}")
        with open(tmp, "w") as f:
            f.write(f"{state} {pid}")
        os.replace(tmp, os.path.join(self.path, str(age)))

    def drop(self, age: int) -> None:
        try:
            os.unlink(os.path.join(self.path, str(age)))
        except FileNotFoundError:
            pass

    def booting(self, but: int) -> bool:
        """Whether a worker other than ``but`` is still booting. One whose process
        is gone counts no more: gunicorn's master stops on a worker that failed to
        boot without calling ``child_exit``."""
        for age, (state, pid) in self.states().items():
            if age != but and state == BOOTING and (not pid or _exists(pid)):
                return True
        return False

    def states(self) -> dict[int, tuple[str, int]]:
        found = {}
        try:
            names = os.listdir(self.path)
        except FileNotFoundError:
            return {}
        for name in names:
            if not name.isdigit():
                continue
            try:
                with open(os.path.join(self.path, name)) as f:
                    state, _, pid = f.read().partition(" ")
                found[int(name)] = (state, int(pid or 0))
            except FileNotFoundError:
                continue  # gone between the listing and the read
        return found

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


_PREFIX = "meiqia-workers-"


def remove_orphans(parent: str) -> list[str]:
    """Remove the records in ``parent`` whose master process no longer exists;
    returns their paths. A record of another user's master, or one named the old
    way (no pid), is left alone."""
    removed = []
    try:
        names = os.listdir(parent)
    except OSError:
        return removed
    for name in names:
        pid, dash, _ = name.removeprefix(_PREFIX).partition("-")
        if not name.startswith(_PREFIX) or not dash or not pid.isdigit():
            continue
        path = os.path.join(parent, name)
        try:
            if os.stat(path).st_uid != os.getuid() or _exists(int(pid)):
                continue
        except OSError:
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _tcp(listener: Any) -> bool:  # noqa: ANN401 - gunicorn's or gevent's socket
    return listener.family in (socket.AF_INET, socket.AF_INET6)


def unlisten(worker: Any, record: Record) -> None:  # noqa: ANN401 - gunicorn's worker
    """Take a just-forked worker's sockets out of the kernel's balancing until it
    can serve. Linux stops a listening socket with ``shutdown(SHUT_RD)`` and keeps
    it bound (``listen`` starts it again); where that fails the socket stays as
    gunicorn made it."""
    for listener in worker.sockets:
        if _tcp(listener):
            try:
                listener.shutdown(socket.SHUT_RD)
            except OSError:
                pass
    record.set(worker.age, BOOTING, os.getpid())


def listen(worker: Any, record: Record) -> None:  # noqa: ANN401 - gunicorn's worker
    """The app is loaded: join the balancing, say so, and stop later only once the
    workers booting meanwhile can serve (``_leave_when_replaced``)."""
    for listener in worker.sockets:
        if _tcp(listener):
            listener.listen(worker.cfg.backlog)
    record.set(worker.age, READY if worker.alive else LEAVING, os.getpid())
    _leave_when_replaced(worker, record)


def _leave_when_replaced(worker: Any, record: Record) -> None:  # noqa: ANN401
    """SIGTERM (gunicorn's graceful stop) is deferred while another worker boots.

    The handler only sets an event (it may run inside gevent's hub, where nothing
    may block); a thread (a greenlet under gevent) waits for it, then for the
    booting workers, then calls gunicorn's own handler."""
    told = threading.Event()
    stop = worker.handle_exit

    def on_term(signum: int, frame: Any) -> None:  # noqa: ANN401 - signal's frame
        told.set()

    def wait() -> None:
        told.wait()
        record.set(worker.age, LEAVING, os.getpid())
        deadline = time.monotonic() + worker.cfg.timeout
        while time.monotonic() < deadline and record.booting(but=worker.age):
            time.sleep(_POLL_SECONDS)
        stop(signal.SIGTERM, None)

    threading.Thread(target=wait, name="meiqia-leave-when-replaced", daemon=True).start()
    signal.signal(signal.SIGTERM, on_term)
    # As gunicorn sets it: a SIGTERM does not interrupt a system call in progress.
    signal.siginterrupt(signal.SIGTERM, False)
