"""A button, a form's Save or a keystroke that acts on data the page fetches at load must
wait for it: CI once clicked "new agent" before the agents list had answered (ab59c79).
Each test holds the answer the control depends on (playwright's page.route), sees the
control wait, lets the answer through and uses the control as a person would."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.api.test_conversations import start
from tests.browser.conftest import hold_the_first
from tests.browser.conftest import login
from tests.helpers import wait_until


def hold_the_first_get(page, url):
    """Hold the first GET to ``url`` unanswered (``conftest.hold_the_first``)."""
    return hold_the_first(page, url, "GET")


def wait_held(page, held):
    """The handler runs on playwright's loop: let it run until the request is held."""
    for _ in range(300):  # 15 s at most
        if held:
            return held[0]
        page.wait_for_timeout(50)
    raise AssertionError("the page never asked")


def open_admin_page(new_context, server, path, url):
    """Logged in (on a page that asks for none of it), then ``path`` with the first GET
    of ``url`` held: (the page, the held route)."""
    page = new_context(viewport={"width": 1360, "height": 900}).new_page()
    login(page, server, next="/admin/groups")
    held = hold_the_first_get(page, url)
    page.goto(f"{server.url}{path}")
    return page, wait_held(page, held)


def test_the_new_ticket_form_waits_for_the_agents_and_groups(server, admin, new_context):
    admin.post("/api/v1/groups", json={"name": "售后组"})
    admin.new_agent(email="li@example.com", name="李客服")
    page, held = open_admin_page(new_context, server, "/tickets", "**/api/v1/agents")
    expect(page.locator("#tk-new")).to_be_disabled()
    held.continue_()
    page.click("#tk-new")
    form = page.locator("#tk-new-dialog form")
    expect(form.locator("select[name=assignee_id] option")).to_have_text(["未分配", "王管理", "李客服"])
    expect(form.locator("select[name=group_id] option")).to_have_text(["不分组", "售后组"])


def test_the_ticket_page_acts_only_on_a_ticket_it_has(server, admin, new_context):
    ticket = admin.post("/api/v1/tickets", json={"content": "发票抬头写错了"}).get_json()
    page, held = open_admin_page(new_context, server, f"/tickets/{ticket['id']}",
                                 f"**/api/v1/tickets/{ticket['id']}")
    # Each of these used the ticket; before it came they threw on a null one.
    expect(page.locator("#tk-edit-subject")).to_be_disabled()
    expect(page.locator("#tk-comment-form button[type=submit]")).to_be_disabled()
    for name in ("priority", "assignee_id", "group_id", "tags"):
        expect(page.locator(f"#tk-props [name={name}]")).to_be_disabled()
    held.continue_()
    page.select_option("#tk-props select[name=priority]", "high")
    expect(page.locator("#tk-history")).to_contain_text("优先级")
    page.click("#tk-edit-subject")
    page.fill("dialog input[name=subject]", "发票")
    page.click("dialog button[type=submit]")
    expect(page.locator("#tk-subject")).to_have_text("发票")
    page.fill("#tk-comment-form textarea[name=body]", "已联系财务")
    page.click("#tk-comment-form button[type=submit]")
    expect(page.locator("#tk-comments li .body")).to_have_text("已联系财务")


def test_the_history_column_chooser_shows_the_saved_choice(server, admin, new_context):
    saved = admin.put("/api/v1/history/columns", json={"columns": ["visitor", "rating"]})
    assert saved.status_code == 200, saved.get_json()
    page, held = open_admin_page(new_context, server, "/history", re.compile(r"/api/v1/history\?"))
    # Before the first page came, the chooser showed every column (and a save stored them).
    expect(page.locator("#choose-columns")).to_be_disabled()
    expect(page.locator("#start-export")).to_be_disabled()
    held.continue_()
    page.click("#choose-columns")
    checked = page.locator("#column-list input[name=show]:checked")
    expect(checked).to_have_count(2)
    assert [checked.nth(i).get_attribute("value") for i in range(2)] == ["visitor", "rating"]


def test_the_new_sink_button_waits_for_the_sink_types(server, admin, new_context):
    page, held = open_admin_page(new_context, server, "/admin/ticket-sinks", "**/api/v1/ticket-sinks/types")
    expect(page.locator("#sink-new")).to_be_disabled()  # before: a click did nothing
    held.continue_()
    page.select_option("#sink-type", "webhook")
    page.click("#sink-new")
    expect(page.locator("dialog form input[name='config.url']")).to_be_visible()


def test_the_settings_are_saved_only_once_shown(server, admin, new_context):
    admin.patch("/api/v1/team", json={"settings": {"welcome_message": "欢迎光临"}})
    page, held = open_admin_page(new_context, server, "/admin/settings", "**/api/v1/team")
    # A save now sent the empty form: the welcome message (and the team's name) gone.
    expect(page.locator("#settings-form button[type=submit]")).to_be_disabled()
    held.continue_()
    expect(page.locator("textarea[name='settings.welcome_message']")).to_have_value("欢迎光临")
    page.click("#settings-form button[type=submit]")
    expect(page.locator(".toast")).to_contain_text("已保存")
    assert admin.get("/api/v1/team").get_json()["settings"]["welcome_message"] == "欢迎光临"


def test_the_conversation_rules_are_saved_only_once_shown(server, admin, new_context):
    page, held = open_admin_page(new_context, server, "/admin/conversation-rules",
                                 "**/api/v1/conversation-rules")
    # A save now sent no grades; a grade added now was wiped when the rules came.
    expect(page.locator("#rules-form button[type=submit]")).to_be_disabled()
    expect(page.locator("#grade-add")).to_be_disabled()
    held.continue_()
    expect(page.locator("#grades-body tr")).to_have_count(4)
    page.click("#grade-add")
    expect(page.locator("#grades-body tr")).to_have_count(5)


