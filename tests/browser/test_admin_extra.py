"""Admin pages for quick replies, conversation rules, sidebar iframe plugins and ticket
sinks, end to end in Chromium, and what they change in the agent's workspace.

The panel and the webhook receiver are a tiny Flask app of the test's own, on its own
port: the "plugin's server", which checks the token with the secret the admin page
showed once, and the webhook's signature with the sink's secret.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask import request
from itsdangerous import BadSignature
from itsdangerous import URLSafeTimedSerializer
from markupsafe import escape
from playwright.sync_api import expect

from meiqia.models import Conversation
from tests.browser.conftest import login
from tests.browser.conftest import screenshot
from tests.factories import make_conversation
from tests.factories import make_visitor
from tests.helpers import AGENT_PASSWORD
from tests.helpers import wait_until

WEBHOOK_SECRET = "webhook-secret-0123456789"


class PluginServer:
    """A third party's server: a sidebar panel page and a webhook receiver."""

    def __init__(self) -> None:
        self.secret = ""
        self.hooks: list[dict[str, Any]] = []
        self.panel_tokens: list[str] = []
        app = Flask("plugin_server")

        @app.get("/panel")
        def panel() -> Any:
            token = request.args.get("token", "")
            self.panel_tokens.append(token)
            try:
                data = URLSafeTimedSerializer(self.secret, salt="meiqia.sidebar-panel").loads(
                    token, max_age=600)
            except BadSignature:
                return "<p id='who'>token refused</p>", 403
            customer = data["customer"]
            return (f"<!doctype html><meta charset='utf-8'><body style='font:14px sans-serif'>"
                    f"<p id='who'>已验证：{escape(customer['name'])}</p>"
                    f"<p>电话 {escape(customer['phone'])} · 对话 #{data['conversation_id']}</p>"
                    f"<p>订单：A1001 已发货</p></body>")

        @app.post("/hook")
        def hook() -> Any:
            body = request.get_data()
            stamp = request.headers.get("X-Meiqia-Timestamp", "")
            mac = hmac.new(WEBHOOK_SECRET.encode(), stamp.encode() + b"." + body, hashlib.sha256)
            self.hooks.append({"json": request.get_json(), "valid": hmac.compare_digest(
                "sha256=" + mac.hexdigest(), request.headers.get("X-Meiqia-Signature", ""))})
            return {"ok": True}

        @app.post("/broken")
        def broken() -> Any:
            self.broken_calls += 1
            return "the CRM is down", 503

        self.broken_calls = 0
        self.app = app


@pytest.fixture
def plugin_server() -> Iterator[tuple[PluginServer, str]]:
    from werkzeug.serving import make_server

    server = PluginServer()
    http = make_server("127.0.0.1", 0, server.app, threaded=True)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    try:
        yield server, f"http://127.0.0.1:{http.server_port}"
    finally:
        http.shutdown()
        thread.join(timeout=5)


def open_conversation(server, admin, name: str = "张三") -> int:
    """An open conversation of the admin's with a customer, made straight in the database."""
    with server.app.app_context():
        visitor = make_visitor(admin.team["id"], name=name, phone="13800138000")
        conversation = make_conversation(admin.team["id"], visitor, handler=admin.agent["id"],
                                         status="open", messages=[("visitor", "我想退货", 0)])
        return conversation.id


def open_in_workspace(page, server, conversation_id: int) -> None:
    page.goto(f"{server.url}/workspace")
    item = page.locator(f"#ws-list .ws-item[data-id='{conversation_id}']")
    if not item.count():
        item = page.locator("#ws-list .ws-item").first
    item.wait_for()
    item.click()
    expect(page.locator("#ws-messages")).to_contain_text("我想退货")


