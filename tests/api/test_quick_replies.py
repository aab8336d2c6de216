"""Quick replies API on SQLite and PostgreSQL: team-wide and personal, who may
see and change what, validation, and the Chinese ``#keyword`` search."""

from __future__ import annotations

import uuid

import pytest

from meiqia.models import QuickReply
from meiqia.models import Visitor
from meiqia.web.security import visitor_token

URL = "/api/v1/quick-replies"


@pytest.fixture
def team(db_api):
    """An admin with three team-wide replies and an agent with a personal one."""
    for keyword, title, body in (("退款", "退款说明", "退款 1-3 个工作日到账"),
                                 ("退货流程", "", "在订单页申请售后"),
                                 ("发货", "发货时间", "48 小时内发货")):
        response = db_api.post(URL, json={"keyword": keyword, "title": title, "body": body,
                                          "team": True})
        assert response.status_code == 201, response.get_json()
    li = db_api.new_agent(name="李客服", email="li@example.com")
    mine = li.post(URL, json={"keyword": "问候", "body": "您好，我是小李，很高兴为您服务"})
    assert mine.status_code == 201
    assert mine.get_json()["team"] is False
    return db_api, li


def search(agent, q):
    response = agent.get(URL + "/search", query_string={"q": q})
    assert response.status_code == 200, response.get_json()
    return [r["keyword"] for r in response.get_json()]


def test_search_hash_tui_finds_refund_and_returns_first(team):
    admin, li = team
    assert search(li, "#退")[:2] == ["退款", "退货流程"]
    assert "发货" not in search(li, "#退")
    assert search(li, "＃退貨") == ["退货流程"]  # full-width #, traditional characters
    assert search(li, "到账") == []  # bodies are not searched
    assert search(li, "说明") == ["退款"]  # titles are
    assert search(li, "問候") == ["问候"]


def test_personal_and_team_replies_merge_personal_first(team):
    admin, li = team
    assert li.post(URL, json={"keyword": "退款", "body": "我自己的退款话术"}).status_code == 201
    found = li.get(URL + "/search", query_string={"q": "退款"}).get_json()
    assert [(r["keyword"], r["team"]) for r in found[:2]] == [("退款", False), ("退款", True)]
    assert "问候" not in search(admin, "问")  # the admin does not see li's personal reply
    assert len(li.get(URL).get_json()) == 5


def test_search_answers_at_most_ten(team):
    admin, li = team
    for i in range(12):
        assert li.post(URL, json={"keyword": f"退{i}", "body": "x"}).status_code == 201
    assert len(search(li, "退")) == 10


def test_only_admins_manage_team_replies(team):
    admin, li = team
    refused = li.post(URL, json={"keyword": "群发", "body": "x", "team": True})
    assert refused.status_code == 403
    assert "only admins" in refused.get_json()["error"]["message"]
    team_reply = next(r for r in li.get(URL).get_json() if r["keyword"] == "发货")
    assert li.patch(f"{URL}/{team_reply['id']}", json={"body": "改"}).status_code == 403
    assert li.delete(f"{URL}/{team_reply['id']}").status_code == 403
    changed = admin.patch(f"{URL}/{team_reply['id']}", json={"body": "24 小时内发货"})
    assert changed.status_code == 200 and changed.get_json()["body"] == "24 小时内发货"


def test_another_agents_personal_reply_does_not_exist_for_you(team):
    admin, li = team
    mine = next(r for r in li.get(URL).get_json() if r["keyword"] == "问候")
    wang = admin.new_agent(name="王客服", email="wang@example.com")
    for who in (wang, admin):
        assert who.patch(f"{URL}/{mine['id']}", json={"body": "偷改"}).status_code == 404
        assert who.delete(f"{URL}/{mine['id']}").status_code == 404
        assert "问候" not in [r["keyword"] for r in who.get(URL).get_json()]
    assert li.delete(f"{URL}/{mine['id']}").status_code == 200
    assert li.delete(f"{URL}/{mine['id']}").status_code == 404


def test_another_team_sees_nothing(team):
    admin, li = team
    admin.app.config["OPEN_REGISTRATION"] = True
    other = admin.app.test_client()
    response = other.post("/api/v1/auth/register", json={
        "team_name": "别的团队", "name": "赵管理", "email": "zhao@example.com",
        "password": "another-pass-1"})
    assert response.status_code == 201
    assert other.get(URL).get_json() == []
    assert other.get(URL + "/search?q=退").get_json() == []
    some_id = li.get(URL).get_json()[0]["id"]
    headers = {"X-CSRF-Token": response.get_json()["csrf_token"]}
    assert other.patch(f"{URL}/{some_id}", json={"body": "x"}, headers=headers).status_code == 404


