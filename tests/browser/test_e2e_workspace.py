"""End to end in Chromium, the workspace's other tools: unread counts, typing both ways,
visitor presence, the customer card, rating invitations, tickets from a conversation,
transfers, recent conversations, the queue, uploads from the visitor.
"""

from __future__ import annotations

import time
from typing import Any

from playwright.sync_api import expect

from tests.browser.conftest import login
from tests.browser.test_e2e_conversation import go_online
from tests.browser.test_e2e_conversation import png
from tests.browser.test_e2e_widget import open_chat
from tests.browser.test_widget import open_widget
from tests.helpers import AGENT_PASSWORD


def visitor_with_agent(new_context: Any, server: Any, team_id: int, name: str = "王管理") -> tuple[Any, Any]:
    page = new_context(viewport={"width": 1100, "height": 800}).new_page()
    frame = open_widget(page, server, team_id)
    frame.locator("#mq-human").click()
    expect(frame.locator("#mq-state")).to_contain_text(name)
    return page, frame


def say(frame: Any, text: str) -> None:
    frame.locator("#mq-input").fill(text)
    frame.locator("#mq-input").press("Enter")


#: Records the desktop notifications the page shows (the browser's own, still shown).
RECORD_NOTIFICATIONS = """
(() => {
  const Real = window.Notification;
  if (!Real) return;
  window.__notes = [];
  function Recorded(title, options) {
    window.__notes.push({ title, body: options && options.body });
    return new Real(title, options);
  }
  Object.defineProperty(Recorded, 'permission', { get: () => Real.permission });
  Recorded.requestPermission = (...args) => Real.requestPermission(...args);
  window.Notification = Recorded;
})();
"""


def test_unread_typing_presence_card_rating_ticket_transfer(server, admin, new_context):
    colleague_api = admin.new_agent(name="李客服", email="li@example.com")
    agent_context = new_context(viewport={"width": 1360, "height": 820})
    agent_context.grant_permissions(["notifications"], origin=server.url)
    agent_context.add_init_script(RECORD_NOTIFICATIONS)
    agent = agent_context.new_page()
    login(agent, server)
    go_online(agent)

    page_a, frame_a = visitor_with_agent(new_context, server, admin.team["id"])
    say(frame_a, "我是访客甲")
    page_b, frame_b = visitor_with_agent(new_context, server, admin.team["id"])
    expect(agent.locator("#ws-list .ws-item")).to_have_count(2)
    open_chat(agent, "我是访客甲")
    a_id = int(agent.locator("#ws-list .ws-item.current").get_attribute("data-id"))

    # B writes while A is open: B's row and the "mine" tab count it. (A's first line
    # may have notified too, when his row reached the list before his message did.)
    notes_before = agent.evaluate("() => window.__notes.length")
    say(frame_b, "我是访客乙，有人吗")
    row_b = agent.locator("#ws-list .ws-item", has_text="我是访客乙")
    expect(row_b.locator(".badge")).to_have_text("1")
    expect(agent.locator("[data-unread=mine]")).to_have_text("1")
    # ... and a desktop notification says so (with a sound).
    agent.wait_for_function(f"() => window.__notes.length > {notes_before}")
    assert agent.evaluate("() => window.__notes")[notes_before:] == [
        {"title": "新消息", "body": "我是访客乙，有人吗"}]

    # Typing, both ways: the agent sees the visitor's words as they come.
    frame_a.locator("#mq-input").press_sequentially("我想问一下退")
    expect(agent.locator("#ws-typing")).to_contain_text("我想问一下退")
    agent.locator("#ws-input").press_sequentially("正在为您查询")
    expect(frame_a.locator("#mq-typing")).to_be_visible()
    agent.press("#ws-input", "Enter")
    expect(frame_a.locator(".mq-msg.from-agent")).to_contain_text("正在为您查询")

    # B leaves: his avatar turns grey.
    expect(row_b.locator(".avatar")).to_have_class("avatar online")
    page_b.close()
    expect(row_b.locator(".avatar")).to_have_class("avatar offline")

    # The customer card is saved.
    card = agent.locator("#card-form")
    card.locator("input[name=name]").fill("甲先生")
    card.locator("input[name=phone]").fill("13700001111")
    card.locator("input[name=company]").fill("甲公司")
    card.locator("input[name=tags]").fill("老客户，VIP")
    card.locator("button[type=submit]").click()
    agent.locator(".toast", has_text="已保存").wait_for()
    expect(agent.locator("#chat-title")).to_have_text("甲先生")
    expect(agent.locator("#ws-list .ws-item.current .ws-item-name")).to_have_text("甲先生")
    customer = admin.get(f"/api/v1/conversations/{a_id}").get_json()["customer"]
    assert (customer["name"], customer["phone"], customer["company"]) == ("甲先生", "13700001111", "甲公司")
    assert sorted(customer["tags"]) == ["VIP", "老客户"]

    # A rating invitation reaches the visitor at once.
    agent.click("#act-rating")
    frame_a.locator(".mq-rating").wait_for()
    frame_a.locator(".mq-rate[data-rating=neutral]").click()
    frame_a.locator(".mq-rating button[type=submit]").click()
    frame_a.locator(".mq-thanks").wait_for()

    # A ticket from the conversation shows in the sidebar.
    agent.click("#act-ticket")
    dialog = agent.locator("dialog.dialog")
    dialog.locator("input[name=subject]").fill("甲先生要开专票")
    dialog.locator("textarea[name=content]").fill("需要开具增值税专用发票，抬头见备注。")
    dialog.locator("button[type=submit]").click()
    expect(dialog).to_have_count(0)
    expect(agent.locator("#recent-tickets")).to_contain_text("甲先生要开专票")

    # Transfer to 李客服, who is online now.
    colleague = new_context(viewport={"width": 1280, "height": 800}).new_page()
    login(colleague, server, "li@example.com", AGENT_PASSWORD)
    go_online(colleague)
    agent.click("#act-transfer")
    dialog = agent.locator("dialog.dialog")
    dialog.locator("select[name=agent_id]").select_option(str(colleague_api.agent["id"]))
    dialog.locator("button[type=submit]").click()
    expect(frame_a.locator("#mq-state")).to_contain_text("李客服")
    expect(colleague.locator("#ws-list .ws-item", has_text="甲先生")).to_have_count(1)
    expect(agent.locator("#ws-list .ws-item", has_text="甲先生")).to_have_count(0)
    agent.locator("[data-list=colleagues]").click()
    expect(agent.locator("#ws-list .ws-item", has_text="甲先生")).to_have_count(1)


