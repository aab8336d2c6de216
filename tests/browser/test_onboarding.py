"""Issue 17 in Chromium at 1366x768: the first-run checklist ticking as the admin does
each step, the history table fitting, in-app confirm dialogs, the favicon, settings
errors in view, and an agent back in through a one-time password reset link."""

from __future__ import annotations

import datetime
from typing import Any

from playwright.sync_api import expect

from meiqia.models.base import utcnow
from tests.browser.conftest import login
from tests.factories import make_conversation
from tests.factories import make_visitor
from tests.helpers import AGENT_PASSWORD
from tests.helpers import ApiClient
from tests.helpers import wait_until

SIZE = {"width": 1366, "height": 768}


def _native_dialogs(page: Any) -> list[str]:
    """Every window.alert/confirm/prompt the page opens (there must be none)."""
    seen: list[str] = []
    page.on("dialog", lambda d: (seen.append(d.message), d.dismiss()))
    return seen


def _step(page: Any, key: str) -> Any:
    return page.locator(f"#setup .setup-step[data-step='{key}']")


def test_the_checklist_ticks_as_the_admin_does_each_step(server, admin, new_context):
    page = new_context(viewport=SIZE).new_page()
    login(page, server, next="/dashboard")
    expect(page.locator("#setup-progress")).to_have_text("已完成 0/5")
    expect(page.locator("#setup .setup-snippet")).to_have_value(
        f'<script src="{server.url}/widget.js" data-team="{admin.team["id"]}" async></script>')
    expect(page.locator("#setup .setup-copy")).to_have_text("复制")
    test_link = page.locator("#setup a.setup-test")
    expect(test_link).to_have_attribute("href", f"{server.url}/demo?team={admin.team['id']}")
    expect(page.locator("#setup-dismiss")).to_have_count(0)

    # "Test it" opens the demo with the widget: that alone does not tick the step.
    with page.context.expect_page() as popup:
        test_link.click()
    demo = popup.value
    with server.app.app_context():
        from meiqia.models import Visit

        wait_until(lambda: Visit.select().count() == 1)  # the demo's widget started a visit
    demo.close()

    # Welcome and working hours on the settings page, through the form.
    _step(page, "welcome").locator("a.setup-go").click()
    page.wait_for_url(f"{server.url}/admin/settings#settings.welcome_message")
    welcome = page.locator("textarea[name='settings.welcome_message']")
    expect(welcome).to_have_attribute("placeholder", "您好，欢迎光临！我是智能助手，可以回答发货、"
                                      "退换货、支付等常见问题；需要人工客服时，点“转人工”即可。")
    expect(page.locator("input[name='settings.name']").or_(
        page.locator("input[name=name]"))).not_to_have_value("")
    welcome.fill("欢迎光临小店，有问题随时问我！")
    page.select_option("select[name='settings.working_hours.mode']", "hours")
    page.uncheck("input[name='settings.working_hours.days'][value='5']")
    page.click("#settings-form button[type=submit]")
    expect(page.locator(".toast")).to_contain_text("已保存")
    saved = admin.get("/api/v1/team").get_json()["settings"]
    assert saved["welcome_message"] == "欢迎光临小店，有问题随时问我！"
    assert saved["working_hours"] == {"mode": "hours", "days": [1, 2, 3, 4],
                                      "start": "09:00", "end": "18:00"}

    # An agent, a KB entry and a visitor from the team's own site, through the API.
    admin.new_agent()
    assert admin.post("/api/v1/knowledge", json={
        "questions": ["发票怎么开"], "answer": "在订单页申请。"}).status_code == 201
    page.goto(f"{server.url}/dashboard")
    expect(page.locator("#setup-progress")).to_have_text("已完成 4/5")
    expect(_step(page, "widget")).to_have_attribute("data-done", "false")
    for key in ("agent", "kb", "welcome", "hours"):
        expect(_step(page, key)).to_have_attribute("data-done", "true")
    session = server.app.test_client().post("/api/v1/widget/session", json={
        "team_id": admin.team["id"], "landing_page": "https://shop.example.com/"})
    assert session.status_code == 200
    page.reload()
    expect(page.locator("#setup-progress")).to_have_text("已完成 5/5")
    page.click("#setup-dismiss")
    expect(page.locator("#setup")).to_be_hidden()
    page.reload()
    expect(page.locator("#dash-now")).to_be_visible()
    expect(page.locator("#setup")).to_be_hidden()