def test_a_chinese_quick_reply_is_offered_in_the_composer(server, admin, new_context):
    cid = open_conversation(server, admin)
    page = new_context(viewport={"width": 1360, "height": 820}).new_page()
    login(page, server)
    page.goto(f"{server.url}/admin/quick-replies")
    expect(page.locator("#qr-table tbody")).to_contain_text("还没有快捷回复")
    page.click("#qr-new")
    form = page.locator("dialog form")
    form.locator("input[name=keyword]").fill("退货 地址")
    form.locator("input[name=category]").fill("售后")
    form.locator("textarea[name=body]").fill("请把商品寄回：上海市浦东新区世纪大道 100 号 售后部（收）")
    form.locator("button[type=submit]").click()
    # The server refuses a keyword with a space and says so next to the field.
    expect(form.locator(".form-error")).to_contain_text("关键词：不能有空格")
    assert form.locator("input[name=keyword]").get_attribute("aria-invalid") == "true"
    form.locator("input[name=keyword]").fill("退货地址")
    form.locator("input[name=title]").fill("退货寄回地址")
    form.locator("button[type=submit]").click()
    row = page.locator("#qr-table tbody tr", has_text="#退货地址")
    row.wait_for()
    assert "售后" in row.inner_text()
    # A second one in another category, then the category filter.
    page.click("#qr-new")
    form = page.locator("dialog form")
    form.locator("input[name=keyword]").fill("发货时间")
    form.locator("input[name=category]").fill("物流")
    form.locator("textarea[name=body]").fill("下单后 48 小时内发货。")
    form.locator("button[type=submit]").click()
    page.locator("#qr-table tbody tr", has_text="#发货时间").wait_for()
    screenshot(page, "admin-quick-replies")
    page.select_option("#qr-category", "售后")
    expect(page.locator("#qr-table tbody tr")).to_have_count(1)
    expect(page.locator("#qr-table tbody tr")).to_contain_text("#退货地址")
    replies = admin.get("/api/v1/quick-replies").get_json()
    assert {(r["keyword"], r["category"], r["team"]) for r in replies} == {
        ("退货地址", "售后", True), ("发货时间", "物流", True)}

    open_in_workspace(page, server, cid)
    page.fill("#ws-input", "#退货")
    page.locator("#ws-input").dispatch_event("input")
    offered = page.locator("#ws-complete li", has_text="退货地址")
    offered.wait_for()
    page.press("#ws-input", "Enter")
    expect(page.locator("#ws-input")).to_have_value(
        "请把商品寄回：上海市浦东新区世纪大道 100 号 售后部（收）")


def test_changing_a_grade_regrades_the_history(server, admin, new_context):
    import datetime

    from meiqia.models.base import utcnow

    with server.app.app_context():
        ended = utcnow() - datetime.timedelta(hours=1)
        ids = []
        for count in (1, 4, 8):
            visitor = make_visitor(admin.team["id"], name=f"客户{count}")
            messages = [("visitor" if i % 2 == 0 else "agent", f"第 {i} 条", i * 10)
                        for i in range(count)]
            ids.append(make_conversation(admin.team["id"], visitor, handler=admin.agent["id"],
                                         ended_at=ended, messages=messages).id)
    page = new_context(viewport={"width": 1200, "height": 900}).new_page()
    login(page, server)
    page.goto(f"{server.url}/admin/conversation-rules")
    page.wait_for_function("document.querySelector('[name=inactivity_minutes]').value !== ''")
    rows = page.locator("#grades-body tr")
    # A new team's defaults: A ≥ 20, B ≥ 10, C ≥ 3, D ≥ 0 messages.
    assert [rows.nth(i).locator("input[name=grade]").input_value() for i in range(4)] == \
        ["A", "B", "C", "D"]
    for index, minimum in enumerate((8, 4, 1)):
        rows.nth(index).locator("input[name=min_messages]").fill(str(minimum))
    page.fill("input[name=inactivity_minutes]", "30")
    # Two grades of the same name are refused, with the reason.
    page.click("#grade-add")
    page.locator("#grades-body tr").last.locator("input[name=grade]").fill("A")
    page.click("#rules-form button[type=submit]")
    expect(page.locator("#rules-form .form-error")).to_contain_text("对话分级")
    page.locator("#grades-body tr").last.locator("button").click()
    page.click("#rules-form button[type=submit]")
    status = page.locator("#regrade-status[data-status=finished]")
    status.wait_for()
    expect(status).to_contain_text("3")  # conversations checked
    expect(page.locator("#regrade-bar")).to_have_attribute("value", "1")
    screenshot(page, "admin-rules")
    rules = admin.get("/api/v1/conversation-rules").get_json()
    assert rules["inactivity_minutes"] == 30
    assert [(g["grade"], g["min_messages"]) for g in rules["grades"]] == [
        ("A", 8), ("B", 4), ("C", 1), ("D", 0)]
    with server.app.app_context():
        assert [Conversation.get_by_id(i).grade for i in ids] == ["C", "B", "A"]


