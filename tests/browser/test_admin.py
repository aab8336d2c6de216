"""Log in, the admin pages end to end, the language switch, names that try to be HTML."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.browser.conftest import login
from tests.browser.conftest import screenshot
from tests.helpers import AGENT_PASSWORD

XSS = '<img src=x onerror="window.__xss=1">李<script>window.__xss=2</script>'


def test_login_with_a_wrong_password_then_the_right_one(server, admin, new_context):
    page = new_context().new_page()
    page.goto(f"{server.url}/login")
    page.fill("input[name=email]", "admin@example.com")
    page.fill("input[name=password]", "not-the-password-1")
    page.click("button[type=submit]")
    assert page.locator("[role=alert]").inner_text() != ""
    login(page, server)
    assert page.locator(".topbar .me").inner_text() == "王管理"


def test_admin_creates_an_agent_who_then_logs_in(server, admin, new_context):
    admin.post("/api/v1/groups", json={"name": "售后组"})
    page = new_context().new_page()
    login(page, server)
    page.goto(f"{server.url}/admin/agents")
    page.click("#new-agent")
    form = page.locator("dialog form")
    form.locator("input[name=name]").fill("李客服")
    form.locator("input[name=email]").fill("li@example.com")
    form.locator("input[name=password]").fill("short")
    form.locator("button[type=submit]").click()
    # The server refuses the weak password and says why (in the page's language), next to
    # the field.
    expect(form.locator(".form-error")).to_contain_text("密码：至少 8 个字符")
    assert form.locator("input[name=password]").get_attribute("aria-invalid") == "true"
    form.locator("input[name=password]").fill(AGENT_PASSWORD)
    form.locator("select[name=scope]").select_option("custom")
    form.locator("select[name=scope_agents]").select_option(label="王管理")
    form.locator("input[name=max_concurrent]").fill("3")
    form.locator("select[name=groups]").select_option(label="售后组")
    form.locator("button[type=submit]").click()
    row = page.locator("#agents-table tbody tr", has_text="li@example.com")
    row.wait_for()
    assert "售后组" in row.inner_text()
    screenshot(page, "admin-agents")
    created = [a for a in admin.get("/api/v1/agents").get_json() if a["email"] == "li@example.com"][0]
    assert created["scope"] == "custom" and created["scope_agents"] == [admin.agent["id"]]
    assert created["max_concurrent"] == 3

    # He edits nothing but can log in with what the admin set.
    other = new_context().new_page()
    login(other, server, "li@example.com", AGENT_PASSWORD)
    assert other.locator(".topbar .me").inner_text() == "李客服"
    # Admin pages are not his: 404, like anything outside his scope.
    response = other.goto(f"{server.url}/admin/agents")
    assert response.status == 404


def test_an_agent_name_made_of_html_renders_as_text(server, admin, new_context):
    response = admin.post("/api/v1/agents", json={
        "name": XSS[:80], "email": "x@example.com", "password": AGENT_PASSWORD})
    assert response.status_code == 201
    page = new_context().new_page()
    login(page, server)
    page.goto(f"{server.url}/admin/agents")
    cell = page.locator("#agents-table .agent-name", has_text="onerror")
    cell.wait_for()
    assert cell.inner_text() == XSS[:80]
    assert page.evaluate("window.__xss") is None
    assert page.locator("#agents-table img").count() == 0


def test_team_settings_are_saved_and_refused_with_a_reason(server, admin, new_context):
    page = new_context().new_page()
    login(page, server)
    page.goto(f"{server.url}/admin/settings")
    form = page.locator("#settings-form")
    form.locator("textarea[name='settings.welcome_message']").wait_for()
    page.wait_for_function("document.querySelector('[name=name]').value !== ''")
    form.locator("input[name='settings.suggest_threshold']").fill("0.9")
    form.locator("input[name='settings.answer_threshold']").fill("0.6")
    form.locator("button[type=submit]").click()
    expect(form.locator(".form-error")).to_contain_text("“您是不是想问”阈值")
    form.locator("input[name='settings.suggest_threshold']").fill("0.4")
    form.locator("textarea[name='settings.welcome_message']").fill("您好，欢迎光临小美优选！")
    form.locator("input[name='settings.widget.color']").fill("#ff5a5f")
    origins = form.locator("textarea[name='settings.widget.allowed_origins']")
    origins.fill("https://shop.example.com/path")  # a page, not a site: refused
    form.locator("button[type=submit]").click()
    expect(form.locator(".form-error")).to_contain_text("允许嵌入网页插件的网站")
    origins.fill("https://shop.example.com\n\n  https://*.example.cn  \n")
    form.locator("button[type=submit]").click()
    page.locator(".toast").first.wait_for()
    screenshot(page, "admin-settings")
    settings = admin.get("/api/v1/team").get_json()["settings"]
    assert settings["answer_threshold"] == 0.6 and settings["suggest_threshold"] == 0.4
    assert settings["welcome_message"] == "您好，欢迎光临小美优选！"
    assert settings["widget"]["color"] == "#ff5a5f"
    assert settings["widget"]["allowed_origins"] == ["https://shop.example.com",
                                                     "https://*.example.cn"]
    page.reload()  # shown one a line, as typed
    expect(origins).to_have_value("https://shop.example.com\nhttps://*.example.cn")


def test_groups_and_tokens(server, admin, new_context):
    page = new_context().new_page()
    login(page, server)
    page.goto(f"{server.url}/admin/groups")
    page.fill("#group-form input[name=name]", "售前组")
    page.click("#group-form button[type=submit]")
    page.locator("#groups-list li", has_text="售前组").wait_for()
    page.fill("#group-form input[name=name]", "售前组")
    page.click("#group-form button[type=submit]")
    expect(page.locator("#group-form .form-error")).to_contain_text("已有同名分组")
    page.goto(f"{server.url}/tokens")
    page.fill("#token-form input[name=name]", "ERP 集成")
    page.click("#token-form button[type=submit]")
    token = page.locator("#new-token-value")
    token.wait_for()
    assert token.inner_text().startswith("mq_")
    page.locator("#tokens-table tr", has_text="ERP 集成").wait_for()


def test_language_switch_is_remembered(server, admin, new_context):
    page = new_context(locale="zh-CN").new_page()
    login(page, server)
    page.goto(f"{server.url}/admin/agents")
    assert page.locator(".tabs a[aria-current=page]").inner_text() == "客服账号"
    page.click("#lang-switch")
    page.wait_for_url(f"{server.url}/admin/agents")
    assert page.locator(".tabs a[aria-current=page]").inner_text() == "Agents"
    assert page.locator("html").get_attribute("lang") == "en"
    page.goto(f"{server.url}/admin/groups")
    assert page.locator("h1").inner_text() == "Groups"
