"""docs/plugins.md's ``actor_from_request`` example, run as written.

The guide said the hook must return a ``meiqia.models.Agent`` row but never how
to get one. Its example (a single sign-on proxy that signs the agent's email) is
taken from the guide itself, dropped into ``instance/plugins/`` and loaded as a
server loads it: the agent it returns is the request's actor, within his team,
only while active, with the scope the plugin set.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from pathlib import Path

import pytest

from meiqia.models import Agent
from meiqia.testing.api import ADMIN_PASSWORD
from tests.conftest import close_app
from tests.conftest import make_app
from tests.helpers import ApiClient

DOC = Path(__file__).resolve().parents[2] / "docs" / "plugins.md"
SECRET = "sso-shared-secret"


def example() -> str:
    """The python block that follows the example's file name in the guide."""
    text = DOC.read_text(encoding="utf-8")
    found = re.search(r"`instance/plugins/sso_header\.py`.*?```python\n(.*?)```", text, re.S)
    assert found, "docs/plugins.md lost the actor_from_request example"
    return found.group(1)


def headers(email: str, stamp: int | None = None, secret: str = SECRET) -> dict[str, str]:
    stamp = int(time.time()) if stamp is None else stamp
    signature = hmac.new(secret.encode(), f"{stamp}.{email}".encode(),
                         hashlib.sha256).hexdigest()
    return {"X-SSO-Email": email, "X-SSO-Timestamp": str(stamp), "X-SSO-Signature": signature}


@pytest.fixture
def app(tmp_path):
    plugins = tmp_path / "instance" / "plugins"
    plugins.mkdir(parents=True)
    (plugins / "sso_header.py").write_text(example(), encoding="utf-8")
    app = make_app(tmp_path, SSO_SECRET=SECRET, SSO_TEAM_ID=0, OPEN_REGISTRATION=True)
    with app.app_context():
        assert app.extensions["meiqia.plugins"].get_plugin("instance:sso_header") is not None
        yield app
    close_app(app)


def test_the_guides_sso_example_returns_the_teams_active_agent(app):
    admin = ApiClient.registered(app)
    admin.new_agent(name="李客服", email="li@example.com")
    app.config["SSO_TEAM_ID"] = str(admin.team["id"])  # text, as from MEIQIA_SSO_TEAM_ID
    other_team = app.test_client().post("/api/v1/auth/register", json={
        "team_name": "别的团队", "name": "赵管理", "email": "zhao@example.com",
        "password": ADMIN_PASSWORD})
    assert other_team.status_code == 201, other_team.get_json()
    client = app.test_client()

    me = client.get("/api/v1/me", headers=headers("LI@example.com"))
    assert me.status_code == 200, me.get_json()
    assert me.get_json()["agent"]["email"] == "li@example.com"
    listed = client.get("/api/v1/conversations", headers=headers("li@example.com"))
    assert listed.status_code == 200, listed.get_json()
    # The scope the plugin set (docs/security.md §8): every GET, the admin's too (the
    # example's comment said "not the admin pages"), and no write only admins make.
    assert client.get("/api/v1/plugins", headers=headers("admin@example.com")
                      ).status_code == 200
    admin_only = client.patch("/api/v1/team", headers=headers("admin@example.com"),
                              json={"settings": {"bot_enabled": False}})
    assert admin_only.status_code == 403, admin_only.get_json()
    # Worded for what signed the request in: no API token was sent (found by a
    # plugin author: it said "this API token's scope (conversations)…").
    assert admin_only.get_json()["error"]["message"] == (
        "the scope plugin instance:sso_header gave this request (conversations) does not "
        "allow this: it needs admin")
    in_chinese = client.patch("/api/v1/team", json={"settings": {"bot_enabled": False}},
                              headers={**headers("admin@example.com"), "X-Meiqia-Lang": "zh-CN"})
    assert in_chinese.get_json()["error"]["message"] == (
        "插件 instance:sso_header 给此请求的权限范围（conversations）不允许此操作：需要 admin")
    tokens = client.get("/api/v1/tokens", headers=headers("li@example.com"))
    assert tokens.status_code == 403, tokens.get_json()
    assert tokens.get_json()["error"]["message"] == (
        "a request signed in by plugin instance:sso_header may not do this: sign in with "
        "your password")

    refused = {
        "another team's agent": headers("zhao@example.com"),
        "a wrong signature": headers("li@example.com", secret="guessed"),
        "an old signature": headers("li@example.com", stamp=int(time.time()) - 3600),
        "no sign-on at all": {},
    }
    for why, given in refused.items():
        response = client.get("/api/v1/conversations", headers=given)
        assert response.status_code == 401, (why, response.get_json())

    Agent.update(active=False).where(Agent.email == "li@example.com").execute()
    gone = client.get("/api/v1/conversations", headers=headers("li@example.com"))
    assert gone.status_code == 401, gone.get_json()
