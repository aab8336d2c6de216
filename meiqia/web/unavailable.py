"""503 instead of 500 when a backing server is busy or unreachable.

The database locked by another writer past the busy timeout, a PostgreSQL
connection cut, Redis down when a job must be queued: none of these is a bug in
the request, and the client should try again. They answer ``503`` with a
``Retry-After`` and the usual error body (``code`` ``unavailable``), so a widget
or an integration can retry (messages are idempotent by ``client_msg_id``), and
a load balancer does not mistake them for a broken release.
"""

from __future__ import annotations

import logging
from typing import Any

import peewee
from flask import Flask
from flask import jsonify
from flask import request

from meiqia.db import database
from meiqia.web import error_text
from meiqia.web import i18n

log = logging.getLogger(__name__)

RETRY_AFTER = "2"


def _answer(what: str, exc: Exception) -> Any:
    log.warning("%s %s: %s unavailable: %s", request.method, request.path, what, exc)
    if request.endpoint == "health.healthz":
        # The connection failed before the view ran (per-request connect): let
        # the health check itself say what is down, with its usual body.
        from meiqia.web.health import healthz

        return healthz()
    message = f"the {what} is busy or unreachable; try again in a moment"
    if request.path.startswith("/api/"):
        # In the asker's language, chosen without the database (it may be what is down).
        error = error_text.localise({"code": "unavailable", "message": message, "field": None},
                                    i18n.error_language(agent_preference=False))
        response = jsonify({"error": error})
    else:
        response = Flask.response_class(message + "\n", mimetype="text/plain")
    response.status_code = 503
    response.headers["Retry-After"] = RETRY_AFTER
    return response


def init_app(app: Flask) -> None:
    import redis

    @app.errorhandler(peewee.OperationalError)
    @app.errorhandler(peewee.InterfaceError)
    def _database(exc: Exception) -> Any:
        # A connection the server cut must not go back to the pool.
        db = database.obj
        if hasattr(db, "manual_close") and not database.is_closed():
            try:
                db.manual_close()
            except Exception:  # noqa: BLE001 - it is broken already
                pass
        return _answer("database", exc)

    @app.errorhandler(redis.exceptions.ConnectionError)
    @app.errorhandler(redis.exceptions.TimeoutError)
    def _redis(exc: Exception) -> Any:
        return _answer("job queue (Redis)", exc)