def test_an_at_typed_before_the_colleagues_came_offers_them(server, admin, new_context):
    admin.new_agent(email="li@example.com", name="李客服")
    admin.patch("/api/v1/team", json={"settings": {"bot_enabled": False}})
    admin.go_online()
    start(server.app, admin.team["id"])
    page, held = open_admin_page(new_context, server, "/workspace", "**/api/v1/agents")
    page.locator("#ws-list .ws-item").first.click()
    composer = page.locator("#ws-composer")
    expect(composer).to_be_visible()
    composer.locator(".ws-mode-internal").click()
    expect(composer).to_have_attribute("data-mode", "internal")
    page.locator("#ws-input").press_sequentially("请 @李")
    held.continue_()
    expect(page.locator("#ws-complete li", has_text="@李客服")).to_be_visible()


def test_the_bot_words_are_saved_only_once_shown(server, admin, new_context):
    admin.patch("/api/v1/team", json={"settings": {"bot_synonyms": [["退款", "退钱"]]}})
    page, held = open_admin_page(new_context, server, "/admin/knowledge", "**/api/v1/team")
    # A save now sent the empty form: the team's synonyms and words gone.
    words = page.locator("#kb-words-form")
    expect(words.locator("button[type=submit]")).to_be_disabled()
    held.continue_()
    expect(words.locator("textarea[name=bot_synonyms]")).to_have_value("退款 = 退钱")
    words.locator("button[type=submit]").click()
    expect(page.locator("#toast .toast")).to_contain_text(["已保存"])
    assert admin.get("/api/v1/team").get_json()["settings"]["bot_synonyms"] == [["退款", "退钱"]]


def test_a_late_answer_does_not_replace_the_deliveries_filter_chosen_since(server, admin, new_context):
    """Under load the suite saw the retry's reload of every delivery answer after the "failed"
    filter chosen meanwhile, and its rows replaced the filter's (3 rows for 1)."""
    from tests.integration.test_two_processes import free_port

    server.app.config["OUTBOUND_ALLOWED_NETWORKS"] = ["127.0.0.0/8"]
    sink = admin.post("/api/v1/ticket-sinks", json={"type": "webhook", "name": "坏掉的 CRM", "config": {
        "url": f"http://127.0.0.1:{free_port()}/hook", "secret": "webhook-secret-0123456789"}})
    assert sink.status_code == 201, sink.get_json()
    assert admin.post("/api/v1/tickets", json={"content": "第一张"}).status_code == 201
    wait_until(lambda: admin.get("/api/v1/ticket-sinks/deliveries").get_json())
    # The page's first list (every status) is held; the admin picks "delivered" meanwhile.
    page, stale = open_admin_page(new_context, server, "/admin/ticket-sinks",
                                  "**/api/v1/ticket-sinks/deliveries")
    page.select_option("#delivery-status", "delivered")
    body = page.locator("#deliveries-table tbody")
    expect(body).to_contain_text("还没有推送记录")
    with page.expect_request_finished(lambda request: request.url == stale.request.url):
        stale.continue_()
    expect(body).to_have_attribute("data-status", "delivered")
    expect(body.locator("tr[data-id]")).to_have_count(0)


def test_an_export_is_started_only_once_the_list_and_count_are_here(server, admin, new_context):
    """An export started before the page's list of exports had answered was wiped from
    the page when the list came (read before the export existed)."""
    page, held = open_admin_page(new_context, server, "/history/exports", "**/api/v1/history/exports")
    expect(page.locator("#export-count")).to_have_text("没有符合条件的对话，无法导出。")
    expect(page.locator("#export-start")).to_be_disabled()
    held.continue_()
    page.click("#export-start")
    expect(page.locator("#export-form .form-error")).to_have_text("没有符合条件的对话，无法导出。")


def test_the_new_agent_form_waits_for_the_lists_it_offers(server, admin, new_context):
    """CI's failure (ab59c79): the form opened before the agents list had arrived, its
    "custom scope" list empty for good."""
    admin.post("/api/v1/groups", json={"name": "售后组"})
    page, held = open_admin_page(new_context, server, "/admin/agents", "**/api/v1/agents")
    expect(page.locator("#new-agent")).to_be_disabled()
    held.continue_()
    page.click("#new-agent")
    form = page.locator("dialog form")
    form.locator("select[name=scope]").select_option("custom")
    expect(form.locator("select[name=scope_agents] option")).to_have_text(["王管理"])
    expect(form.locator("select[name=groups] option")).to_have_text(["售后组"])


def test_a_full_width_at_sign_offers_colleagues_as_the_server_mentions_them(
        server, admin, new_context):
    """A Chinese input method in full-width mode types ＠: the server mentions with it
    (names.AT_SIGNS), so the completion offers, and the chosen name replaces ＠李."""
    admin.new_agent(email="li@example.com", name="李客服")
    admin.patch("/api/v1/team", json={"settings": {"bot_enabled": False}})
    admin.go_online()
    start(server.app, admin.team["id"])
    page = new_context(viewport={"width": 1360, "height": 900}).new_page()
    login(page, server)
    page.locator("#ws-list .ws-item").first.click()
    composer = page.locator("#ws-composer")
    composer.locator(".ws-mode-internal").click()
    expect(composer).to_have_attribute("data-mode", "internal")
    page.locator("#ws-input").press_sequentially("好的，＠李")
    option = page.locator("#ws-complete li", has_text="@李客服")
    option.click()
    expect(page.locator("#ws-input")).to_have_value("好的，@李客服 ")
