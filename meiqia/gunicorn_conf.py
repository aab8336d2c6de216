"""gunicorn settings for meiqia behind a reverse proxy.

The worker class is chosen by measurement (docs/benchmarks.md, "Websocket
load"): websockets hold a connection each for as long as a visitor's page is
open, so the worker must hold thousands of idle sockets cheaply and switch
between them without a thread each.

- **gevent** on PostgreSQL (the production database): 2,050 sockets in one
  process at about 66 KB each, 300 messages/s with p95 in the tens of
  milliseconds. psycopg2 waits cooperatively (psycogreen, ``post_fork``), and
  socket frames take turns for the connection pool (``WS_DB_CONCURRENCY``).
- **gthread** on SQLite: SQLite's lock wait is a C sleep that would block a
  gevent worker's whole event loop, so a SQLite deployment keeps one OS thread
  per socket (``MEIQIA_THREADS`` at least the sockets a process holds).

``MEIQIA_WORKER_CLASS``, ``MEIQIA_WORKERS``, ``MEIQIA_THREADS`` and
``MEIQIA_WORKER_CONNECTIONS`` override the defaults; ``MEIQIA_BIND`` is the address
gunicorn listens on (default ``127.0.0.1:8000``).

Here in the package, so every install has it (a ``pip install`` without the source
tree too): ``gunicorn -c python:meiqia.gunicorn_conf meiqia.wsgi:app``. The source
tree's ``deploy/gunicorn.conf.py`` imports this module, for commands that name it.
"""

import os
import runpy


def _database_url() -> str:
    """The database URL as meiqia will see it: the environment, else the
    instance's config.py, else the SQLite default."""
    url = os.environ.get("MEIQIA_DATABASE_URL", "")
    if url:
        return url
    instance = os.environ.get("MEIQIA_INSTANCE_PATH") or os.path.join(os.getcwd(), "instance")
    path = os.path.join(instance, "config.py")
    if os.path.exists(path):
        return str(runpy.run_path(path).get("DATABASE_URL") or "")
    return ""


_POSTGRES = _database_url().startswith(("postgres://", "postgresql://", "postgresext://"))

bind = os.environ.get("MEIQIA_BIND", "127.0.0.1:8000")
worker_class = os.environ.get("MEIQIA_WORKER_CLASS", "gevent" if _POSTGRES else "gthread")
workers = int(os.environ.get("MEIQIA_WORKERS", "2"))
# gthread: one thread per open websocket, so threads bound the sockets a worker holds.
threads = int(os.environ.get("MEIQIA_THREADS", "200"))
# The most connections one worker serves at once: requests and open websockets
# (under gevent, only requests and socket handshakes: an open websocket is served
# after its request returned, unless WS_SERVE_AFTER_REQUEST is false).
worker_connections = int(os.environ.get("MEIQIA_WORKER_CONNECTIONS", "10000"))
# The worker's heartbeat comes from its main loop (gthread, gevent), not from
# requests, so long-lived websockets do not trip this; a hung worker still does.
# Each worker listens on a socket of its own (SO_REUSEPORT) and the kernel
# spreads new connections over them evenly. With the one shared socket, the
# worker that accepted last is the one woken next: in the 2 x gevent benchmark
# one worker held 1,700 of 2,050 websockets (1,335 frames queued for its
# database turns) while the other held 340 and idled, for as long as the
# sockets stayed open (docs/benchmarks.md). ``MEIQIA_REUSE_PORT=0`` turns it off.
# A worker's socket takes part only while the worker can serve: from the end of its
# boot until its replacements have booted (``meiqia/worker_listeners.py``).
reuse_port = os.environ.get("MEIQIA_REUSE_PORT", "1") not in {"0", "false", "no"}
timeout = 60
graceful_timeout = 30
keepalive = 5
#: gunicorn 25+ opens a control socket (for ``gunicornc``) at one path per user,
#: ``~/.gunicorn/gunicorn.ctl``: a second instance on the host took the first's. We
#: control gunicorn by signals (docs/deploy.md), so none is opened.
control_socket_disable = True
forwarded_allow_ips = os.environ.get("MEIQIA_FORWARDED_ALLOW_IPS", "127.0.0.1")
accesslog = "-"


def _redact_access_log() -> None:
    """Visitor and API tokens in URLs (``?token=``, ``?api_token=``) must not reach
    the access log: ``meiqia.log_redaction`` rewrites every record as it is made,
    in the master and (inherited through the fork) in every worker."""
    from meiqia import log_redaction

    log_redaction.install()


