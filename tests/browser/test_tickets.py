"""The tickets pages in Chromium: filter, open, comment in Chinese, change status and
assignee, see the list reflect it; pages; HTML in a ticket renders as text.

Tickets are created through the API (as an agent creates one from a chat), the
conversation around one with the factories.
"""

from __future__ import annotations

from playwright.sync_api import expect

from meiqia.models.base import utcnow
from tests.browser.conftest import WAIT_MS
from tests.browser.conftest import login
from tests.browser.conftest import screenshot
from tests.factories import make_conversation
from tests.factories import make_visitor
from tests.helpers import AGENT_PASSWORD

XSS = '<img src=x onerror="window.__xss=1">退款<script>window.__xss=2</script>'


def create(admin, **body):
    response = admin.post("/api/v1/tickets", json=body)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def world(server, admin):
    li = admin.new_agent(email="li@example.com", name="李客服", scope="all").agent
    group = admin.post("/api/v1/groups", json={"name": "售后组"}).get_json()
    team = admin.team["id"]
    with server.app.app_context():
        visitor = make_visitor(team, name="张三", phone="13800138000")
        conversation = make_conversation(
            team, visitor, handler=admin.agent["id"], ended_at=utcnow(), messages=[
                ("visitor", "我的退款还没到账", 0), ("bot", "请提供订单号", 2),
                ("agent", "我帮您查一下", 30), ("agent", "内部：找财务", 40, "internal")])
    refund = create(admin, conversation_id=conversation.id, subject="退款没到账",
                    priority="high")
    invoice = create(admin, content="发票抬头写错了，请重开", email="wang@example.com",
                     name="王五", group_id=group["id"])
    shipping = create(admin, content="什么时候发货？", name="赵六")
    admin.patch(f"/api/v1/tickets/{shipping['id']}", json={"status": "pending"})
    return {"li": li, "group": group, "refund": refund, "invoice": invoice,
            "shipping": shipping}


def rows(page):
    return page.locator("#tk-table tbody tr[data-id]")