def test_the_history_table_fits_at_1366(server, admin, new_context):
    now = utcnow().replace(microsecond=0)
    with server.app.app_context():
        team, me = admin.team["id"], admin.agent["id"]
        for n in range(3):
            visitor = make_visitor(team, name=f"一位名字相当长的访客{n}", region="广东省深圳市南山区",
                                   search_keyword="退款到账时间很长怎么办", source="search_engine")
            make_conversation(team, visitor, handler=me, tags=["退款", "加急", "售后"],
                              summary="退款咨询，已经核实并退回原账户，请客户注意查收",
                              ended_at=now - datetime.timedelta(hours=n + 1),
                              messages=[("visitor", "退款还没到账", 0), ("agent", "马上查", 30)])
    page = new_context(viewport=SIZE).new_page()
    login(page, server, next="/history")
    page.locator("#history-total").filter(has_text="共").wait_for()
    expect(page.locator("#history-table tbody tr[data-id]")).to_have_count(3)
    columns = page.locator("#history-table thead th").count()
    assert columns >= 15, columns  # every column shown (the default)
    sizes = page.evaluate("""() => {
        const wrap = document.querySelector('.table-wrap');
        return {page: document.documentElement.scrollWidth, view: window.innerWidth,
                inner: wrap.scrollWidth, frame: wrap.clientWidth};
    }""")
    assert sizes["page"] <= sizes["view"], sizes  # no page-level sideways scroll
    assert sizes["inner"] > sizes["frame"], sizes  # the table scrolls inside its frame
    first = page.locator("#history-table tbody tr[data-id]").first.locator("td").first
    before = first.bounding_box()
    page.evaluate("() => { document.querySelector('.table-wrap').scrollLeft = 600; }")
    page.wait_for_function("() => document.querySelector('.table-wrap').scrollLeft > 0")
    after = first.bounding_box()
    second = page.locator("#history-table tbody tr[data-id]").first.locator("td").nth(1)
    assert after["x"] == before["x"], (before, after)  # the first column stays
    assert second.bounding_box()["x"] < before["x"] + before["width"]  # the rest moved under it
    # The column chooser hides one, and the choice is still there after a reload.
    page.click("#choose-columns")
    page.locator("#column-list input[value='ip']").uncheck()
    page.click(".columns-form button[type=submit]")
    expect(page.locator("#history-table thead th[data-col='ip']")).to_have_count(0)
    page.reload()
    page.locator("#history-total").filter(has_text="共").wait_for()
    expect(page.locator("#history-table thead th[data-col='ip']")).to_have_count(0)


def test_confirm_dialogs_are_the_apps_own(server, admin, new_context):
    assert admin.post("/api/v1/groups", json={"name": "售后组"}).status_code == 201
    page = new_context(viewport=SIZE).new_page()
    native = _native_dialogs(page)
    login(page, server, next="/admin/groups")
    item = page.locator("#groups-list li", has_text="售后组")
    item.locator("button.danger").click()
    box = page.locator("dialog.confirm-dialog")
    expect(box).to_be_visible()
    expect(box).to_contain_text("售后组")
    box.locator("button", has_text="取消").click()
    expect(box).to_have_count(0)
    expect(item).to_be_visible()  # cancelled: still there
    item.locator("button.danger").click()
    page.click("dialog.confirm-dialog .confirm-ok")
    expect(page.locator("#groups-list li", has_text="售后组")).to_have_count(0)
    assert admin.get("/api/v1/groups").get_json() == []
    assert native == []


def test_the_favicon_is_served_and_no_page_asset_is_missing(server, admin, new_context):
    page = new_context(viewport=SIZE).new_page()
    missing: list[str] = []
    page.on("response", lambda r: missing.append(r.url) if r.status == 404 else None)
    login(page, server, next="/dashboard")
    page.goto(f"{server.url}/login")
    icon = page.evaluate("() => document.querySelector('link[rel=icon]').href")
    assert icon == f"{server.url}/favicon.svg"
    for path, kind in (("/favicon.svg", "image/svg+xml"), ("/favicon.ico", "image/vnd.microsoft.icon")):
        response = page.request.get(f"{server.url}{path}")
        assert response.status == 200 and response.headers["content-type"].startswith(kind)
    assert page.request.get(f"{server.url}/favicon.ico").body()[:4] == b"\x00\x00\x01\x00"
    assert missing == []