def test_an_iframe_plugin_shows_in_the_sidebar_with_a_token(server, admin, new_context,
                                                             plugin_server):
    panel_server, panel_url = plugin_server
    cid = open_conversation(server, admin)
    page = new_context(viewport={"width": 1440, "height": 900}).new_page()
    login(page, server)
    page.goto(f"{server.url}/admin/iframe-plugins")
    expect(page.locator("#ifp-table tbody")).to_contain_text("还没有面板")
    page.click("#ifp-new")
    form = page.locator("dialog form")
    form.locator("input[name=name]").fill("订单助手")
    form.locator("input[name=url]").fill("javascript:alert(1)")
    form.locator("button[type=submit]").click()
    expect(form.locator(".form-error")).to_contain_text("http")
    form.locator("input[name=url]").fill(f"{panel_url}/panel")
    form.locator("input[name=height]").fill("180")
    form.locator("button[type=submit]").click()
    secret = page.locator("#ifp-secret")
    expect(secret).not_to_be_empty()
    panel_server.secret = secret.inner_text()
    example = page.locator("#ifp-example").inner_text()
    assert panel_server.secret in example
    page.locator("#ifp-table tbody tr", has_text="订单助手").wait_for()
    screenshot(page, "admin-iframe-plugins")
    page.click("#ifp-secret-done")
    expect(page.locator("#ifp-secret-box")).to_be_hidden()
    # Listing again never shows the secret.
    page.reload()
    page.locator("#ifp-table tbody tr", has_text="订单助手").wait_for()
    assert panel_server.secret not in page.content()

    open_in_workspace(page, server, cid)
    frame_el = page.locator("#sidebar-panels iframe")
    frame_el.wait_for()
    src = frame_el.get_attribute("src")
    assert src.startswith(f"{panel_url}/panel?token=")
    assert frame_el.get_attribute("sandbox") == "allow-scripts allow-forms allow-popups"
    assert frame_el.get_attribute("height") == "180"
    frame = page.frame_locator("#sidebar-panels iframe")
    expect(frame.locator("#who")).to_have_text("已验证：张三")
    expect(page.locator("#sidebar-panels h3")).to_have_text("订单助手")
    screenshot(page, "sidebar-iframe")
    data = URLSafeTimedSerializer(panel_server.secret, salt="meiqia.sidebar-panel").loads(
        panel_server.panel_tokens[-1])
    assert data["conversation_id"] == cid and data["agent_id"] == admin.agent["id"]
    # The example the admin page showed, run as is, accepts the token and refuses others.
    namespace: dict[str, Any] = {"__name__": "panel_example"}
    exec(compile(example, "admin page example", "exec"), namespace)  # noqa: S102
    example_server = namespace["app"].test_client()
    answer = example_server.get("/panel", query_string={"token": panel_server.panel_tokens[-1]})
    assert answer.status_code == 200 and "张三" in answer.get_data(as_text=True)
    assert example_server.get("/panel", query_string={"token": "x.y.z"}).status_code == 403


