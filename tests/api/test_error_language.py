"""API errors in the asker's language: zh-CN for pages and a widget that say so,
English for clients that say nothing (integrations read the same text as before).

Representative refusals through the real app: a schema check, an upload over
the limit, a transfer to an agent at his limit, a message into an ended
conversation; code and field never change, the English original rides along
as ``message_en`` when the message was translated.
"""

from __future__ import annotations

import pytest

from tests.api.test_conversations import start
from tests.api.test_conversations import vpost
from tests.api.test_uploads import CONTENT_TYPE
from tests.api.test_uploads import PNG
from tests.api.test_uploads import multipart
from tests.conftest import close_app
from tests.conftest import make_app
from tests.helpers import ApiClient

ZH = {"X-Meiqia-Lang": "zh-CN"}


@pytest.fixture
def team(api):
    return api.without_bot()


def _error(response, status):
    assert response.status_code == status, response.get_json()
    return response.get_json()["error"]


def test_a_schema_refusal_in_chinese_and_in_english(team):
    client, token, cid, _ = start(team.app, team.team["id"])
    url = f"/api/v1/widget/conversations/{cid}/messages"
    body = {"body": "很" * 5001, "client_msg_id": "c1"}

    zh = _error(client.post(url, json=body, headers={"X-Visitor-Token": token, **ZH}), 422)
    assert zh == {"code": "invalid", "field": "body", "message": "内容：最多 5000 个字符",
                  "message_en": "body: at most 5000 characters"}
    en = _error(vpost(client, token, url, json=body), 422)
    assert en == {"code": "invalid", "field": "body",
                  "message": "body: at most 5000 characters"}
    # The other ways to ask: ?lang= (what a link or socket URL can carry) and the browser's
    # Accept-Language; an explicit English beats a Chinese browser.
    by_query = client.post(f"{url}?lang=zh-CN", json=body, headers={"X-Visitor-Token": token})
    assert _error(by_query, 422)["message"] == "内容：最多 5000 个字符"
    browser = {"X-Visitor-Token": token, "Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8"}
    assert _error(client.post(url, json=body, headers=browser), 422)["message"] == \
        "内容：最多 5000 个字符"
    english = _error(client.post(url, json=body, headers={**browser, "X-Meiqia-Lang": "en"}),
                     422)
    assert english["message"] == "body: at most 5000 characters" and "message_en" not in english
    # "Accept-Language: *" (what Node's fetch sends) names no language: English.
    anything = client.post(url, json=body, headers={"X-Visitor-Token": token,
                                                    "Accept-Language": "*"})
    assert _error(anything, 422)["message"] == "body: at most 5000 characters"
    # A required field, an unknown one, a wrong type: the field named in Chinese too.
    missing = _error(client.post("/api/v1/widget/session", json={}, headers=ZH), 422)
    assert missing == {"code": "invalid", "field": "team_id", "message": "团队：必填",
                       "message_en": "team_id: is required"}


def test_an_upload_over_the_limit(tmp_path):
    app = make_app(tmp_path, MAX_IMAGE_BYTES=1024)
    try:
        with app.app_context():
            admin = ApiClient.registered(app)
            client, token, cid, _ = start(app, admin.team["id"])
            url = f"/api/v1/widget/conversations/{cid}/uploads?kind=image"
            data = multipart(("file", "大图.png", PNG + b"\x00" * 2048))
            for headers, message in [
                (ZH, "文件：图片最大 1 KB"),
                ({}, "file: an image may be at most 1 KB"),
            ]:
                response = client.post(url, data=data, content_type=CONTENT_TYPE,
                                       headers={"X-Visitor-Token": token, **headers})
                error = _error(response, 413)
                assert error["code"] == "too_large" and error["field"] == "file"
                assert error["message"] == message
    finally:
        close_app(app)


