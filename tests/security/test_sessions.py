"""Issue 15, item 3: sessions end on the server, and the cookie holds no password.

The attack: copy the session cookie (a shared computer, a stolen laptop, a
proxy's log); the victim logs out or changes his password; the copy must stop
working, in every process, at once.
"""

from __future__ import annotations

import base64
import json
import zlib
from typing import Any

from meiqia.models import Agent
from meiqia.models import AgentSession
from tests.conftest import close_app
from tests.conftest import make_app
from tests.helpers import ADMIN_PASSWORD
from tests.helpers import ApiClient

NEW_PASSWORD = "新密码-pass-2"


def stolen(api: ApiClient) -> Any:
    """A second browser holding a copy of ``api``'s session cookie."""
    thief = api.app.test_client()
    cookie = api.client.get_cookie("session")
    assert cookie is not None
    thief.set_cookie("session", cookie.value)
    assert thief.get("/api/v1/me").status_code == 200
    return thief


def cookie_data(value: str) -> dict:
    """What anyone holding the cookie can read (Flask signs it, it does not encrypt)."""
    compressed = value.startswith(".")
    payload = value.lstrip(".").split(".")[0]
    raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    return json.loads(zlib.decompress(raw) if compressed else raw)


def test_logout_ends_the_session_for_every_copy_of_the_cookie(api):
    thief = stolen(api)
    assert api.post("/api/v1/auth/logout").status_code == 200
    response = thief.get("/api/v1/me")
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "unauthorized"
    # Pages too: back to the login page.
    assert thief.get("/dashboard").status_code == 302


def test_the_cookie_carries_no_part_of_the_password_hash(api):
    value = api.client.get_cookie("session").value
    data = cookie_data(value)
    assert set(data) - {"_permanent"} == {"sid", "csrf"}
    password_hash = Agent.get_by_id(api.agent["id"]).password_hash
    for size in (6, 8, 12):
        for start in range(0, len(password_hash) - size):
            assert password_hash[start:start + size] not in json.dumps(data)


def test_a_password_change_needs_the_current_password_and_ends_other_sessions(api):
    thief = stolen(api)
    url = f"/api/v1/agents/{api.agent['id']}"
    missing = api.patch(url, json={"password": NEW_PASSWORD})
    assert missing.status_code == 403
    assert missing.get_json()["error"]["field"] == "current_password"
    wrong = api.patch(url, json={"password": NEW_PASSWORD, "current_password": "guess-123"})
    assert wrong.status_code == 403
    assert thief.get("/api/v1/me").status_code == 200  # nothing changed yet

    ok = api.patch(url, json={"password": NEW_PASSWORD, "current_password": ADMIN_PASSWORD})
    assert ok.status_code == 200, ok.get_json()
    assert thief.get("/api/v1/me").status_code == 401
    # The browser that changed it stays signed in.
    assert api.get("/api/v1/me").status_code == 200
    assert ApiClient(api.app).login("admin@example.com", NEW_PASSWORD).status_code == 200


def test_an_email_change_needs_the_current_password(api):
    url = f"/api/v1/agents/{api.agent['id']}"
    assert api.patch(url, json={"email": "boss@example.com"}).status_code == 403
    ok = api.patch(url, json={"email": "boss@example.com", "current_password": ADMIN_PASSWORD})
    assert ok.status_code == 200 and ok.get_json()["email"] == "boss@example.com"


def test_an_admin_resetting_a_password_or_deactivating_ends_the_agents_sessions(api):
    li = api.new_agent(email="li@example.com")
    li_thief = stolen(li)
    url = f"/api/v1/agents/{li.agent['id']}"
    assert api.patch(url, json={"password": NEW_PASSWORD}).status_code == 200
    assert li.get("/api/v1/me").status_code == 401
    assert li_thief.get("/api/v1/me").status_code == 401

    again = ApiClient(api.app)
    assert again.login("li@example.com", NEW_PASSWORD).status_code == 200
    assert api.patch(url, json={"active": False}).status_code == 200
    assert again.get("/api/v1/me").status_code == 401
    # Reactivated, the old session stays ended: he signs in again.
    assert api.patch(url, json={"active": True}).status_code == 200
    assert again.get("/api/v1/me").status_code == 401


def test_sign_out_everywhere_ends_every_session(api):
    other_browser = ApiClient(api.app)
    assert other_browser.login("admin@example.com", ADMIN_PASSWORD).status_code == 200
    thief = stolen(api)
    response = api.post("/api/v1/auth/sessions/end-all")
    assert response.status_code == 200
    assert response.get_json()["ended"] == 2  # this one is ended by the logout that follows
    for client in (api.client, other_browser.client, thief):
        assert client.get("/api/v1/me").status_code == 401
    assert AgentSession.select().where(AgentSession.ended_at.is_null()).count() == 0


def test_sign_out_everywhere_needs_a_session_not_a_token(api):
    token = api.post("/api/v1/tokens", json={"name": "集成", "scope": "admin"}).get_json()
    client = api.app.test_client()
    response = client.post("/api/v1/auth/sessions/end-all",
                           headers={"Authorization": f"Bearer {token['token']}"})
    assert response.status_code == 403
    assert api.get("/api/v1/me").status_code == 200


def test_a_cookie_of_the_old_kind_is_refused_after_the_upgrade(api):
    """Before m0011 the cookie named the agent id and a hash fragment."""
    old = api.app.test_client()
    agent = Agent.get_by_id(api.agent["id"])
    with old.session_transaction() as session:
        session["agent_id"] = agent.id
        session["pw"] = agent.password_hash[-12:]
        session["csrf"] = "x"
    assert old.get("/api/v1/me").status_code == 401


def test_a_session_ended_in_one_process_is_refused_by_another(app, tmp_path):
    """Two app instances on one database, as two gunicorn workers are: nothing
    about a session is cached in a process."""
    api = ApiClient.registered(app)
    li = api.new_agent(email="li@example.com")
    other = make_app(tmp_path)  # same DATABASE_URL, SECRET_KEY: another worker
    try:
        worker2 = other.test_client()
        worker2.set_cookie("session", li.client.get_cookie("session").value)
        with other.app_context():
            assert worker2.get("/api/v1/me").status_code == 200
        assert li.post("/api/v1/auth/logout").status_code == 200
        with other.app_context():
            assert worker2.get("/api/v1/me").status_code == 401
    finally:
        close_app(other)
