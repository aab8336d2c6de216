"""Sidebar iframe plugins: the admin's CRUD with its validation, the panels of a
conversation with a token the plugin's server can verify with its secret (and
only until it expires), scope (404), third-party panels, and menu links."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import zlib
from typing import Any
from urllib.parse import parse_qs
from urllib.parse import urlsplit

import pytest
from itsdangerous import BadSignature
from itsdangerous import SignatureExpired
from itsdangerous import URLSafeTimedSerializer

from meiqia.hookspecs import hookimpl
from meiqia.models import AuditLog
from meiqia.models import IframePlugin
from tests.conftest import close_app
from tests.conftest import make_app
from tests.factories import make_conversation
from tests.factories import make_visitor
from tests.helpers import ApiClient

URL = "/api/v1/iframe-plugins"
SALT = "meiqia.sidebar-panel"


def add_panel(api: ApiClient, **fields: Any) -> dict:
    body = {"name": "订单查询", "url": "https://crm.example.com/panel?lang=zh", **fields}
    response = api.post(URL, json=body)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def open_conversation(api: ApiClient, handler_id: int | None = None) -> Any:
    visitor = make_visitor(api.team["id"], name="张三", phone="13800138000",
                           note="老客户，<b>VIP</b>", tags=["复购"])
    return make_conversation(api.team["id"], visitor,
                             handler=handler_id or api.agent["id"], status="open")


def token_of(url: str) -> str:
    return parse_qs(urlsplit(url).query)["token"][0]


def test_admin_adds_a_panel_and_sees_the_secret_once(api):
    created = add_panel(api, height=420, position=2)
    assert len(created["secret"]) >= 32
    assert created["height"] == 420 and created["enabled"] is True
    listed = api.get(URL).get_json()
    assert [p["name"] for p in listed] == ["订单查询"]
    assert "secret" not in listed[0]
    assert "secret" not in api.get(f"{URL}/{created['id']}").get_json()
    assert IframePlugin.get_by_id(created["id"]).secret == created["secret"]

    rotated = api.post(f"{URL}/{created['id']}/rotate-secret").get_json()
    assert rotated["secret"] != created["secret"]
    changed = api.patch(f"{URL}/{created['id']}", json={"name": "CRM", "enabled": False})
    assert changed.status_code == 200 and changed.get_json()["enabled"] is False
    assert "secret" not in changed.get_json()
    assert api.delete(f"{URL}/{created['id']}").status_code == 200
    assert api.get(URL).get_json() == []
    actions = [a.action for a in AuditLog.select().order_by(AuditLog.id)]
    assert {"iframe_plugin.create", "iframe_plugin.rotate_secret",
            "iframe_plugin.delete"} <= set(actions)


@pytest.mark.parametrize("body, field", [
    ({"name": "x", "url": "javascript:alert(1)"}, "url"),
    ({"name": "x", "url": "data:text/html,<h1>hi</h1>"}, "url"),
    ({"name": "x", "url": "ftp://example.com/"}, "url"),
    ({"name": "x", "url": "https://"}, "url"),
    ({"name": "x", "url": "https://user:pw@example.com/"}, "url"),
    ({"name": "x", "url": "https://example.com/a b"}, "url"),
    ({"name": "  ", "url": "https://example.com/"}, "name"),
    ({"url": "https://example.com/"}, "name"),
    ({"name": "x", "url": "https://example.com/", "height": 10}, "height"),
    ({"name": "x", "url": "https://example.com/", "secret": "mine"}, "secret"),
])
def test_invalid_panels_are_refused_with_the_field(api, body, field):
    response = api.post(URL, json=body)
    assert response.status_code == 422, response.get_json()
    assert field in (response.get_json()["error"]["field"] or response.get_json()["error"]["message"])
    assert IframePlugin.select().count() == 0


def test_invalid_changes_are_refused_and_change_nothing(api):
    created = add_panel(api)
    response = api.patch(f"{URL}/{created['id']}", json={"url": "file:///etc/passwd"})
    assert response.status_code == 422
    assert response.get_json()["error"]["field"] == "url"
    assert IframePlugin.get_by_id(created["id"]).url == "https://crm.example.com/panel?lang=zh"


#: URLs urllib cannot read (a ValueError: 500) or reads wrongly (stored): each is a
#: 422 from the one URL check (services/validation.http_url), in our words.
MALFORMED_URLS = {
    "http://[::1": "url: the host name or IP address is not valid",
    "http://[中文]/": "url: the host name or IP address is not valid",
    "//[": "url: must start with http:// or https://",
    "http://a.cn:99999/": "url: the port must be a number from 1 to 65535",
    "https://shop.example.cn:端口/": "url: the port must be a number from 1 to 65535",
    "http://%zz/": "url: the host name or IP address is not valid",
    "http://xn--/": "url: the host name or IP address is not valid",
}
ZH = {"url: the host name or IP address is not valid": "网址：主机名或 IP 地址无效",
      "url: must start with http:// or https://": "网址：必须以 http:// 或 https:// 开头",
      "url: the port must be a number from 1 to 65535": "网址：端口必须是 1 到 65535 之间的数字"}


def test_malformed_urls_are_refused_in_our_words_on_create_and_change(api):
    created = add_panel(api)
    for url, message in MALFORMED_URLS.items():
        made = api.post(URL, json={"name": "x", "url": url})
        assert made.status_code == 422, (url, made.get_json())
        assert made.get_json()["error"] == {"code": "invalid", "field": "url",
                                            "message": message}
        changed = api.patch(f"{URL}/{created['id']}?lang=zh-CN", json={"url": url})
        assert changed.status_code == 422, (url, changed.get_json())
        assert changed.get_json()["error"]["message"] == ZH[message]
    assert IframePlugin.select().count() == 1
    assert IframePlugin.get_by_id(created["id"]).url == "https://crm.example.com/panel?lang=zh"
    # Still taken: an IDN host, an IPv6 address, a port.
    for url in ("https://例子.中国/面板", "http://[2001:db8::1]:8080/p", "https://a.cn:8443/"):
        assert api.post(URL, json={"name": "y", "url": url}).status_code == 201, url


def test_agents_may_not_manage_panels(api):
    created = add_panel(api)
    li = api.new_agent(email="li@example.com")
    assert li.get(URL).status_code in (403, 404)
    assert li.post(URL, json={"name": "x", "url": "https://example.com/"}).status_code in (403, 404)
    assert li.patch(f"{URL}/{created['id']}", json={"name": "y"}).status_code in (403, 404)
    assert li.delete(f"{URL}/{created['id']}").status_code in (403, 404)
    assert IframePlugin.get_by_id(created["id"]).name == "订单查询"


def test_panel_url_carries_a_token_the_secret_verifies(api):
    created = add_panel(api, height=420)
    add_panel(api, name="关闭的", url="https://off.example.com/", enabled=False)
    conversation = open_conversation(api)
    response = api.get(f"/api/v1/conversations/{conversation.id}/sidebar-panels")
    assert response.status_code == 200, response.get_json()
    panels = response.get_json()
    assert [(p["name"], p["height"]) for p in panels] == [("订单查询", 420)]
    assert "secret" not in panels[0]
    url = panels[0]["url"]
    assert url.startswith("https://crm.example.com/panel?lang=zh&token=")

    serializer = URLSafeTimedSerializer(created["secret"], salt=SALT)
    data = serializer.loads(token_of(url), max_age=600)
    assert data["team_id"] == api.team["id"]
    assert data["conversation_id"] == conversation.id
    assert data["visitor_id"] == conversation.visitor_id
    assert data["agent_id"] == api.agent["id"]
    assert data["customer"]["name"] == "张三"
    assert data["customer"]["phone"] == "13800138000"
    assert data["customer"]["note"] == "老客户，<b>VIP</b>"
    assert data["customer"]["tags"] == ["复购"]
    assert time.time() < data["exp"] <= time.time() + 600

    # Another secret (or a changed token) does not verify.
    with pytest.raises(BadSignature):
        URLSafeTimedSerializer("not-the-secret", salt=SALT).loads(token_of(url))
    with pytest.raises(BadSignature):
        serializer.loads(token_of(url)[:-2] + "xx")


def test_the_token_format_can_be_checked_without_itsdangerous(api):
    """What docs/plugins.md tells authors in other languages is what the host sends."""
    created = add_panel(api)
    conversation = open_conversation(api)
    url = api.get(f"/api/v1/conversations/{conversation.id}/sidebar-panels").get_json()[0]["url"]
    token = token_of(url)
    signed, signature = token.rsplit(".", 1)
    key = hashlib.sha1(SALT.encode() + b"signer" + created["secret"].encode()).digest()
    expected = hmac.new(key, signed.encode(), hashlib.sha1).digest()

    def unb64(text: str) -> bytes:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))

    assert hmac.compare_digest(unb64(signature), expected)
    payload = signed.rsplit(".", 1)[0]
    raw = zlib.decompress(unb64(payload[1:])) if payload.startswith(".") else unb64(payload)
    assert json.loads(raw)["conversation_id"] == conversation.id


def test_the_token_expires(api):
    created = add_panel(api)
    conversation = open_conversation(api)
    api.app.config["IFRAME_TOKEN_TTL"] = 1
    url = api.get(f"/api/v1/conversations/{conversation.id}/sidebar-panels").get_json()[0]["url"]
    serializer = URLSafeTimedSerializer(created["secret"], salt=SALT)
    data = serializer.loads(token_of(url), max_age=1)
    assert data["exp"] <= time.time() + 1
    while time.time() <= data["exp"] + 1:  # wait until it has expired
        time.sleep(0.2)
    with pytest.raises(SignatureExpired):
        serializer.loads(token_of(url), max_age=1)
    from meiqia.services import iframe_plugins

    with pytest.raises(SignatureExpired):
        iframe_plugins.verify_token(token_of(url), created["secret"])


def test_an_expired_exp_is_refused_by_verify_token(api):
    from meiqia.services import iframe_plugins

    token = iframe_plugins.sign_token({"conversation_id": 1, "exp": int(time.time()) - 5}, "s")
    with pytest.raises(SignatureExpired):
        iframe_plugins.verify_token(token, "s", max_age=600)
    good = iframe_plugins.sign_token({"conversation_id": 1, "exp": int(time.time()) + 60}, "s")
    assert iframe_plugins.verify_token(good, "s", max_age=600)["conversation_id"] == 1


def test_panels_of_a_conversation_outside_my_scope_are_404(api):
    add_panel(api)
    li = api.new_agent(email="li@example.com", name="李客服", scope="self")
    zhao = api.new_agent(email="zhao@example.com", name="赵客服", scope="self")
    conversation = open_conversation(api, handler_id=li.agent["id"])
    assert li.get(f"/api/v1/conversations/{conversation.id}/sidebar-panels").status_code == 200
    response = zhao.get(f"/api/v1/conversations/{conversation.id}/sidebar-panels")
    assert response.status_code == 404
    assert "token" not in json.dumps(response.get_json())
    assert api.get("/api/v1/conversations/999999/sidebar-panels").status_code == 404
    # The token names the agent who asked.
    url = li.get(f"/api/v1/conversations/{conversation.id}/sidebar-panels").get_json()[0]["url"]
    secret = IframePlugin.get().secret
    assert URLSafeTimedSerializer(secret, salt=SALT).loads(token_of(url))["agent_id"] == \
        li.agent["id"]


def test_other_teams_panels_are_not_shown_or_editable(api, app):
    created = add_panel(api)
    app.config["OPEN_REGISTRATION"] = True  # a second team on this server
    other = ApiClient(app)
    response = other.client.post("/api/v1/auth/register", json={
        "team_name": "别的团队", "name": "周管理", "email": "zhou@example.com",
        "password": "another-pass-1"})
    assert response.status_code == 201
    other._take(response.get_json())
    assert other.get(URL).get_json() == []
    assert other.patch(f"{URL}/{created['id']}", json={"name": "x"}).status_code == 404
    mine = open_conversation(other)
    assert other.get(f"/api/v1/conversations/{mine.id}/sidebar-panels").get_json() == []


class CrmPlugin:
    """A third-party plugin: one panel with its own secret, one broken panel."""

    __name__ = "crm_plugin"

    @hookimpl
    def sidebar_panels(self, conversation, visitor, actor, request):
        return [{"name": f"CRM · {visitor.name}", "url": "https://crm.example.org/c#top",
                 "height": 99999, "secret": "crm-secret", "position": -1},
                {"name": "坏的", "url": "javascript:alert(1)"},
                "not a panel"]

    @hookimpl
    def menu_links(self, actor, request):
        links = [{"href": "https://crm.example.org/", "label": "CRM <系统>"},
                 {"href": "javascript:alert(1)", "label": "坏链接"}]
        if actor.is_admin:
            links.append({"href": "/admin/iframe-plugins", "label": "仅管理员"})
        return links


class BrokenPlugin:
    __name__ = "broken_plugin"

    @hookimpl
    def sidebar_panels(self, conversation, visitor, actor, request):
        raise RuntimeError("the CRM is down")


@pytest.fixture
def with_plugins(tmp_path):
    app = make_app(tmp_path, plugins=(CrmPlugin(), BrokenPlugin()))
    with app.app_context():
        yield ApiClient.registered(app)
    close_app(app)


def test_third_party_panels_come_through_the_hook(with_plugins):
    api = with_plugins
    created = add_panel(api, position=0)
    conversation = open_conversation(api)
    panels = api.get(f"/api/v1/conversations/{conversation.id}/sidebar-panels").get_json()
    assert [p["name"] for p in panels] == ["CRM · 张三", "订单查询"]
    crm = panels[0]
    assert crm["height"] == 2000  # clamped
    assert crm["url"].startswith("https://crm.example.org/c?token=") and crm["url"].endswith("#top")
    data = URLSafeTimedSerializer("crm-secret", salt=SALT).loads(token_of(crm["url"]))
    assert data["conversation_id"] == conversation.id
    URLSafeTimedSerializer(created["secret"], salt=SALT).loads(token_of(panels[1]["url"]))


def test_menu_links_of_plugins_are_in_the_top_bar(with_plugins):
    api = with_plugins
    page = api.get("/workspace")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'href="https://crm.example.org/"' in html
    assert "CRM &lt;系统&gt;" in html
    assert "javascript:alert" not in html
    assert 'href="/admin/iframe-plugins"' in html and "仅管理员" in html
    li = api.new_agent(email="li@example.com")
    assert "仅管理员" not in li.get("/workspace").get_data(as_text=True)


def test_openapi_documents_the_routes(api):
    paths = api.get("/api/v1/openapi.json").get_json()["paths"]
    assert set(paths["/api/v1/iframe-plugins"]) == {"get", "post"}
    assert set(paths["/api/v1/iframe-plugins/{plugin_id}"]) == {"get", "patch", "delete"}
    assert "post" in paths["/api/v1/iframe-plugins/{plugin_id}/rotate-secret"]
    assert "get" in paths["/api/v1/conversations/{conversation_id}/sidebar-panels"]


def test_the_verification_snippet_of_the_docs_works(api):
    """docs/plugins.md's Flask example accepts the host's token and refuses others."""
    import re
    from pathlib import Path

    docs = (Path(__file__).resolve().parents[2] / "docs" / "plugins.md").read_text("utf-8")
    section = docs.split("## Sidebar iframe panels", 1)[1].split("\n## ", 1)[0]
    snippet = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    created = add_panel(api)
    snippet = snippet.replace('"the secret shown when the panel was added"',
                              repr(created["secret"]))
    namespace: dict[str, Any] = {"__name__": "panel_example"}
    exec(compile(snippet, "docs/plugins.md", "exec"), namespace)  # noqa: S102
    plugin_server = namespace["app"].test_client()

    conversation = open_conversation(api)
    url = api.get(f"/api/v1/conversations/{conversation.id}/sidebar-panels").get_json()[0]["url"]
    answer = plugin_server.get("/panel", query_string={"token": token_of(url)})
    assert answer.status_code == 200
    assert answer.get_data(as_text=True) == "<p>张三 · 13800138000</p>"
    assert plugin_server.get("/panel", query_string={"token": "forged"}).status_code == 403
    assert plugin_server.get("/panel").status_code == 403


def test_a_long_card_keeps_the_url_short(api):
    from meiqia.models import Visitor

    def text(n: int, seed: int) -> str:  # varied CJK text, which compresses badly
        return "".join(chr(0x4E00 + (i * 7919 + seed) % 20000) for i in range(n))

    add_panel(api)
    conversation = open_conversation(api)
    Visitor.update(note=text(5000, 1), address=text(250, 2),
                   attributes={f"k{i}": text(1000, i) for i in range(50)}).where(
        Visitor.id == conversation.visitor_id).execute()
    url = api.get(f"/api/v1/conversations/{conversation.id}/sidebar-panels").get_json()[0]["url"]
    assert len(url) < 4200
    data = URLSafeTimedSerializer(IframePlugin.get().secret, salt=SALT).loads(token_of(url))
    assert data["truncated"] is True
    assert data["customer"]["note"].startswith(text(20, 1)) and data["customer"]["note"].endswith("…")
    assert data["customer"]["attributes"] == {}
    assert data["customer"]["name"] == "张三" and data["visitor_id"] == conversation.visitor_id
    # An ordinary card is sent whole.
    Visitor.update(note="老客户", address="南京", attributes={"会员等级": "金卡"}).where(
        Visitor.id == conversation.visitor_id).execute()
    url = api.get(f"/api/v1/conversations/{conversation.id}/sidebar-panels").get_json()[0]["url"]
    data = URLSafeTimedSerializer(IframePlugin.get().secret, salt=SALT).loads(token_of(url))
    assert "truncated" not in data and data["customer"]["attributes"] == {"会员等级": "金卡"}
