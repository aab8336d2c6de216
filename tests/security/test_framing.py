"""Issue 15 §7: no page of ours can be put in someone else's frame (clickjacking).

Every GET route of the app (pages, API, downloads, error answers), asked by
nobody, by a logged-in admin and by a visitor, says ``frame-ancestors 'none'`` and
``X-Frame-Options: DENY``; the widget frame alone may be framed, by the sites the
team names (any site when it names none). The browser side (Chromium refusing
the frame) is tests/browser/test_framing.py.
"""

from __future__ import annotations

from typing import Any

from tests.security.matrix import ROUTES
from tests.security.test_authz_matrix import app_routes
from tests.security.test_authz_matrix import call
from tests.security.test_authz_matrix import fill
from tests.security.test_authz_matrix import world  # noqa: F401 - the fixture

WIDGET_FRAME = "/widget/frame"


def frame_policy(response: Any) -> str:
    policy = response.headers.get("Content-Security-Policy", "")
    return next((p.strip() for p in policy.split(";") if "frame-ancestors" in p), "")


def assert_not_frameable(response: Any, where: str) -> None:
    assert frame_policy(response) == "frame-ancestors 'none'", (where, response.headers)
    assert response.headers.get("X-Frame-Options") == "DENY", where


def test_every_page_and_answer_refuses_to_be_framed(world):  # noqa: F811
    api = world["api"]
    app = api.app
    visitor = {"X-Visitor-Token": world["token"]}
    checked = 0
    for (method, rule), (kind, _) in sorted(ROUTES.items()):
        if method != "GET" or kind == "ws" or (method, rule) not in app_routes(app):
            continue
        url = fill(rule, world)
        if rule == WIDGET_FRAME:
            url += f"?team={api.team['id']}"
        for who, client, headers in (("anonymous", app.test_client(), {}),
                                     ("admin", api.client, {}),
                                     ("visitor", app.test_client(), visitor)):
            response = call(client, method, url, headers)
            where = f"{who} GET {url} → {response.status_code}"
            if rule == WIDGET_FRAME:
                assert frame_policy(response) == "frame-ancestors *", where
                assert "X-Frame-Options" not in response.headers, where
            else:
                assert_not_frameable(response, where)
            checked += 1
    assert checked > 150  # every GET route, three ways
    # error answers and static files too
    for url in ("/no-such-page", "/api/v1/no-such-route", "/static/app.css",
                "/widget/frame?team=999999"):
        assert_not_frameable(call(api.client, "GET", url), url)


def test_downloads_keep_their_sandbox_and_add_the_frame_rule(world):  # noqa: F811
    response = call(world["api"].client, "GET", f"/api/v1/attachments/{world['key']}")
    assert response.status_code == 200
    policy = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "sandbox" in policy
    assert_not_frameable(response, "attachment")


def test_the_widget_frame_may_be_framed_only_by_the_teams_sites(api):
    team = api.team["id"]
    sites = ["https://shop.example.com", "https://*.example.cn", "http://localhost:8080"]
    saved = api.patch("/api/v1/team", json={"settings": {"widget": {"allowed_origins": sites}}})
    assert saved.status_code == 200, saved.get_json()
    assert saved.get_json()["settings"]["widget"]["allowed_origins"] == sites
    frame = api.app.test_client().get(f"{WIDGET_FRAME}?team={team}")
    assert frame.status_code == 200
    assert frame_policy(frame) == "frame-ancestors 'self' " + " ".join(sites)
    assert "X-Frame-Options" not in frame.headers
    # only sites: no paths, no other schemes, nothing that would widen the policy
    for bad in ("https://shop.example.com/path", "javascript:alert(1)", "*", "'self'",
                "https://a.example.com; script-src *", "data:", "https://"):
        refused = api.patch("/api/v1/team", json={"settings": {"widget": {
            "allowed_origins": [bad]}}}, headers={"Accept-Language": "zh-CN"})
        assert refused.status_code == 422, bad
        error = refused.get_json()["error"]
        assert error["field"] == "settings.widget.allowed_origins[0]", error
        assert error["message"] == "允许嵌入网页插件的网站（第 1 项）：格式不正确", error
    # emptied: any site again (the one-line embed works anywhere)
    api.patch("/api/v1/team", json={"settings": {"widget": {"allowed_origins": []}}})
    frame = api.app.test_client().get(f"{WIDGET_FRAME}?team={team}")
    assert frame_policy(frame) == "frame-ancestors *"


def test_a_newline_cannot_slip_into_the_frame_policy(api):
    """Python's ``$`` matches before a final newline; a schema pattern must not."""
    for bad in ("https://shop.example.com\n", "https://shop.example.com\r\n"):
        refused = api.patch("/api/v1/team", json={"settings": {"widget": {
            "allowed_origins": [bad]}}})
        assert refused.status_code == 422, repr(bad)
    colour = api.patch("/api/v1/team", json={"settings": {"widget": {"color": "#ff5a5f\n"}}})
    assert colour.status_code == 422
    frame = api.app.test_client().get(f"{WIDGET_FRAME}?team={api.team['id']}")
    assert frame.status_code == 200 and frame_policy(frame) == "frame-ancestors *"


def test_a_site_port_outside_1_to_65535_is_refused_and_never_framed(api):
    """Found from outside: ``http://a.cn:99999`` was saved (200) and sent as a
    frame-ancestors source, though §7 says sites are checked for scheme, host, port."""
    from meiqia.models import Team

    for bad in ("http://a.cn:99999", "https://shop.example.com:0", "http://a.cn:65536",
                "http://localhost:100000000000000000000"):
        sites = ["https://shop.example.com", bad]
        refused = api.patch("/api/v1/team", json={"settings": {"widget": {
            "allowed_origins": sites}}}, headers={"Accept-Language": "zh-CN"})
        assert refused.status_code == 422, (bad, refused.get_json())
        error = refused.get_json()["error"]
        assert error["field"] == "settings.widget.allowed_origins[1]", error
        assert error["message"] == (
            f"允许嵌入网页插件的网站（第 2 项）：{bad} 的端口必须在 1 到 65535 之间"), error
        english = api.patch("/api/v1/team", json={"settings": {"widget": {
            "allowed_origins": sites}}}, headers={"Accept-Language": "en"}).get_json()
        assert english["error"]["message"] == (
            f"settings.widget.allowed_origins[1]: {bad}: the port must be 1-65535")
    for good in ("http://a.cn:1", "http://a.cn:65535", "https://*.example.cn:8443"):
        saved = api.patch("/api/v1/team", json={"settings": {"widget": {
            "allowed_origins": [good]}}})
        assert saved.status_code == 200, (good, saved.get_json())
    # A site stored before the check (written straight to the row) never reaches the header.
    team = Team.get_by_id(api.team["id"])
    team.settings = {"widget": {"allowed_origins": ["https://shop.example.com",
                                                    "http://a.cn:99999"]}}
    team.save()
    api.app.extensions.get("meiqia.recent_teams", {}).clear()
    frame = api.app.test_client().get(f"{WIDGET_FRAME}?team={api.team['id']}")
    assert frame_policy(frame) == "frame-ancestors 'self' https://shop.example.com"