def test_a_webhook_sink_is_configured_and_delivers(server, admin, new_context, plugin_server):
    receiver, base = plugin_server
    page = new_context(viewport={"width": 1360, "height": 900}).new_page()
    login(page, server)
    page.goto(f"{server.url}/admin/ticket-sinks")
    expect(page.locator("#sinks-table tbody")).to_contain_text("还没有推送目标")
    page.select_option("#sink-type", "webhook")
    page.click("#sink-new")
    form = page.locator("dialog form")
    form.locator("input[name=name]").fill("CRM 工单")
    form.locator("input[name='config.url']").fill(f"{base}/hook")
    form.locator("input[name='config.secret']").fill("short")
    form.locator("button[type=submit]").click()
    expect(form.locator(".form-error")).to_contain_text("签名密钥")
    form.locator("input[name='config.secret']").fill(WEBHOOK_SECRET)
    # the local receiver's network: the operator's setting, not a switch in the form
    assert form.locator("input[name='config.allow_private_addresses']").count() == 0
    server.app.config["OUTBOUND_ALLOWED_NETWORKS"] = ["127.0.0.0/8"]
    form.locator("button[type=submit]").click()
    row = page.locator("#sinks-table tbody tr", has_text="CRM 工单")
    row.wait_for()
    assert f"{base}/hook" in row.inner_text()
    sink = admin.get("/api/v1/ticket-sinks").get_json()[0]
    assert sink["config"]["secret"] == "********"
    assert "allow_private_addresses" not in sink["config"]

    created = admin.post("/api/v1/tickets", json={"subject": "订单 A1001 没收到",
                                                  "content": "订单 A1001 没收到，请尽快处理"})
    assert created.status_code == 201, created.get_json()
    page.click("#deliveries-refresh")
    delivered = page.locator("#deliveries-table tbody tr[data-status=delivered]")
    delivered.wait_for()
    assert "CRM 工单" in delivered.inner_text()
    assert receiver.hooks and receiver.hooks[0]["valid"]
    assert receiver.hooks[0]["json"]["ticket"]["subject"] == "订单 A1001 没收到"

    # A sink whose receiver is down: every attempt fails, the admin sees why and retries.
    admin.post("/api/v1/ticket-sinks", json={"type": "webhook", "name": "坏掉的 CRM", "config": {
        "url": f"{base}/broken", "secret": WEBHOOK_SECRET}})
    admin.post("/api/v1/tickets", json={"subject": "第二张", "content": "第二张工单"})
    page.reload()
    failed = page.locator("#deliveries-table tbody tr[data-status=failed]")
    failed.wait_for()
    assert "坏掉的 CRM" in failed.inner_text() and "503" in failed.inner_text()
    expect(page.locator("#sinks-table tbody tr", has_text="坏掉的 CRM").locator(".badge")).to_have_text("1")
    calls = receiver.broken_calls
    failed.locator("button", has_text="重试").click()
    page.locator(".toast", has_text="重新排队").wait_for()
    assert receiver.broken_calls > calls  # the retry really called the receiver again
    page.select_option("#delivery-status", "failed")
    expect(page.locator("#deliveries-table tbody tr")).to_have_count(1)
    screenshot(page, "admin-ticket-sinks")
    row = page.locator("#sinks-table tbody tr", has_text="CRM 工单")

    # Editing keeps the secret when it is left masked.
    row.locator("button", has_text="编辑").click()
    form = page.locator("dialog form")
    assert form.locator("input[name='config.secret']").input_value() == "********"
    form.locator("input[name=name]").fill("CRM 工单（新）")
    form.locator("button[type=submit]").click()
    page.locator("#sinks-table tbody tr", has_text="CRM 工单（新）").wait_for()
    from meiqia.models import TicketSink

    with server.app.app_context():
        assert TicketSink.get().config["secret"] == WEBHOOK_SECRET

    # Any delivery not delivered can be retried, not only a failed one (issue 18): one
    # left pending (waiting half an hour for its next try, or its job lost) too.
    from meiqia.models import SinkDelivery

    with server.app.app_context():
        stuck = SinkDelivery.create(sink=sink["id"], ticket=created.get_json()["id"],
                                    event="created", changes={})
    page.select_option("#delivery-status", "pending")
    pending = page.locator(f"#deliveries-table tbody tr[data-id='{stuck.id}']")
    pending.locator("button", has_text="重试").click()
    # Wait for the state, not for a toast: the first retry's toast may still be showing.
    def delivered() -> bool:
        with server.app.app_context():
            return SinkDelivery.get_by_id(stuck.id).status == "delivered"

    wait_until(delivered, 30, "the retried pending delivery to be delivered")


XSS = '<img src=x onerror="window.__xss=1">李'


def test_the_pages_in_english_show_typed_text_as_text(server, admin, new_context):
    admin.post("/api/v1/quick-replies", json={"keyword": "html", "title": XSS, "body": XSS,
                                              "category": XSS[:40], "team": True})
    admin.post("/api/v1/iframe-plugins", json={"name": XSS[:80],
                                               "url": "https://crm.example.com/?q=<b>"})
    admin.post("/api/v1/ticket-sinks", json={"type": "email", "name": XSS[:80], "config": {
        "host": "smtp.example.com", "port": 25, "from": "a@example.com",
        "to": "b@example.com"}})
    page = new_context(locale="en-US").new_page()
    login(page, server)
    page.goto(f"{server.url}/lang/en?next=/admin/quick-replies")
    expected = {"/admin/quick-replies": ("Quick replies", "#qr-table tbody tr"),
                "/admin/conversation-rules": ("Conversation rules", "#grades-body tr"),
                "/admin/iframe-plugins": ("Iframe plugins", "#ifp-table tbody tr"),
                "/admin/ticket-sinks": ("Ticket sinks", "#sinks-table tbody tr")}
    for path, (title, row) in expected.items():
        page.goto(f"{server.url}{path}")
        expect(page.locator("h1")).to_have_text(title)
        expect(page.locator(".tabs a[aria-current=page]")).to_have_text(title)
        page.locator(row).first.wait_for()
        if path != "/admin/conversation-rules":
            expect(page.locator(row).first).to_contain_text('onerror="window.__xss=1"')
        assert page.locator("main img").count() == 0
        assert page.evaluate("window.__xss") is None
    # Agents do not get these pages.
    agent = admin.new_agent(email="li@example.com")
    other = new_context().new_page()
    login(other, server, "li@example.com", AGENT_PASSWORD)
    for path in expected:
        assert other.goto(f"{server.url}{path}").status == 404
    assert agent.get("/api/v1/iframe-plugins").status_code in (403, 404)
