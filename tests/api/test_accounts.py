"""Accounts API: register, log in, agents, groups, tokens, and the bad input."""

from __future__ import annotations

import pytest

from meiqia.models import Agent
from meiqia.models import AuditLog
from meiqia.models import Group
from meiqia.models import Team
from tests.helpers import ADMIN_PASSWORD
from tests.helpers import AGENT_PASSWORD
from tests.helpers import ApiClient


def test_register_creates_team_and_admin_and_logs_in(api):
    assert api.agent["role"] == "admin"
    assert api.agent["scope"] == "all"
    assert api.team["name"] == "测试团队"
    me = api.get("/api/v1/me").get_json()
    assert me["agent"]["email"] == "admin@example.com"
    stored = Agent.get(Agent.email == "admin@example.com")
    assert stored.password_hash != ADMIN_PASSWORD and ":" in stored.password_hash


def test_second_registration_is_closed(api):
    other = ApiClient(api.app)
    response = other.client.post(
        "/api/v1/auth/register",
        json={"team_name": "B", "name": "B", "email": "b@example.com", "password": "pass-word-9"},
    )
    assert response.status_code == 403
    assert Team.select().count() == 1


def test_register_with_a_taken_email_is_409_and_creates_nothing(tmp_path):
    from tests.conftest import close_app
    from tests.conftest import make_app

    app = make_app(tmp_path, OPEN_REGISTRATION=True)
    try:
        with app.app_context():
            first = {"team_name": "甲", "name": "甲管理", "email": "Boss@Example.com",
                     "password": "good-pass-1"}
            client = app.test_client()
            assert client.post("/api/v1/auth/register", json=first).status_code == 201
            again = app.test_client().post("/api/v1/auth/register", json={
                **first, "team_name": "乙", "email": "boss@example.com"})
            assert again.status_code == 409
            assert again.get_json()["error"]["field"] == "email"
            assert Team.select().count() == 1 and Agent.select().count() == 1
    finally:
        close_app(app)


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"password": "short1"}, 422, "password"),
        ({"password": "onlyletters"}, 422, "password"),
        ({"password": "12345678"}, 422, "password"),
        ({"email": "not-an-email"}, 422, "email"),
        ({"team_name": ""}, 422, "team_name"),
        ({"role": "admin"}, 422, "role"),
        # a zone the team's reports could not read its days in (they answered 500)
        ({"timezone": "Mars/Olympus"}, 422, "timezone"),
        ({"timezone": "火星/标准时间"}, 422, "timezone"),
        ({"timezone": "Asia"}, 422, "timezone"),
    ],
)
def test_register_bad_input_names_the_field_and_creates_nothing(app, body, status, field):
    data = {"team_name": "T", "name": "N", "email": "n@example.com", "password": "good-pass-1"}
    data.update(body)
    response = app.test_client().post("/api/v1/auth/register", json=data)
    assert response.status_code == status
    assert response.get_json()["error"]["field"] == field
    assert Team.select().count() == 0 and Agent.select().count() == 0


def test_register_checks_the_time_zone_as_team_settings_do(app):
    """One check for both: the same 422 and message at registration as from
    PATCH /team; a known zone is kept."""
    data = {"team_name": "T", "name": "N", "email": "n@example.com", "password": "good-pass-1"}
    api = ApiClient(app)
    client = api.client
    refused = client.post("/api/v1/auth/register?lang=zh-CN",
                          json={**data, "timezone": "火星/标准时间"})
    assert refused.status_code == 422
    assert refused.get_json()["error"]["message"] == "时区：未知的时区，例如 Asia/Shanghai"
    made = client.post("/api/v1/auth/register", json={**data, "timezone": "Asia/Urumqi"})
    assert made.status_code == 201 and made.get_json()["team"]["timezone"] == "Asia/Urumqi"
    api._take(made.get_json())
    for zone in ("Mars/Olympus", "Asia"):  # a folder of the zone database was a 500
        again = api.patch("/api/v1/team?lang=zh-CN", json={"timezone": zone})
        assert again.status_code == 422
        assert again.get_json()["error"]["message"] == refused.get_json()["error"]["message"]
    assert api.get("/api/v1/dashboard").status_code == 200


def test_register_needs_json(app):
    response = app.test_client().post("/api/v1/auth/register", data="x=1")
    assert response.status_code == 400
    assert "JSON" in response.get_json()["error"]["message"]