def test_a_ticket_is_filtered_opened_commented_and_changed(server, admin, new_context):
    w = world(server, admin)
    page = new_context(viewport={"width": 1360, "height": 900}).new_page()
    login(page, server, next="/tickets")
    expect(rows(page)).to_have_count(3)
    tabs = page.locator("#tk-tabs")
    expect(tabs.locator("[data-status=''] .badge")).to_have_text("3")
    expect(tabs.locator("[data-status=open] .badge")).to_have_text("2")
    expect(tabs.locator("[data-status=pending] .badge")).to_have_text("1")
    assert [a.get_attribute("data-status") for a in tabs.locator("a").all()] == [
        "", "open", "pending", "solved", "closed"]  # in the ticket's life, as every menu
    screenshot(page, "tickets")

    # Filters: a status tab, the group, the priority, then text.
    tabs.locator("[data-status=pending]").click()
    expect(rows(page)).to_have_count(1)
    expect(rows(page).first).to_contain_text("什么时候发货")
    tabs.locator("[data-status='']").click()
    page.select_option("#tk-filters select[name=group_id]", label="售后组")
    expect(rows(page)).to_have_count(1)
    expect(rows(page).first).to_contain_text("王五")
    page.click("#tk-reset")
    expect(rows(page)).to_have_count(3)
    page.select_option("#tk-filters select[name=priority]", "high")
    expect(rows(page)).to_have_count(1)
    page.fill("#tk-filters input[name=q]", "13800138000")
    page.press("#tk-filters input[name=q]", "Enter")
    page.wait_for_url("**/tickets?q=13800138000&priority=high")
    expect(rows(page)).to_have_count(1)
    row = rows(page).first
    expect(row.locator(".tk-subject")).to_have_text("退款没到账")
    expect(row.locator(".tk-priority")).to_have_text("高")

    # Open it: subject, content (the transcript it was created from), contact, transcript.
    row.locator(".tk-subject").click()
    page.wait_for_url(f"**/tickets/{w['refund']['id']}")
    expect(page.locator("#tk-subject")).to_have_text("退款没到账")
    expect(page.locator("#tk-content")).to_contain_text("我的退款还没到账")
    expect(page.locator("#tk-contact")).to_contain_text("13800138000")
    expect(page.locator("#tk-contact")).to_contain_text("张三")
    transcript = page.locator("#tk-transcript li")
    expect(transcript).to_have_count(3)  # the internal note is not part of it
    assert "内部：找财务" not in page.locator("#tk-transcript").inner_text()
    expect(page.locator("#tk-history li")).to_have_count(1)

    # A note and a public reply, in Chinese.
    page.fill("#tk-comment-form textarea[name=body]", "已联系财务，预计明天到账")
    page.click("#tk-comment-form button[type=submit]")
    expect(page.locator("#tk-comments li.internal")).to_contain_text("已联系财务，预计明天到账")
    page.check("#tk-comment-form input[value=public]")
    expect(page.locator("#tk-public-hint")).to_be_visible()
    page.fill("#tk-comment-form textarea[name=body]", "您好，退款已处理，请留意到账短信。")
    page.click("#tk-comment-form button[type=submit]")
    expect(page.locator("#tk-comments li.public")).to_contain_text("您好，退款已处理")
    expect(page.locator("#tk-comment-form textarea[name=body]")).to_have_value("")

    # Statuses are listed in the ticket's life, never by their stored names (the menu
    # said 待处理, 已关闭, 处理中, 已解决: a Chinese support lead).
    life = ["待处理", "处理中", "已解决", "已关闭"]
    options = page.locator("#tk-props select[name=status] option")
    expect(options).to_have_text(life)
    # Status, assignee and group: each saved at once and recorded in the history.
    page.select_option("#tk-props select[name=status]", "pending")
    expect(page.locator("#tk-status-badge")).to_have_text("处理中")
    page.select_option("#tk-props select[name=assignee_id]", label="李客服")
    expect(page.locator("#tk-history")).to_contain_text("修改了处理人：（无） → 李客服")
    page.select_option("#tk-props select[name=group_id]", label="售后组")
    expect(page.locator("#tk-history")).to_contain_text("修改了分组：（无） → 售后组")
    expect(page.locator("#tk-history")).to_contain_text("修改了状态：待处理 → 处理中")
    expect(page.locator("#tk-history")).to_contain_text("添加了内部备注")
    expect(page.locator("#tk-history")).to_contain_text("回复了客户")
    # Only the moves the service allows are offered (closed is final).
    expect(options).to_have_text(life)
    page.mouse.move(0, 0)
    # The "saved" notes have gone (a wait for a condition, not a timing check).
    expect(page.locator("#toast .toast")).to_have_count(0, timeout=WAIT_MS)
    screenshot(page, "ticket")

    saved = admin.get(f"/api/v1/tickets/{w['refund']['id']}").get_json()
    assert saved["status"] == "pending" and saved["assignee_id"] == w["li"]["id"]
    assert saved["group_id"] == w["group"]["id"]
    assert [(c["visibility"], c["body"]) for c in saved["comments"]] == [
        ("internal", "已联系财务，预计明天到账"), ("public", "您好，退款已处理，请留意到账短信。")]

    # Back to the list, with its filter kept: the row shows the new status and assignee.
    page.click("#tk-back")
    page.wait_for_url("**/tickets?q=13800138000&priority=high")
    row = rows(page).first
    expect(row.locator(".tk-status")).to_have_text("处理中")
    expect(row.locator(".tk-assignee")).to_have_text("李客服")
    page.click("#tk-reset")
    expect(page.locator("#tk-tabs [data-status=pending] .badge")).to_have_text("2")
    page.select_option("#tk-filters select[name=assignee_id]", label="李客服")
    expect(rows(page)).to_have_count(1)
    page.select_option("#tk-filters select[name=assignee_id]", "none")
    expect(rows(page)).to_have_count(2)