def test_a_settings_error_is_beside_its_field_and_in_view(server, admin, new_context):
    page = new_context(viewport=SIZE).new_page()
    login(page, server, next="/admin/settings")
    page.locator("input[name='settings.widget.color']").wait_for()
    expect(page.locator("input[name=name]")).not_to_have_value("")
    # A bad time zone, sent from the bottom of the page (the Save button).
    page.fill("input[name=timezone]", "Mars/Olympus")
    page.locator("#settings-form button[type=submit]").scroll_into_view_if_needed()
    page.click("#settings-form button[type=submit]")
    note = page.locator("#settings-form .field-error")
    expect(note).to_contain_text("时区")
    expect(note).to_be_in_viewport()
    header = page.locator(".topbar").bounding_box()
    box = note.bounding_box()
    assert box["y"] >= header["y"] + header["height"], (box, header)  # not under the bar
    assert box["y"] + box["height"] <= SIZE["height"]
    # Beside its field: right under the time zone input, which is marked.
    field = page.locator("input[name=timezone]")
    expect(field).to_have_attribute("aria-invalid", "true")
    assert 0 <= box["y"] - (field.bounding_box()["y"] + field.bounding_box()["height"]) < 40


def test_an_agent_gets_back_in_through_a_one_time_link(server, admin, new_context):
    li = admin.new_agent(name="李客服", email="li@example.com")
    from meiqia.models import Agent

    with server.app.app_context():
        Agent.update(preferences={"language": "en"}).where(Agent.id == li.agent["id"]).execute()
    page = new_context(viewport=SIZE).new_page()
    native = _native_dialogs(page)
    login(page, server, next="/admin/agents")
    row = page.locator("#agents-table tbody tr", has_text="li@example.com")
    row.locator("button.reset-password").click()
    page.click("dialog.confirm-dialog .confirm-ok")
    url_field = page.locator("dialog input.reset-url")
    expect(url_field).to_have_value(__import__("re").compile(
        rf"^{server.url}/reset-password/[A-Za-z0-9_-]{{30,}}$"))
    expect(page.locator("dialog")).to_contain_text("只显示这一次")
    link = url_field.input_value()
    assert native == []

    # The agent, in another browser with a Chinese locale, reads the page in his English.
    agent = new_context(viewport=SIZE, locale="zh-CN").new_page()
    agent.goto(link)
    expect(agent.locator("h2")).to_have_text("Set a new password")
    agent.fill("input[name=password]", "brand-new-9")
    agent.fill("input[name=password2]", "brand-new-8")
    agent.click("button[type=submit]")
    expect(agent.locator("#reset-error")).to_contain_text("differ")
    agent.fill("input[name=password]", "abcdefgh")
    agent.fill("input[name=password2]", "abcdefgh")
    agent.click("button[type=submit]")
    expect(agent.locator("#reset-error")).to_contain_text("mix at least two")
    agent.fill("input[name=password]", "brand-new-9")
    agent.fill("input[name=password2]", "brand-new-9")
    agent.click("button[type=submit]")
    agent.wait_for_url(f"{server.url}/login**")
    expect(agent.locator("p.notice")).to_have_text("Your password is set: log in with it.")
    expect(agent.locator("input[name=email]")).to_have_value("li@example.com")
    agent.fill("input[name=password]", "brand-new-9")
    agent.click("button[type=submit]")
    agent.wait_for_url(f"{server.url}/workspace")  # an agent lands on his workspace
    # Used: the link is dead now, and his old password with it.
    agent.goto(link)
    expect(agent.locator("#reset-dead")).to_contain_text("invalid, used or expired")
    assert ApiClient(server.app).login("li@example.com", AGENT_PASSWORD).status_code == 401


def test_the_widget_greets_each_visitor_in_his_language(server, admin, new_context):
    from tests.browser.test_widget import open_widget

    zh = open_widget(new_context(viewport=SIZE).new_page(), server, admin.team["id"])
    expect(zh.locator(".mq-greeting .mq-text")).to_have_text(
        "您好，欢迎光临！我是智能助手，可以回答发货、退换货、支付等常见问题；"
        "需要人工客服时，点“转人工”即可。")
    en = open_widget(new_context(viewport=SIZE, locale="en-US").new_page(), server,
                     admin.team["id"], lang="en")
    expect(en.locator(".mq-greeting .mq-text")).to_contain_text("Hello and welcome!")
    expect(en.locator("#mq-human")).to_have_count(1)
    # The team's own welcome replaces it, as a stored first message, for everyone.
    admin.patch("/api/v1/team", json={"settings": {"welcome_message": "欢迎来到小美优选"}})
    again = open_widget(new_context(viewport=SIZE, locale="en-US").new_page(), server,
                        admin.team["id"], lang="en")
    expect(again.locator(".mq-msg.from-bot .mq-text").first).to_have_text("欢迎来到小美优选")
    expect(again.locator(".mq-greeting")).to_have_count(0)