def test_recent_conversations_open_the_old_one(server, admin, new_context):
    agent = new_context(viewport={"width": 1360, "height": 820}).new_page()
    login(agent, server)
    go_online(agent)
    page, frame = visitor_with_agent(new_context, server, admin.team["id"])
    say(frame, "第一次来问问")
    open_chat(agent, "第一次来问问")
    agent.click("#ws-emoji-btn")
    agent.locator("#ws-emoji button", has_text="👍").click()
    agent.locator("#ws-input").press_sequentially("第一次的回答")
    agent.press("#ws-input", "Enter")
    expect(frame.locator(".mq-msg.from-agent .mq-text")).to_have_text("👍第一次的回答")
    agent.click("#act-end")
    agent.click(".confirm-dialog .confirm-ok")  # the in-app confirm
    frame.locator(".mq-restart button.mq-primary").click()
    # A new conversation, with the ended one kept above it (greyed) for him to read.
    expect(frame.locator(".mq-msg:not(.mq-earlier)")).to_have_count(0)
    expect(frame.locator(".mq-msg.mq-earlier .mq-text")).to_have_text(
        ["第一次来问问", "👍第一次的回答"])
    frame.locator("#mq-human").click()
    # Taken before he types: typed at once, his words may be stored before the
    # handover line, and the list then shows that line as the chat's last.
    expect(frame.locator("#mq-state")).to_contain_text("王管理")
    say(frame, "第二次又来了")
    open_chat(agent, "第二次又来了")

    recent = agent.locator("#recent-conversations li a")
    expect(recent).to_have_count(2)
    recent.filter(has_text="已结束").click()
    expect(agent.locator("#ws-messages")).to_contain_text("第一次的回答")
    expect(agent.locator("#ws-messages")).not_to_contain_text("第二次又来了")
    # An ended conversation takes internal notes only.
    expect(agent.locator("#ws-composer")).to_have_attribute("data-mode", "internal")
    expect(agent.locator("#act-end")).to_be_disabled()


def test_queue_position_then_assigned_or_leave_a_message(server, admin, new_context):
    assert admin.patch(f"/api/v1/agents/{admin.agent['id']}", json={"max_concurrent": 1}).status_code == 200
    agent = new_context(viewport={"width": 1360, "height": 820}).new_page()
    login(agent, server)
    go_online(agent)

    _, frame_a = visitor_with_agent(new_context, server, admin.team["id"])
    page_b = new_context().new_page()
    frame_b = open_widget(page_b, server, admin.team["id"])
    frame_b.locator("#mq-human").click()
    expect(frame_b.locator("#mq-state")).to_have_text("排队中：第 1 位")
    expect(frame_b.locator("#mq-banner")).to_contain_text("您排在第 1 位")
    page_c = new_context().new_page()
    frame_c = open_widget(page_c, server, admin.team["id"])
    frame_c.locator("#mq-human").click()
    expect(frame_c.locator("#mq-state")).to_have_text("排队中：第 2 位")
    expect(agent.locator("#queue-count")).to_have_text("2")

    # C gives up and leaves a message; B is next when the agent ends A.
    frame_c.locator("#mq-banner .mq-link").click()
    form = frame_c.locator(".mq-leave")
    form.locator("input[name=email]").fill("c@example.com")
    form.locator("textarea[name=content]").fill("等不及了，请回邮件")
    form.locator("button[type=submit]").click()
    expect(frame_c.locator(".mq-thanks")).to_be_visible()
    # He left the queue: his chat is over, with nothing to rate (no agent took it).
    frame_c.locator(".mq-restart button.mq-primary").wait_for()
    expect(frame_c.locator(".mq-rating")).to_have_count(0)
    expect(agent.locator("#queue-count")).to_have_text("1")

    open_chat(agent, "访客")
    agent.click("#act-end")
    agent.click(".confirm-dialog .confirm-ok")  # the in-app confirm
    frame_a.locator(".mq-rating").wait_for()
    expect(frame_b.locator("#mq-state")).to_contain_text("王管理")
    expect(frame_b.locator("#mq-banner")).to_be_hidden()
    tickets = admin.get("/api/v1/tickets").get_json()
    assert tickets["total"] == 1