def test_an_agent_writes_a_ticket_and_renames_it(server, admin, new_context):
    admin.post("/api/v1/groups", json={"name": "售后组"})
    page = new_context().new_page()
    login(page, server, next="/tickets")
    expect(page.locator("#tk-table tbody tr.empty")).to_have_count(1)
    page.click("#tk-new")
    form = page.locator("#tk-new-dialog form")
    # Over the limit: nothing cut (the box had maxlength=5000 and lost the end of a
    # paste without a word); the server's refusal is shown and the text stays.
    long = "客户来电" * 1250 + "，订单号A123"
    form.locator("textarea[name=content]").fill(long)
    form.locator("input[name=phone]").fill("021-12345678")
    form.locator("button[type=submit]").click()
    expect(form.locator(".form-error")).to_contain_text("5000")
    assert form.locator("textarea[name=content]").input_value() == long
    form.locator("textarea[name=content]").fill("客户来电：要开增值税专用发票")
    form.locator("input[name=name]").fill("孙七")
    form.locator("input[name=phone]").fill("12345")
    form.locator("select[name=priority]").select_option("urgent")
    form.locator("select[name=group_id]").select_option(label="售后组")
    form.locator("button[type=submit]").click()
    # The server refuses the phone number and says why, next to the field.
    expect(form.locator(".form-error")).to_contain_text("电话号码不正确")
    assert form.locator("input[name=phone]").get_attribute("aria-invalid") == "true"
    # It names the field as the form labels it (the form said 手机, the error 电话：…).
    label = form.locator("label:has(input[name=phone])").inner_text().strip()
    assert form.locator(".form-error").inner_text().startswith(f"{label}："), \
        (label, form.locator(".form-error").inner_text())
    form.locator("input[name=phone]").fill("021-12345678")
    form.locator("button[type=submit]").click()
    page.wait_for_url("**/tickets/1")
    expect(page.locator("#tk-content")).to_have_text("客户来电：要开增值税专用发票")
    expect(page.locator("#tk-contact")).to_contain_text("021-12345678")
    expect(page.locator("#tk-props select[name=priority]")).to_have_value("urgent")
    expect(page.locator("#tk-transcript-box")).to_be_hidden()  # not from a conversation
    page.click("#tk-edit-subject")
    page.fill("dialog input[name=subject]", "增值税专用发票")
    page.click("dialog button[type=submit]")
    expect(page.locator("#tk-subject")).to_have_text("增值税专用发票")
    expect(page.locator("#tk-history")).to_contain_text("修改了标题")
    assert admin.get("/api/v1/tickets/1").get_json()["subject"] == "增值税专用发票"


def test_pages_of_twenty(server, admin, new_context):
    for n in range(23):
        create(admin, content=f"第 {n + 1} 条留言")
    page = new_context().new_page()
    login(page, server, next="/tickets")
    expect(rows(page)).to_have_count(20)
    expect(page.locator("#tk-page-info")).to_have_text("第 1 / 2 页 · 共 23 条")
    assert page.locator("#tk-prev").is_disabled()
    page.click("#tk-next")
    expect(rows(page)).to_have_count(3)
    expect(page.locator("#tk-page-info")).to_have_text("第 2 / 2 页 · 共 23 条")
    assert page.locator("#tk-next").is_disabled()
    expect(rows(page).last.locator(".tk-subject")).to_have_text("第 1 条留言")
    page.go_back()
    expect(rows(page)).to_have_count(20)


