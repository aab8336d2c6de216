"""/healthz and the OpenAPI document."""

from __future__ import annotations

from tests.conftest import close_app
from tests.conftest import make_app


def test_healthz_ok_on_the_embedded_default(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    data = response.get_json()
    assert data["status"] == "ok"
    assert data["database"] == {"ok": True, "backend": "sqlite"}
    assert data["hub"]["kind"] == "memory" and data["queue"]["kind"] == "thread"


def test_healthz_reports_postgres_and_redis(tmp_path, pg_database_url, redis_url, redis_prefix):
    app = make_app(tmp_path, DATABASE_URL=pg_database_url, REDIS_URL=redis_url,
                   REDIS_PREFIX=redis_prefix, JOBS_INLINE=False)
    try:
        data = app.test_client().get("/healthz").get_json()
        assert data["database"]["backend"] == "postgresql"
        assert data["hub"]["kind"] == "redis" and data["hub"]["ok"]
        assert data["queue"]["kind"] == "rq" and data["queue"]["ok"]
    finally:
        close_app(app)


def test_healthz_unhealthy_when_redis_is_unreachable(tmp_path):
    app = make_app(tmp_path, REDIS_URL="redis://127.0.0.1:1/0", JOBS_INLINE=False,
                   REDIS_TIMEOUT=0.2)
    try:
        response = app.test_client().get("/healthz")
        assert response.status_code == 503
        data = response.get_json()
        assert data["status"] == "unhealthy"
        assert data["database"]["ok"] and not data["hub"]["ok"] and not data["queue"]["ok"]
    finally:
        close_app(app)


def test_healthz_reports_pending_migrations(tmp_path):
    from meiqia import create_app
    from tests.conftest import base_config

    app = create_app(base_config(tmp_path), instance_path=str(tmp_path / "i"))
    try:
        response = app.test_client().get("/healthz")
        assert response.status_code == 503
        assert "meiqia db upgrade" in response.get_json()["database"]["error"]
    finally:
        close_app(app)


def test_openapi_lists_every_api_route(app, client):
    doc = client.get("/api/v1/openapi.json").get_json()
    assert doc["openapi"].startswith("3.")
    documented = {
        (path, method.upper()) for path, item in doc["paths"].items() for method in item
    }
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1/"):
            continue
        path = "/api/v1" + rule.rule[len("/api/v1"):]
        for converter in ("int:", "path:", "string:"):
            path = path.replace("<" + converter, "<")
        path = path.replace("<", "{").replace(">", "}")
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert (path, method) in documented, (path, method)
    register = doc["paths"]["/api/v1/auth/register"]["post"]
    assert "password" in register["requestBody"]["content"]["application/json"]["schema"]["properties"]


def test_unknown_api_route_is_json_404(client):
    response = client.get("/api/v1/nope")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"