def test_visitor_sends_an_image_and_a_file_within_the_limits(server, admin, new_context, tmp_path):
    agent = new_context(viewport={"width": 1360, "height": 820}).new_page()
    login(agent, server)
    go_online(agent)
    page, frame = visitor_with_agent(new_context, server, admin.team["id"])
    open_chat(agent, "访客")

    frame.locator("#mq-image").set_input_files(str(png(tmp_path / "破损照片.png")))
    expect(frame.locator(".mq-msg.mine img.mq-img")).to_have_count(1)
    image = agent.locator("#ws-messages .ws-msg.from-visitor img.ws-img")
    expect(image).to_have_attribute("alt", "破损照片.png")
    image.evaluate("img => img.complete ? null : new Promise(r => img.addEventListener('load', r))")
    assert image.evaluate("img => img.naturalWidth") == 240

    invoice = tmp_path / "发票信息.pdf"
    invoice.write_bytes(b"%PDF-1.4\n" + b"0" * 2048)
    frame.locator("#mq-file").set_input_files(str(invoice))
    expect(agent.locator("#ws-messages .ws-file")).to_contain_text("发票信息.pdf")

    # Over the image limit: refused before anything is sent.
    big = tmp_path / "太大了.png"
    big.write_bytes(png(tmp_path / "x.png").read_bytes() + b"\0" * (5 * 1024 * 1024 + 1))
    uploads: list[str] = []
    page.on("request", lambda r: uploads.append(r.url) if "/uploads" in r.url else None)
    frame.locator("#mq-image").set_input_files(str(big))
    expect(frame.locator("#mq-banner")).to_contain_text("太大了.png 太大了：最大 5 MB")
    assert uploads == []
    expect(frame.locator(".mq-msg.mine")).to_have_count(2)


def test_a_late_answer_to_ask_for_a_person_does_not_undo_a_newer_state(
        server, admin, new_context):
    """The widget asked for a person and was queued; its HTTP answer ("queued") was
    held up on the way while an agent took the chat, whose "open" frame came over the
    socket first. The late answer must not put "queued" back on screen."""
    assert admin.patch(f"/api/v1/agents/{admin.agent['id']}",
                       json={"max_concurrent": 1}).status_code == 200
    admin.go_online()
    _, frame_a = visitor_with_agent(new_context, server, admin.team["id"])
    page_b = new_context().new_page()
    held = []

    def hold_the_answer(route):
        if route.request.method == "POST" and not held:
            held.append((route, route.fetch()))  # the server answered; not passed on yet
        else:
            route.continue_()

    page_b.route("**/api/v1/widget/conversations/*/human", hold_the_answer)
    frame_b = open_widget(page_b, server, admin.team["id"])
    frame_b.locator("#mq-human").click()
    expect(frame_b.locator("#mq-state")).to_have_text("排队中：第 1 位")  # over the socket
    # The socket's frame can come before the held request's own answer reaches the route
    # handler, which is still in route.fetch() (a loaded CI run saw it): the handler runs
    # while Playwright is called, so call it until the handler has the answer.
    deadline = time.monotonic() + 30
    while not held and time.monotonic() < deadline:
        page_b.wait_for_timeout(20)
    assert held and held[0][1].json()["status"] == "queued"

    mine = admin.get("/api/v1/conversations").get_json()["mine"]
    assert admin.post(f"/api/v1/conversations/{mine[0]['id']}/end").status_code == 200
    expect(frame_b.locator("#mq-state")).to_contain_text("王管理")  # assigned: "open"
    route, answer = held[0]
    route.fulfill(response=answer)  # the old "queued" arrives now
    page_b.wait_for_timeout(500)  # its handler runs; on the old page it showed "queued"
    expect(frame_b.locator("#mq-state")).to_contain_text("王管理")
    expect(frame_b.locator("#mq-banner")).to_be_hidden()
