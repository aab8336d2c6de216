"""``GET /healthz``: database, hub and queue, for load balancers and monitors."""

from __future__ import annotations

from typing import Any

from flask import Blueprint
from flask import current_app
from flask import jsonify

from meiqia import migrations
from meiqia.db import database

bp = Blueprint("health", __name__)


def database_health() -> dict[str, Any]:
    try:
        database.execute_sql("SELECT 1")
        todo = migrations.pending(database.obj)
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        return {"ok": False, "error": str(exc).strip()}
    backend = "postgresql" if "postgres" in type(database.obj).__name__.lower() else "sqlite"
    if todo:
        return {
            "ok": False,
            "backend": backend,
            "error": f"{len(todo)} migration(s) pending: run `meiqia db upgrade`",
        }
    return {"ok": True, "backend": backend}


@bp.get("/healthz")
def healthz() -> Any:
    checks = {
        "database": database_health(),
        "hub": current_app.extensions["meiqia.hub"].health(),
        "queue": current_app.extensions["meiqia.jobs"].health(),
    }
    ok = all(check["ok"] for check in checks.values())
    # A plugin that fails or is suspended degrades the service but does not make
    # it unhealthy (still 200): the runtime keeps it off the chat's path.
    from meiqia.services.plugin_admin import degraded

    checks["plugins"] = degraded()
    # No live `meiqia worker` (rq): jobs are recorded and wait, nothing is lost,
    # but nothing runs them either: degraded, with the reason under "queue".
    slow = checks["plugins"]["degraded"] or checks["queue"].get("degraded")
    status = "unhealthy" if not ok else "degraded" if slow else "ok"
    response = jsonify({"status": status, **checks})
    response.status_code = 200 if ok else 503
    return response