def test_visitors_and_strangers_are_refused(team):
    admin, li = team
    with admin.app.app_context():
        visitor = Visitor.create(team=admin.team["id"], uid=uuid.uuid4().hex)
        token = visitor_token(visitor)
    client = admin.app.test_client()
    assert client.get(URL).status_code == 401
    assert client.get(URL, headers={"X-Visitor-Token": token}).status_code == 401


def test_duplicate_keywords_within_an_owner_are_409(team):
    admin, li = team
    dup = admin.post(URL, json={"keyword": "退款", "body": "z", "team": True})
    assert dup.status_code == 409
    assert dup.get_json()["error"] == {"code": "conflict", "field": "keyword",
                                       "message": "keyword: #退款 exists already for the team"}
    # The same word in another form is the same keyword.
    assert admin.post(URL, json={"keyword": "#退貨流程", "body": "z", "team": True}).status_code == 409
    assert li.post(URL, json={"keyword": "VIP", "body": "x"}).status_code == 201
    assert li.post(URL, json={"keyword": "ｖｉｐ", "body": "y"}).status_code == 409
    # Renaming onto an existing keyword, too; renaming onto itself is fine.
    fahuo = next(r for r in admin.get(URL).get_json() if r["keyword"] == "发货")
    assert admin.patch(f"{URL}/{fahuo['id']}", json={"keyword": "退款"}).status_code == 409
    assert admin.patch(f"{URL}/{fahuo['id']}", json={"keyword": "发货"}).status_code == 200
    # Another owner may use the same keyword.
    assert li.post(URL, json={"keyword": "发货", "body": "我的发货话术"}).status_code == 201


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [({"keyword": "有 空格", "body": "x"}, "keyword", "no spaces"),
     ({"keyword": "全角\u3000空格", "body": "x"}, "keyword", "no spaces"),
     ({"keyword": "", "body": "x"}, "keyword", "must not be empty"),
     ({"keyword": "#", "body": "x"}, "keyword", "must not be empty"),
     ({"keyword": "长" * 41, "body": "x"}, "keyword", "at most 40"),
     ({"keyword": "好", "body": ""}, "body", "must not be empty"),
     ({"keyword": "好", "body": "   \n "}, "body", "must not be empty"),
     ({"keyword": "好", "body": "字" * 5001}, "body", "at most 5000"),
     ({"keyword": "好"}, "body", "required"),
     ({"keyword": "好", "body": "x", "owner": 1}, "owner", ""),
     ({"keyword": 3, "body": "x"}, "keyword", "expected string")],
)
def test_bad_input_says_what_is_wrong(team, body, field, message):
    admin, li = team
    before = li.get(URL).get_json()
    response = li.post(URL, json=body)
    assert response.status_code == 422, response.get_json()
    error = response.get_json()["error"]
    assert error["field"] == field and message in error["message"]
    assert li.get(URL).get_json() == before


def test_limits_are_inclusive_and_hash_is_dropped(team):
    admin, li = team
    created = li.post(URL, json={"keyword": "#" + "长" * 40, "body": "字" * 5000,
                                 "title": "  标题  "})
    assert created.status_code == 201, created.get_json()
    data = created.get_json()
    assert data["keyword"] == "长" * 40 and data["title"] == "标题"
    with admin.app.app_context():
        assert QuickReply.get_by_id(data["id"]).owner_id == li.agent["id"]


def test_edit_validates_and_changes_nothing_when_refused(team):
    admin, li = team
    mine = next(r for r in li.get(URL).get_json() if r["keyword"] == "问候")
    bad = li.patch(f"{URL}/{mine['id']}", json={"keyword": "问候语", "body": " "})
    assert bad.status_code == 422
    assert next(r for r in li.get(URL).get_json() if r["id"] == mine["id"]) == mine
    good = li.patch(f"{URL}/{mine['id']}", json={"keyword": "问候语", "title": "开场"})
    assert good.status_code == 200
    assert good.get_json() == {**mine, "keyword": "问候语", "title": "开场"}
    assert li.patch(f"{URL}/{mine['id']}", json={"team": True}).status_code == 422