def test_create_agent_and_the_bad_input(api):
    group = api.post("/api/v1/groups", json={"name": "售后组"}).get_json()
    agent = api.post(
        "/api/v1/agents",
        json={"name": "李客服", "email": "Li@Example.com", "password": "agent-pass-1",
              "max_concurrent": 3, "groups": [group["id"]], "scope": "groups"},
    )
    assert agent.status_code == 201
    data = agent.get_json()
    assert data["email"] == "li@example.com" and data["groups"] == [group["id"]]

    cases = [
        ({"email": "li@example.com"}, 409, "email"),
        ({"role": "boss"}, 422, "role"),
        ({"max_concurrent": -1}, 422, "max_concurrent"),
        ({"scope": "everyone"}, 422, "scope"),
        ({"password": "weak"}, 422, "password"),
        ({"groups": [9999]}, 422, "groups"),
        ({"colour": "red"}, 422, "colour"),
    ]
    for change, status, field in cases:
        body = {"name": "张三", "email": "zhang@example.com", "password": "agent-pass-1", **change}
        response = api.post("/api/v1/agents", json=body)
        assert response.status_code == status, (change, response.get_json())
        assert response.get_json()["error"]["field"] == field
    assert Agent.select().count() == 2  # nothing half-created


def test_agent_may_change_own_status_but_not_his_limit(api):
    li = api.new_agent(max_concurrent=2)
    url = f"/api/v1/agents/{li.agent['id']}"
    assert li.patch(url, json={"status": "online"}).get_json()["status"] == "online"
    response = li.patch(url, json={"max_concurrent": 50})
    assert response.status_code == 403
    assert api.patch(url, json={"max_concurrent": 0}).get_json()["max_concurrent"] == 0


def test_last_admin_cannot_demote_himself(api):
    response = api.patch(f"/api/v1/agents/{api.agent['id']}", json={"role": "agent"})
    assert response.status_code == 422
    assert Agent.get_by_id(api.agent["id"]).role == "admin"


def test_the_last_active_admin_cannot_be_deactivated(api):
    """Deactivated, he was locked out and nobody could administer the team: the
    same rule as demotion, whoever asks."""
    me = f"/api/v1/agents/{api.agent['id']}"
    response = api.patch(f"{me}?lang=zh-CN", json={"active": False})
    assert response.status_code == 422
    assert response.get_json()["error"]["field"] == "active"
    assert response.get_json()["error"]["message"] == "启用：团队至少需要一名管理员"
    assert Agent.get_by_id(api.agent["id"]).active is True
    assert api.get("/api/v1/me").status_code == 200  # his session was not ended
    # A second admin: now either may go, but not both.
    wang = api.new_agent(name="王二", email="wang@example.com", role="admin")
    assert api.patch(f"/api/v1/agents/{wang.agent['id']}",
                     json={"active": False}).status_code == 200
    response = api.patch(me, json={"active": False, "name": "王管理"})
    assert response.status_code == 422 and response.get_json()["error"]["field"] == "active"
    assert api.patch(f"/api/v1/agents/{wang.agent['id']}", json={"active": True}).status_code \
        == 200
    assert wang.login("wang@example.com", AGENT_PASSWORD).status_code == 200
    assert wang.patch(me, json={"active": False}).status_code == 200
    assert Agent.get_by_id(api.agent["id"]).active is False
    response = wang.patch(f"/api/v1/agents/{wang.agent['id']}", json={"active": False})
    assert response.status_code == 422
    response = wang.patch(f"/api/v1/agents/{wang.agent['id']}", json={"role": "agent"})
    assert response.status_code == 422 and response.get_json()["error"]["field"] == "role"
    assert Agent.get_by_id(wang.agent["id"]).active is True


def test_non_admin_cannot_create_agents_or_groups(api):
    li = api.new_agent()
    assert li.post("/api/v1/groups", json={"name": "x"}).status_code == 403
    response = li.post(
        "/api/v1/agents", json={"name": "x", "email": "x@example.com", "password": "pass-word-1"}
    )
    assert response.status_code == 403


def test_session_writes_need_csrf(api):
    response = api.client.post("/api/v1/groups", json={"name": "无令牌"})
    assert response.status_code == 403
    assert "CSRF" in response.get_json()["error"]["message"]
    assert Group.select().count() == 0


