"""The Plugins admin page in Chromium: a plugin that keeps failing shows as suspended
with its errors (in Chinese, then English); Reset and Turn off work from the page."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect

from meiqia.hookspecs import hookimpl
from tests.browser.conftest import login
from tests.browser.conftest import screenshot
from tests.browser.conftest import serve
from tests.helpers import ApiClient


class BrokenLinks:
    """Raises whenever the top bar asks for its links (every page load)."""

    __name__ = "broken_links"

    @hookimpl
    def menu_links(self, actor: Any, request: Any) -> list:
        raise RuntimeError("CRM 接口 500")


def test_a_failing_plugin_is_suspended_and_shown_with_its_errors(tmp_path, new_context):
    with serve(tmp_path, plugins=(BrokenLinks(),), PLUGIN_BREAKER_FAILURES=2,
               PLUGIN_STATE_REFRESH=0.2) as server:
        with server.app.app_context():
            ApiClient.registered(server.app)
        page = new_context(viewport={"width": 1360, "height": 900}, locale="zh-CN").new_page()
        login(page, server)  # the workspace's top bar: a failure
        page.goto(f"{server.url}/admin/plugins")  # a second: the breaker opens
        row = page.locator("#plg-table tbody tr[data-name=broken_links]")
        expect(row).to_have_attribute("data-state", "suspended")
        expect(row.locator(".plg-state")).to_contain_text("已暂停（熔断）")
        expect(row).to_contain_text("menu_links: 出错：RuntimeError: CRM 接口 500")
        expect(row).to_contain_text("代码注册")
        builtin = page.locator("#plg-table tbody tr[data-name=default_routing]")
        expect(builtin.locator(".plg-state")).to_have_text("运行中")
        screenshot(page, "admin-plugins")

        row.get_by_role("button", name="重置").click()
        expect(row).to_have_attribute("data-state", "active")
        row.get_by_role("button", name="关闭").click()
        expect(row).to_have_attribute("data-state", "off")
        expect(row.locator(".plg-state")).to_have_text("本团队已关闭")

        page.goto(f"{server.url}/admin/plugins?lang=en")
        row = page.locator("#plg-table tbody tr[data-name=broken_links]")
        expect(row.locator(".plg-state")).to_have_text("Off for this team")
        expect(page.locator("h1")).to_have_text("Plugins")
