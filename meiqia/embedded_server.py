"""The server of ``meiqia run``: gevent's WSGI server, one process, SQLite.

Why gevent and not Werkzeug's threaded server (issue 19, docs/benchmarks.md):
a websocket on the threaded server holds three OS threads (the request, the
simple-websocket reader, our pump), 124 KB each socket, and at 300 messages/s
the threads' switching and the GIL's hand-offs pushed the delivery p99 past
200 ms. Under gevent the same three are greenlets on one thread: a socket costs
a few stacks of a few KB, and a switch is a function call. gevent is installed
already (the production worker class), so ``meiqia run`` still needs no server
of any kind.

What gevent asks of us:

- ``threading``, ``socket``, ``ssl``, ``time`` must be patched before anything
  imports them, ``ssl`` above all (Flask imports it through http.client).
  ``patch_if_serving`` is the first thing ``meiqia/__init__.py`` does, and only
  for ``meiqia run`` (not ``--dev``, whose reloader wants threads, nor any other
  command, nor a test process that imports meiqia).
- SQLite waits for another writer in a C loop that no greenlet can leave, so
  writers take turns on a (patched, hence cooperative) lock before they ask
  SQLite (``db._WriterTurn``).

``meiqia run`` started without the patch (click's test runner calls the command
in a plain process) serves with Werkzeug's threaded server as before.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

#: What ``sys.argv[0]`` is when this process runs the ``meiqia`` command: the
#: console script, or ``python -m meiqia.cli`` (``-m`` while the package loads).
_COMMAND_NAMES = ("meiqia", "meiqia.exe", "meiqia-script.py", "-m", "cli.py")


def wants_gevent(argv: list[str]) -> bool:
    """Tell whether this process is ``meiqia run`` serving with gevent."""
    if not argv or os.path.basename(argv[0]) not in _COMMAND_NAMES:
        return False
    args = argv[1:]
    return (bool(args) and args[0] == "run" and "--dev" not in args
            and "-h" not in args and "--help" not in args
            and os.environ.get("MEIQIA_EMBEDDED_SERVER", "gevent") == "gevent")


def patch_if_serving(argv: list[str] | None = None) -> bool:
    """Monkey-patch the standard library for gevent when this process is
    ``meiqia run``; must run before Flask (and so ssl) is imported."""
    if not wants_gevent(sys.argv if argv is None else argv):
        return False
    from gevent import monkey

    monkey.patch_all()
    return True


def is_patched() -> bool:
    """Whether gevent patched this process (then ``meiqia run`` serves with it)."""
    if "gevent" not in sys.modules:
        return False
    from gevent import monkey

    return monkey.is_module_patched("socket") and monkey.is_module_patched("threading")


def start_worker(target: Any) -> Any:
    """Run ``target`` in the background and return at once, with a handle that has
    ``join(timeout)``: a greenlet when gevent patched this process, else a daemon
    thread.

    A patched ``Thread.start`` waits until the new thread has run, which under
    gevent is a trip through every greenlet ready to run. A socket's pump is
    started by whoever publishes the event (the in-process hub fans out in the
    publisher's greenlet, the Redis hub in its listener): the first message of a
    chat woke 50 agents' pumps, its publisher queued 50 times behind the other
    2,000 sockets while it held a database turn, and the embedded server's turns
    all went to waiting (issue 19, the greenlet dump of the embedded run).
    ``gevent.spawn`` only schedules the greenlet.
    """
    if is_patched():
        import gevent

        return gevent.spawn(target)
    import threading

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


def is_current(worker: Any) -> bool:
    """Whether ``worker`` (from ``start_worker``) is the one running this code."""
    import threading

    if worker is threading.current_thread():
        return True
    if "gevent" in sys.modules:
        import gevent

        return worker is gevent.getcurrent()
    return False


def bounded_semaphore(value: int) -> Any:
    """A bounded semaphore that waits well in this process: gevent's own when
    ``threading`` is patched (``meiqia run``, gunicorn's gevent worker), else
    ``threading``'s.

    The patch does not replace ``threading.Semaphore``: it stays Python code on a
    Condition whose lock every waiter retakes when its wait ends. With hundreds
    of socket greenlets waiting at once (the socket gate at 300 messages/s),
    a holder's ``release`` queued behind all of them for that lock, the holders
    could not give their turns back, and frames timed out in line
    ("too many socket frames are waiting for the database") while the process
    sat idle (issue 19's profile: 290 greenlets waiting, 0.28 cores busy).
    gevent's semaphore wakes its waiters in order without that lock.
    """
    if is_patched():
        from gevent.lock import BoundedSemaphore

        return BoundedSemaphore(value)
    import threading

    return threading.BoundedSemaphore(value)


#: gevent's reply to a request line over its 8 KB limit, with a body that says so.
_URI_TOO_LONG_BODY = json.dumps({"error": {
    "code": "uri_too_long", "field": None,
    "message": "网址太长：请求行最多 8,192 个字节",
    "message_en": "the URL is too long: a request line holds at most 8,192 bytes"}},
    ensure_ascii=False).encode()
_URI_TOO_LONG = (b"HTTP/1.1 414 Request-URI Too Long\r\nConnection: close\r\n"
                 b"Content-Type: application/json; charset=utf-8\r\n"
                 b"Content-Length: " + str(len(_URI_TOO_LONG_BODY)).encode() + b"\r\n\r\n"
                 + _URI_TOO_LONG_BODY)


def make_server(host: str, port: int, app: Any) -> Any:
    """gevent's WSGI server for ``app``, bound (not yet serving): ``server_port``
    is the port it took. Requests are logged through the ``meiqia.access``
    logger, whose records pass the token redaction like every other."""
    import logging

    from gevent.pywsgi import WSGIHandler
    from gevent.pywsgi import WSGIServer

    class Handler(WSGIHandler):
        """After a websocket handshake, the connection is the socket's: no HTTP
        follows, and this handler never reads it again.

        The socket is served on a duplicate of the connection (simple-websocket),
        or, by default (``WS_SERVE_AFTER_REQUEST``), after the request has returned on
        the connection's descriptor taken out of this handler's socket object
        (``meiqia/web/detached_sockets.py``). gevent's handler would then read
        what the client sends as a next request, and before closing its socket
        it reads it once more "to prevent a reset": either eats the client's
        first frames (a ping sent right after ``hello`` was lost). Its socket is
        let go here, unread (closing a detached socket object closes nothing)."""

        def handle_one_request(self) -> Any:
            # gevent answers a request line over 8 KB with an empty 414 before any
            # header is read; ours says what is wrong, in both languages (no
            # Accept-Language has been read), in the API's error shape.
            result = super().handle_one_request()
            if isinstance(result, tuple) and result[0] == "414":
                return "414", _URI_TOO_LONG
            return result

        def run_application(self) -> None:
            try:
                super().run_application()
            finally:
                if self.environ.get("HTTP_UPGRADE", "").lower() == "websocket":
                    self.close_connection = True
                    sock, self.socket = self.socket, None
                    if sock is not None:
                        sock.close()

    access = logging.getLogger("meiqia.access")
    if not access.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        access.addHandler(handler)
        access.setLevel(logging.INFO)
        access.propagate = False
    server = WSGIServer((host, port), app, handler_class=Handler, log=access,
                        error_log=logging.getLogger("meiqia.server"))
    server.init_socket()
    return server


def serve(server: Any) -> None:
    """Serve until Ctrl+C or SIGTERM, then stop taking connections and return."""
    import signal

    import gevent
    from gevent.event import Event

    stop = Event()
    # Ctrl+C as a signal handler, not a KeyboardInterrupt: gevent's hub would print
    # the interrupt like an error on its way out.
    gevent.signal_handler(signal.SIGINT, stop.set)
    gevent.signal_handler(signal.SIGTERM, stop.set)
    server.start()
    try:
        stop.wait()
    finally:
        # Open websockets are not waited for: the server's stop ends those served
        # in their request, ``close_all`` those served after it (1001, "going
        # away"); their clients reconnect with ``after=`` and miss nothing
        # (docs/protocol.md).
        server.stop(timeout=1)
        from meiqia.web import detached_sockets

        detached_sockets.close_all(timeout=5)
