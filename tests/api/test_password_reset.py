"""Admin-made one-time password reset links (issue 17, item 3)."""

from __future__ import annotations

import datetime
import threading

from tests.helpers import AGENT_PASSWORD
from tests.helpers import ApiClient


def _make_link(api, agent_id):
    response = api.post(f"/api/v1/agents/{agent_id}/password-reset")
    assert response.status_code == 201, response.get_json()
    url = response.get_json()["url"]
    assert "/reset-password/" in url
    return url.rsplit("/", 1)[1]


def _use(client, token, password="brand-new-9"):
    return client.post("/api/v1/auth/password-reset", json={"token": token, "password": password})


def test_link_sets_the_password_once_and_signs_the_agent_out(app, api):
    li = api.new_agent()
    token = _make_link(api, li.agent["id"])
    from meiqia.models import AuditLog
    from meiqia.models import PasswordReset

    row = PasswordReset.get()
    assert row.token_hash != token and token not in row.token_hash  # only the hash is kept
    # A refused password leaves the link usable (same rules as everywhere).
    weak = _use(app.test_client(), token, "abcdefgh")
    assert weak.status_code == 422 and weak.get_json()["error"]["field"] == "password"
    assert _use(app.test_client(), token).status_code == 200
    # His open session is over; the new password works, the old does not.
    assert li.get("/api/v1/me").status_code == 401
    assert ApiClient(app).login("agent@example.com", AGENT_PASSWORD).status_code == 401
    assert ApiClient(app).login("agent@example.com", "brand-new-9").status_code == 200
    # Single use.
    again = _use(app.test_client(), token, "another-one-9")
    assert again.status_code == 404
    assert "invalid, used or expired" in again.get_json()["error"]["message"]
    actions = [r.action for r in AuditLog.select().order_by(AuditLog.id)]
    assert "agent.password_reset_link" in actions and "agent.password_reset" in actions


def test_an_expired_link_is_refused(app, api):
    li = api.new_agent()
    token = _make_link(api, li.agent["id"])
    from meiqia.models import PasswordReset
    from meiqia.models.base import utcnow

    PasswordReset.update(expires_at=utcnow() - datetime.timedelta(seconds=1)).execute()
    response = _use(app.test_client(), token)
    assert response.status_code == 404
    assert app.test_client().get(f"/reset-password/{token}").status_code == 404
    assert ApiClient(app).login("agent@example.com", AGENT_PASSWORD).status_code == 200


def test_a_newer_link_revokes_the_older_and_the_error_speaks_chinese(app, api):
    li = api.new_agent()
    old = _make_link(api, li.agent["id"])
    new = _make_link(api, li.agent["id"])
    refused = app.test_client().post("/api/v1/auth/password-reset",
                                     json={"token": old, "password": "brand-new-9"},
                                     headers={"X-Meiqia-Lang": "zh-CN"})
    assert refused.status_code == 404
    assert "重置密码链接无效" in refused.get_json()["error"]["message"]
    assert _use(app.test_client(), new).status_code == 200


def test_only_admins_of_the_team_and_no_tokens(app, api):
    li = api.new_agent()
    # An agent may not make links, not even for himself.
    assert li.post(f"/api/v1/agents/{li.agent['id']}/password-reset").status_code == 403
    # Another team's admin does not see this team's agents.
    app.config["OPEN_REGISTRATION"] = True
    other = ApiClient(app)
    response = other.client.post("/api/v1/auth/register", json={
        "team_name": "别队", "name": "外人", "email": "other@example.com",
        "password": "other-pass-1"})
    assert response.status_code == 201
    other._take(response.get_json())
    assert other.post(f"/api/v1/agents/{li.agent['id']}/password-reset").status_code == 404
    # An admin API token may not make one (it manages passwords).
    created = api.post("/api/v1/tokens", json={"name": "ci", "scope": "admin"}).get_json()
    by_token = app.test_client().post(
        f"/api/v1/agents/{li.agent['id']}/password-reset",
        headers={"Authorization": f"Bearer {created['token']}"})
    assert by_token.status_code == 403


def test_two_submissions_racing_for_one_link_only_one_wins(db_api):
    """On SQLite and PostgreSQL: four browsers submit the same link at once."""
    api, app = db_api, db_api.app
    api.new_agent()
    from meiqia.models import Agent

    agent_id = Agent.get(Agent.email == "agent@example.com").id
    token = _make_link(api, agent_id)
    barrier = threading.Barrier(4)
    statuses: list[int] = []

    def submit(n: int) -> None:
        client = app.test_client()
        with app.app_context():
            barrier.wait()
            statuses.append(_use(client, token, f"racing-pass-{n}").status_code)

    threads = [threading.Thread(target=submit, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200, 404, 404, 404], statuses
    winners = [n for n in range(4)
               if ApiClient(app).login("agent@example.com", f"racing-pass-{n}").status_code == 200]
    assert len(winners) == 1


def test_any_password_change_and_a_deactivation_revoke_his_unused_links(app, api):
    """Found from outside: a link made before a password change, by himself or by an
    admin, still set the password; one made before a deactivation worked again after
    the reactivation (docs/security.md §8)."""
    li = api.new_agent()
    agent_id = li.agent["id"]
    # His own change (with current_password).
    token = _make_link(api, agent_id)
    changed = li.patch(f"/api/v1/agents/{agent_id}",
                       json={"current_password": AGENT_PASSWORD, "password": "his-own-new-9"})
    assert changed.status_code == 200, changed.get_json()
    assert _use(app.test_client(), token).status_code == 404
    # An admin sets it.
    token = _make_link(api, agent_id)
    assert api.patch(f"/api/v1/agents/{agent_id}",
                     json={"password": "admin-set-new-9"}).status_code == 200
    assert _use(app.test_client(), token).status_code == 404
    # Deactivated, then active again: the old link stays dead.
    token = _make_link(api, agent_id)
    assert api.patch(f"/api/v1/agents/{agent_id}", json={"active": False}).status_code == 200
    assert api.patch(f"/api/v1/agents/{agent_id}", json={"active": True}).status_code == 200
    assert _use(app.test_client(), token).status_code == 404
    assert ApiClient(app).login("agent@example.com", "admin-set-new-9").status_code == 200
    # A link made now works (nothing else was broken).
    assert _use(app.test_client(), _make_link(api, agent_id)).status_code == 200