def test_a_body_over_max_content_length_is_our_too_large(tmp_path):
    """Werkzeug's 413 was ``request_entity_too_large`` in its English; the OpenAPI
    document says ``too_large``: our error, in the asker's language."""
    app = make_app(tmp_path, MAX_CONTENT_LENGTH=256 * 1024)
    try:
        with app.app_context():
            admin = ApiClient.registered(app)
            cid = start(app, admin.team["id"])[2]
            data = multipart(("file", "知识库.csv", b"id,question,answer\n" * 20000))
            for headers, message in [
                ({}, "the request body may be at most 256 KB"),
                (ZH, "请求体最大 256 KB"),
            ]:
                for url in ("/api/v1/knowledge/import",
                            f"/api/v1/conversations/{cid}/uploads?kind=file"):
                    response = admin.post(url, data=data, content_type=CONTENT_TYPE,
                                          headers=headers)
                    error = _error(response, 413)
                    assert error["code"] == "too_large" and error["field"] is None, url
                    assert error["message"] == message, url
            # Flask's own form limits (more parts than MAX_FORM_PARTS) say so too.
            response = admin.post("/api/v1/knowledge/import", data=multipart(
                *[(f"f{n}", None, b"x") for n in range(app.config["MAX_FORM_PARTS"] + 10)]),
                content_type=CONTENT_TYPE, headers=ZH)
            error = _error(response, 413)
            assert error == {"code": "too_large", "field": None, "message": "请求太大了",
                             "message_en": "the request is too large"}
    finally:
        close_app(app)


def test_a_transfer_to_an_agent_at_his_limit(team):
    li = team.new_agent(max_concurrent=1, email="li@example.com", name="李客服")
    li.go_online()
    start(team.app, team.team["id"])  # li takes it: 1 of 1
    queued = start(team.app, team.team["id"])[2]
    url = f"/api/v1/conversations/{queued}/transfer"
    body = {"agent_id": li.agent["id"]}

    # The agent pages send the page's language with every call (lib.js).
    zh = _error(team.post(url, json=body, headers=ZH), 409)
    assert zh == {"code": "conflict", "field": "agent_id",
                  "message": "李客服 的接待量已达上限（1/1）",
                  "message_en": "李客服 is at the limit (1/1)"}
    # A session without a hint: the agent's own choice (the lang cookie of the language
    # switch), else English, never the team default (zh-CN here).
    assert _error(team.post(url, json=body), 409)["message"] == "李客服 is at the limit (1/1)"
    team.client.set_cookie("lang", "zh-CN")
    assert _error(team.post(url, json=body), 409)["message"] == "李客服 的接待量已达上限（1/1）"
    team.client.delete_cookie("lang")

    # An integration with a token: English, whatever the agent prefers.
    token = team.post("/api/v1/tokens", json={"name": "CRM", "scope": "conversations"}).get_json()["token"]
    integration = team.app.test_client()
    response = integration.post(url, json=body, headers={"Authorization": f"Bearer {token}"})
    assert _error(response, 409) == {"code": "conflict", "field": "agent_id",
                                     "message": "李客服 is at the limit (1/1)"}


def test_a_message_into_an_ended_conversation(team):
    li = team.new_agent(max_concurrent=2)
    li.go_online()
    client, token, cid, _ = start(team.app, team.team["id"])
    assert li.post(f"/api/v1/conversations/{cid}/end").status_code == 200
    url = f"/api/v1/widget/conversations/{cid}/messages"

    zh = client.post(url, json={"body": "还在吗", "client_msg_id": "e-1"},
                     headers={"X-Visitor-Token": token, **ZH})
    assert _error(zh, 409)["message"] == "对话已结束：请开始新的对话"
    en = vpost(client, token, url, json={"body": "还在吗", "client_msg_id": "e-2"})
    assert _error(en, 409)["message"] == "the conversation has ended: start a new one"
    # The agent's side of the same conversation.
    again = _error(li.post(f"/api/v1/conversations/{cid}/end", headers=ZH), 409)
    assert again["message"] == "对话已经结束了"