def test_a_non_ascii_csrf_token_is_a_wrong_one_not_a_crash(api):
    """hmac.compare_digest refuses str with non-ASCII (TypeError, a 500): a header
    holding é or 令牌 is a wrong token, 403 like any."""
    for wrong in ("é", "令牌", api.csrf[:-1] + "é"):
        response = api.client.post("/api/v1/groups", json={"name": "无令牌"},
                                   headers={"X-CSRF-Token": wrong})
        assert response.status_code == 403, (wrong, response.get_json())
        assert "CSRF" in response.get_json()["error"]["message"]
        response = api.client.post("/api/v1/auth/logout?lang=zh-CN",
                                   headers={"X-CSRF-Token": wrong})
        assert response.status_code == 403
        assert response.get_json()["error"]["message"] == "安全令牌（CSRF）缺失或有误：请刷新页面"
    assert Group.select().count() == 0
    assert api.get("/api/v1/me").status_code == 200  # still logged in


def test_login_logout_and_lockout(api):
    other = ApiClient(api.app)
    assert other.login("admin@example.com", "wrong-pass-1").status_code == 401
    assert other.login("ADMIN@example.com", ADMIN_PASSWORD).status_code == 200
    assert other.post("/api/v1/auth/logout").status_code == 200
    assert other.get("/api/v1/me").status_code == 401
    for _ in range(5):
        other.login("admin@example.com", "wrong-pass-1")
    response = other.login("admin@example.com", ADMIN_PASSWORD)
    assert response.status_code == 429
    # one failure before the good login, five after it (the fifth locks)
    assert AuditLog.select().where(AuditLog.action == "login.failed").count() == 6


def test_api_token_authenticates_without_csrf_and_can_be_revoked(api):
    created = api.post("/api/v1/tokens", json={"name": "CRM 集成", "scope": "admin"}).get_json()
    token = created["token"]
    client = api.app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/me", headers=headers).status_code == 200
    assert client.post("/api/v1/groups", json={"name": "集成组"}, headers=headers).status_code == 201
    listed = api.get("/api/v1/tokens").get_json()
    assert "token" not in listed[0] and listed[0]["prefix"] == token[:10]
    assert api.delete(f"/api/v1/tokens/{created['id']}").status_code == 200
    assert client.get("/api/v1/me", headers=headers).status_code == 401


def test_team_settings_validated_as_a_whole(api):
    ok = api.patch("/api/v1/team", json={"settings": {"answer_threshold": 0.8}})
    assert ok.get_json()["settings"]["answer_threshold"] == 0.8
    bad = api.patch("/api/v1/team", json={"settings": {"suggest_threshold": 0.9}})
    assert bad.status_code == 422
    assert bad.get_json()["error"]["field"] == "settings.suggest_threshold"
    tz = api.patch("/api/v1/team", json={"timezone": "Mars/Base"})
    assert tz.status_code == 422 and tz.get_json()["error"]["field"] == "timezone"
    assert api.get("/api/v1/team").get_json()["settings"]["suggest_threshold"] == 0.5


def test_a_custom_scope_set_through_the_api_decides_what_the_agent_sees(api):
    """The chosen list of agents and groups, set by an admin over the API, is exactly
    what the agent's lists, conversation reads and dashboard count."""
    from meiqia.models import Group
    from tests.factories import make_agent
    from tests.factories import make_conversation
    from tests.factories import make_visitor

    team = api.team["id"]
    zhao = api.new_agent(name="赵客服", email="zhao@example.com")
    qian = make_agent(team, name="钱客服")
    sun = make_agent(team, name="孙客服")
    li = make_agent(team, name="李客服")
    after_sales = Group.create(team=team, name="售后")
    from meiqia.models import AgentGroup
    AgentGroup.create(agent=li, group=after_sales)
    convs = {who.name: make_conversation(team, make_visitor(team, name=f"{who.name}的客户"),
                                         handler=who, status="open")
             for who in (qian, sun, li)}
    response = api.patch(f"/api/v1/agents/{zhao.agent['id']}", json={
        "scope": "custom", "scope_agents": [qian.id], "scope_groups": [after_sales.id]})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["scope_agents"] == [qian.id]
    assert response.get_json()["scope_groups"] == [after_sales.id]

    lists = zhao.get("/api/v1/conversations").get_json()
    assert {row["id"] for row in lists["colleagues"]} == {convs["钱客服"].id, convs["李客服"].id}
    assert zhao.get(f"/api/v1/conversations/{convs['孙客服'].id}").status_code == 404
    assert zhao.get(f"/api/v1/conversations/{convs['钱客服'].id}").status_code == 200

    bad = api.patch(f"/api/v1/agents/{zhao.agent['id']}", json={
        "scope": "custom", "scope_agents": [999999]})
    assert bad.status_code == 422 and bad.get_json()["error"]["field"] == "scope_agents"