_redact_access_log()


def _where(address) -> str:  # noqa: ANN001 - gunicorn's parsed bind: (host, port), path or fd
    """One bound address as gunicorn writes its listeners (``http://host:port``)."""
    if isinstance(address, tuple):
        host, port = address[0], address[1]
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
    if isinstance(address, int):
        return f"fd://{address}"
    return f"unix:{address}"


class _ListeningAt:
    """Fills in gunicorn's ``Listening at: %s (pid)`` line when the master holds no
    socket: with ``reuse_port`` each worker binds its own after the fork, so the
    master would log an empty address (``Listening at:  (15648)``)."""

    def __init__(self, addresses: list) -> None:
        self.where = ",".join(_where(a) for a in addresses)

    def filter(self, record):  # noqa: ANN001, ANN201 - logging's filter protocol
        if (record.msg == "Listening at: %s (%s)" and isinstance(record.args, tuple)
                and len(record.args) == 2 and not record.args[0]):
            record.msg = "Listening at: %s (%s; a socket per worker, SO_REUSEPORT)"
            record.args = (self.where, record.args[1])
        return True


#: The workers' states (``meiqia.worker_listeners.Record``), made by the master in
#: ``on_starting`` when each worker binds a socket of its own; inherited by the workers.
_workers = None


def on_starting(server):  # noqa: ANN001, ANN201 - gunicorn's hook signature
    """Make the start-up line name the address with ``reuse_port`` too (see
    ``_ListeningAt``), and start the record of which worker can serve."""
    import logging

    from meiqia import worker_listeners

    global _workers
    logging.getLogger("gunicorn.error").addFilter(_ListeningAt(server.cfg.address))
    if worker_listeners.per_worker_sockets(server.cfg):
        _workers = worker_listeners.Record.create(server.cfg.worker_tmp_dir)


def on_exit(server):  # noqa: ANN001, ANN201 - gunicorn's hook signature
    """The master's last act: remove the workers' record."""
    if _workers is not None:
        _workers.remove()


def pre_fork(server, worker):  # noqa: ANN001, ANN201 - gunicorn's hook signature
    """A worker is booting from now: a stopping one waits for it (``worker_listeners``)."""
    if _workers is not None:
        from meiqia import worker_listeners

        _workers.set(worker.age, worker_listeners.BOOTING)


def post_fork(server, worker):  # noqa: ANN001, ANN201 - gunicorn's hook signature
    """First, take the new worker's own socket (``reuse_port``) out of the kernel's
    balancing until its app is loaded (``post_worker_init``): gunicorn has just made
    it listen, and connections hashed to it would wait out the boot.

    Under gevent, make psycopg2 wait cooperatively (psycogreen): without it one slow
    PostgreSQL query blocks every websocket of the worker.
    """
    if _workers is not None:
        from meiqia import worker_listeners

        worker_listeners.unlisten(worker, _workers)
    if "gevent" in server.cfg.worker_class_str:
        from psycogreen.gevent import patch_psycopg

        patch_psycopg()


def post_worker_init(worker):  # noqa: ANN001, ANN201 - gunicorn's hook signature
    """The app is loaded: the worker's own socket joins the kernel's balancing, and a
    SIGTERM later waits for the workers booting meanwhile (``worker_listeners``)."""
    if _workers is not None:
        from meiqia import worker_listeners

        worker_listeners.listen(worker, _workers)


def child_exit(server, worker):  # noqa: ANN001, ANN201 - gunicorn's hook signature
    """Prometheus multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``, docs/deploy.md):
    a dead worker's open-socket gauge must stop counting. The worker leaves the
    record of workers that can serve."""
    if _workers is not None:
        _workers.drop(worker.age)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


def worker_exit(server, worker):  # noqa: ANN001, ANN201 - gunicorn's hook signature
    """Close the worker's detached websockets before it exits (a deploy, a restart).

    Under gevent (``WS_SERVE_AFTER_REQUEST``, on by default) a socket is served after its
    request has returned (``meiqia/web/detached_sockets.py``), so the worker's
    graceful stop does not wait for it: each is closed here with 1001 after its
    presence and subscription are undone, and its client reconnects to another
    worker with its position, missing nothing. Nothing to do otherwise."""
    import sys

    if "meiqia.web.detached_sockets" in sys.modules:
        from meiqia.web import detached_sockets

        detached_sockets.close_all(timeout=min(10.0, float(server.cfg.graceful_timeout)))
