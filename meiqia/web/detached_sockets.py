"""Websockets served after their HTTP request has returned (gevent only).

Why (issue 19, part 2): a socket served inside its request keeps, for as long as
it is open, everything the request needed once: the greenlet gunicorn (or
gevent's WSGI server) started for the connection, with its deep saved stack
(gunicorn → Flask → flask-sock → our handler, about 6 KB), the server's
per-connection objects (parser, WSGI environ, pool entry, about 4 KB), Flask's
request and application contexts (about 2 KB). Measured with a bare echo on
two gunicorn gevent workers, 5,000 sockets (``benchmarks/ws_sockets.py``'s
client): 38.9 KB per socket served in the request, 13.5 KB served by a greenlet
of its own started after the handshake. A bare asyncio echo costs 14-16 KB.

How: the handler's connect part (authentication, subscription, ``hello``, the
replay) runs in the request as before; what serves the socket afterwards (the
frame loop) runs in a new greenlet with only the application context, and the
request returns. The new greenlet starts shallow, so its saved stack is small,
and nothing of the request stays referenced.

- **gunicorn** closes the connection's socket when the request returns, so the
  socket is served on a duplicate of it (``prepare``), taken before anything
  writes to it; closing one of two descriptors of a connection does not end
  it. gevent's WSGI server (``meiqia run``) already gives simple-websocket a
  duplicate.
- **flask-sock** closes the websocket when the route function returns. The
  first ``close`` of a detached socket is therefore skipped (``start``): it is
  flask-sock's, made before the new greenlet can run (``gevent.spawn`` only
  schedules it), and the greenlet removes the skip when it starts in any case.
- **Stopping**: a detached socket is no request, so a gunicorn worker's
  graceful stop does not wait for it. ``close_all`` (gunicorn's ``worker_exit``
  hook, the end of ``meiqia run``) stops every such greenlet: each runs its
  handler's ``finally`` (presence, the hub subscription) and closes its socket
  with 1001 ("going away"); the client reconnects with its position and misses
  nothing (docs/protocol.md).
- Without gevent (Werkzeug's threaded server: ``meiqia run --dev``, the test
  servers, gunicorn's gthread worker on SQLite) a socket holds its thread
  anyway, so it is served in the request as before.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from flask import Flask

from meiqia import embedded_server

log = logging.getLogger(__name__)

#: The servers whose request can return while the socket goes on: simple-websocket's
#: ``mode`` for gunicorn's workers and for gevent's WSGI server.
_MODES = frozenset({"gunicorn", "gevent"})
#: The greenlets serving detached sockets in this process (``close_all``).
_live: set[Any] = set()
#: Set by ``close_all``: the process is stopping, sockets close with 1001.
_stopping: list[bool] = []

#: RFC 6455 "going away": the server is stopping (a deploy, a restart).
GOING_AWAY = 1001


def possible(ws: Any) -> bool:
    """Whether this socket can be served after its request returns."""
    return getattr(ws, "mode", None) in _MODES and embedded_server.is_patched()


def prepare(ws: Any) -> bool:
    """Make ``ws`` servable after its request; whether it is.

    Called before anything uses the socket: under gunicorn the websocket then
    reads and writes a duplicate of the connection's socket, which outlives the
    one gunicorn closes when the request returns. The WSGI environ the socket
    kept is dropped either way (the request is over once the handshake is)."""
    ws.environ = None
    if not possible(ws):
        return False
    if ws.mode == "gunicorn":
        ws.sock = ws.sock.dup()
    return True


def stopping() -> bool:
    """Whether this process is stopping (``close_all`` was called)."""
    return bool(_stopping)


def start(app: Flask, ws: Any, serve: Callable[[], None]) -> None:
    """Serve ``ws`` with ``serve`` in a greenlet of its own, with ``app``'s context.

    ``serve`` contains its own errors and closes the socket at its end. The
    caller's request returns right after this."""

    def _skip_flask_socks_close(reason: Any = None, message: Any = None) -> None:
        ws.__dict__.pop("close", None)

    ws.close = _skip_flask_socks_close

    def run() -> None:
        ws.__dict__.pop("close", None)
        try:
            with app.app_context():
                serve()
        finally:
            _live.discard(worker)

    worker = embedded_server.start_worker(run)
    _live.add(worker)


def count() -> int:
    """Detached sockets open in this process."""
    return len(_live)


def close_all(timeout: float = 5.0) -> int:
    """Stop every detached socket of this process (it is exiting); how many.

    Each gets ``GreenletExit`` where it waits: its handler's ``finally`` runs
    (presence, subscription) and it closes with 1001 (``stopping``). Called from
    gunicorn's ``worker_exit`` and when ``meiqia run`` stops."""
    _stopping.append(True)
    workers = list(_live)
    if not workers:
        return 0
    import gevent

    log.info("closing %d open websockets (the process is stopping)", len(workers))
    gevent.killall(workers, block=True, timeout=timeout)
    return len(workers)