def test_unknown_urls_tokens_and_pages(team):
    client = team.app.test_client()
    assert _error(client.get("/api/v1/nope", headers=ZH), 404)["message"].startswith("服务器上没有")
    assert _error(client.get("/api/v1/widget/tickets", headers=ZH), 401)["message"] == "缺少访客令牌"
    wrong = client.get("/api/v1/widget/tickets", headers={"X-Visitor-Token": "x", **ZH})
    assert _error(wrong, 401) == {"code": "unauthorized", "field": None,
                                  "message": "访客令牌无效", "message_en": "invalid visitor token"}
    # Without the CSRF header a session write is refused, in the page's language.
    refused = team.client.post("/api/v1/groups", json={"name": "售后"}, headers=ZH)
    assert _error(refused, 403)["message"] == "安全令牌（CSRF）缺失或有误：请刷新页面"
    # The login page shows its refusal in the page's language.
    page = team.app.test_client()
    page.get("/login?lang=zh-CN")
    with page.session_transaction() as session:
        csrf = session["csrf"]
    html = page.post("/login?lang=zh-CN", data={"email": "admin@example.com",
                                                "password": "wrong-pass-1",
                                                "csrf_token": csrf}).get_data(as_text=True)
    assert "邮箱或密码错误" in html
    html = page.post("/login?lang=en", data={"email": "admin@example.com",
                                             "password": "wrong-pass-1",
                                             "csrf_token": csrf}).get_data(as_text=True)
    assert "wrong email or password" in html


def test_a_page_that_does_not_exist_says_so_in_the_readers_language(team):
    """Not Werkzeug's English page: ours, in his language, with the status kept
    (405 keeps its Allow header); a missing trailing slash still redirects."""
    client = team.app.test_client()
    zh = client.get("/no-such-page", headers=ZH)
    assert zh.status_code == 404 and zh.mimetype == "text/html"
    assert '<html lang="zh-CN">' in zh.get_data(as_text=True)
    assert "服务器上没有这个地址" in zh.get_data(as_text=True)
    en = client.get("/no-such-page?lang=en")
    assert en.status_code == 404 and "was not found on the server" in en.get_data(as_text=True)
    wrong = client.delete("/login", headers=ZH)
    assert wrong.status_code == 405 and "GET" in wrong.headers["Allow"]
    assert "这个地址不支持这种请求方法" in wrong.get_data(as_text=True)
    assert client.get("/admin").status_code == 308


def test_an_agents_saved_language_holds_in_a_new_session_and_with_his_token(team):
    """He chose Chinese once (``/lang/zh-CN`` remembers it on his account): a new
    browser session without the cookie, and a script with his API token, get his
    errors in Chinese too. (The check looked for a session key that does not
    exist, so the setting was never read.) Someone who chose nothing, and a
    request from nobody known, still get English."""
    agent = team.new_agent(email="li@example.com", name="李客服")
    assert agent.client.get("/lang/zh-CN").status_code == 302
    from meiqia.testing.api import AGENT_PASSWORD

    fresh = ApiClient(team.app)
    assert fresh.login("li@example.com", AGENT_PASSWORD).status_code == 200
    error = _error(fresh.get("/api/v1/history?page=0"), 422)
    assert error["message"] != error["message_en"], error
    assert error["message_en"].startswith("page:"), error
    created = agent.post("/api/v1/tokens", json={"name": "脚本", "scope": "read"})
    assert created.status_code == 201, created.get_json()
    script = team.app.test_client()
    answer = script.get("/api/v1/history?page=0", headers={
        "Authorization": f"Bearer {created.get_json()['token']}"})
    assert "message_en" in _error(answer, 422)
    # The admin chose nothing: English, as for any client that says nothing.
    assert _error(team.get("/api/v1/history?page=0"), 422)["message"].startswith("page:")
