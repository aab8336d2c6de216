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

- **gunicorn** and gevent's WSGI server (``meiqia run``) close the
  connection's socket when the request returns, so the socket is served on
  the connection's descriptor taken out of the server's socket object
  (``prepare``, ``socket.detach``), before anything writes to it: the server's
  close is then a no-op.
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
- **On by default** (``WS_SERVE_AFTER_REQUEST``; False serves in the request).
  It was off for one stop: ``benchmarks/ws_faults.py`` reported an agent socket
  that stopped receiving messages after its Redis outage, in 3 runs of 3 with
  it on. The cause was the benchmark's client, not this module: it sent no
  ``ping``, so an agent who wrote nothing showed no sign of life for 75 s, the
  presence sweep marked him away and his chats went back to the queue (to other
  agents). With the client pinging as docs/protocol.md asks: 0 undelivered and
  no agent away in every phase, with it on (docs/benchmarks.md).
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
    """Whether this socket can and may be served after its request returns
    (``WS_SERVE_AFTER_REQUEST``, on by default: see meiqia/config.py)."""
    from flask import current_app

    return (bool(current_app.config.get("WS_SERVE_AFTER_REQUEST"))
            and getattr(ws, "mode", None) in _MODES and embedded_server.is_patched())


def prepare(ws: Any) -> bool:
    """Make ``ws`` servable after its request; whether it is.

    Called before anything reads or writes the socket after the handshake: the
    websocket then uses a socket object of its own on the connection's
    descriptor, which the server's close at the request's end does not touch
    (``_server_socket``). The WSGI environ the socket kept is dropped either
    way (the request is over once the handshake is)."""
    environ, ws.environ = ws.environ, None
    if not possible(ws):
        return False
    server_socket = _server_socket(ws, environ)
    if server_socket is None:
        return False
    if server_socket is not ws.sock:
        ws.sock.close()  # gevent's mode: simple-websocket's duplicate, not needed now
    ws.sock = type(server_socket)(server_socket.family, server_socket.type,
                                  server_socket.proto, fileno=server_socket.detach())
    return True


def _server_socket(ws: Any, environ: dict | None) -> Any:
    """The server's own socket object of the connection (gunicorn's, or the one
    gevent's WSGI handler read the request from), or None if it is not found.

    The socket is served on the connection's descriptor taken from that object
    (``detach``): the server's close at the request's end is then a no-op, and
    the descriptor stays the one the event loop knows. Serving on a duplicate
    instead (what simple-websocket does under gevent's server, and this
    module's first version under gunicorn) cost 10-25 % more CPU per message at
    300 msg/s in four of five paired runs of ``benchmarks/ws_load.py``
    (docs/benchmarks.md); the likely cause, not proven: the closed original's
    descriptor stays in the event loop's epoll set for as long as the duplicate
    keeps the connection open."""
    if ws.mode == "gunicorn":
        return ws.sock
    wsgi_input = (environ or {}).get("wsgi.input")
    if not hasattr(wsgi_input, "raw") and hasattr(wsgi_input, "rfile"):
        wsgi_input = wsgi_input.rfile
    return getattr(getattr(wsgi_input, "raw", None), "_sock", None)


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
