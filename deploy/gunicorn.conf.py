"""gunicorn settings for meiqia behind a reverse proxy.

The worker class is chosen by measurement (docs/benchmarks.md, "websocket
load"): websockets hold a connection each for as long as a visitor's page is
open, so the worker must hold thousands of idle sockets cheaply.
"""

import os

bind = os.environ.get("MEIQIA_BIND", "127.0.0.1:8000")
worker_class = os.environ.get("MEIQIA_WORKER_CLASS", "gthread")
workers = int(os.environ.get("MEIQIA_WORKERS", "2"))
# gthread: one thread per open websocket, so threads bound the sockets a worker holds.
threads = int(os.environ.get("MEIQIA_THREADS", "200"))
worker_connections = int(os.environ.get("MEIQIA_WORKER_CONNECTIONS", "2000"))
# The worker's heartbeat comes from its main loop (gthread, gevent), not from
# requests, so long-lived websockets do not trip this; a hung worker still does.
timeout = 60
graceful_timeout = 30
keepalive = 5
forwarded_allow_ips = os.environ.get("MEIQIA_FORWARDED_ALLOW_IPS", "127.0.0.1")
accesslog = "-"


def post_fork(server, worker):  # noqa: ANN001, ANN201 - gunicorn's hook signature
    """Under gevent, make psycopg2 wait cooperatively (psycogreen).

    Without it one slow PostgreSQL query blocks every websocket of the worker.
    """
    if "gevent" in server.cfg.worker_class_str:
        from psycogreen.gevent import patch_psycopg

        patch_psycopg()