def test_html_in_a_ticket_renders_as_text(server, admin, new_context):
    ticket = create(admin, subject=XSS[:200], content=f"{XSS}\n第二行", name=XSS[:120])
    page = new_context(locale="en-US").new_page()
    login(page, server, next="/tickets")
    subject = rows(page).first.locator(".tk-subject")
    expect(subject).to_have_text(XSS)
    expect(rows(page).first.locator(".tk-contact-cell")).to_have_text(XSS)
    assert page.locator("#tk-table img, #tk-table script").count() == 0
    assert page.locator("#tk-tabs [aria-current=page]").inner_text().startswith("All")
    subject.click()
    page.wait_for_url(f"**/tickets/{ticket['id']}")
    expect(page.locator("#tk-subject")).to_have_text(XSS)
    expect(page.locator("#tk-content")).to_have_text(f"{XSS}\n第二行")
    page.fill("#tk-comment-form textarea[name=body]", XSS)
    page.click("#tk-comment-form button[type=submit]")
    expect(page.locator("#tk-comments li .body")).to_have_text(XSS)
    assert page.locator("main img, main script").count() == 0
    assert page.evaluate("window.__xss") is None
    assert page.locator("#tk-comments-title").inner_text() == "Comments"


def test_a_ticket_outside_the_scope_is_not_found(server, admin, new_context):
    # Assigned to the admin: not in the pool that every agent sees.
    ticket = create(admin, content="只有管理员能看", assignee_id=admin.agent["id"])
    admin.new_agent(email="zhao@example.com", name="赵客服", scope="self")
    page = new_context().new_page()
    login(page, server, "zhao@example.com", AGENT_PASSWORD, next="/tickets")
    expect(page.locator("#tk-table tbody tr.empty")).to_have_count(1)
    response = page.goto(f"{server.url}/tickets/{ticket['id']}")
    assert response.status == 404


def test_the_ticket_page_says_when_a_reply_will_not_be_emailed(server, admin, new_context):
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Message

    from tests.integration.test_two_processes import free_port

    ticket = create(admin, content="发票抬头写错了", email="kehu@example.com")
    page = new_context(viewport={"width": 1360, "height": 900}).new_page()
    login(page, server, next=f"/tickets/{ticket['id']}")
    hint = page.locator("#tk-public-hint")
    expect(hint).to_be_hidden()  # an internal note is chosen
    page.check("#tk-comment-form input[value=public]")
    expect(hint).to_have_attribute("data-reason", "no_email_sink")
    expect(hint).to_contain_text("不会收到邮件：尚未配置邮件推送")
    page.fill("#tk-comment-form textarea[name=body]", "已为您重新开具")
    page.click("#tk-comment-form button[type=submit]")
    expect(page.locator("#toast")).to_contain_text("未发邮件：尚未配置邮件推送")
    expect(page.locator("#tk-comments")).to_contain_text("已为您重新开具")

    received = []

    class Collect(Message):
        def handle_message(self, message):
            received.append(message)

    controller = Controller(Collect(), hostname="127.0.0.1", port=free_port())
    controller.start()
    server.app.config["OUTBOUND_ALLOWED_NETWORKS"] = ["127.0.0.0/8"]  # the operator's say
    try:
        sink = admin.post("/api/v1/ticket-sinks", json={"type": "email", "name": "邮件", "config": {
            "host": "127.0.0.1", "port": controller.port, "from": "bot@shop.example",
            "to": "team@shop.example"}})
        assert sink.status_code == 201, sink.get_json()
        page.reload()
        page.check("#tk-comment-form input[value=public]")
        expect(hint).to_have_text("客户会在网页插件中看到，并收到发往 kehu@example.com 的邮件。")
        page.fill("#tk-comment-form textarea[name=body]", "发票已寄出")
        page.click("#tk-comment-form button[type=submit]")
        expect(page.locator("#toast")).to_contain_text("并已发送邮件")
    finally:
        controller.stop()
    to_customer = [m.get_payload(decode=True).decode() for m in received
                   if m["To"] == "kehu@example.com"]
    assert len(to_customer) == 1 and "发票已寄出" in to_customer[0]

    other = create(admin, content="电话回访", phone="13800138000")
    page.goto(f"{server.url}/tickets/{other['id']}")
    page.check("#tk-comment-form input[value=public]")
    expect(hint).to_contain_text("他没有留邮箱，不会收到邮件")
