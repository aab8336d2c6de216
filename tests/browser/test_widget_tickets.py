"""The visitor's tickets in the widget, in Chromium: public replies shown when he comes
back (new ones flagged, internal notes never), leaving a message after the chat ended,
attachments uploaded with the server's limits, and the form's errors in his language.
"""

from __future__ import annotations

import datetime
from typing import Any

from playwright.sync_api import expect

from meiqia.models import Conversation
from meiqia.models import Ticket
from meiqia.models import TicketComment
from meiqia.web.workspace import load_strings
from tests.browser.conftest import serve
from tests.browser.test_e2e_conversation import png
from tests.browser.test_widget import open_widget
from tests.helpers import ApiClient

STRINGS = load_strings()
ZH = STRINGS["zh-CN"]
EN = STRINGS["en"]
NOTE = "内部：此客户投诉过两次"
REPLY = '<img src=x onerror="window.__xss=1">已为您补发，快递单号 SF1234'


def leave_form(frame: Any) -> Any:
    """Nobody is online: asking for a human brings the leave-a-message form."""
    frame.locator("#mq-human").click()
    form = frame.locator(".mq-leave")
    form.wait_for()
    return form


def leave(form: Any, content: str, **fields: str) -> None:
    for name, value in fields.items():
        form.locator(f"input[name={name}]").fill(value)
    form.locator("textarea[name=content]").fill(content)
    form.locator("button[type=submit]").click()


def test_public_replies_wait_for_the_next_visit_and_new_ones_are_flagged(server, admin,
                                                                        new_context):
    visitor = new_context(viewport={"width": 375, "height": 740}, is_mobile=True,
                          has_touch=True).new_page()
    frame = open_widget(visitor, server, admin.team["id"])
    leave(leave_form(frame), "耳机左边没有声音，订单 A1024", phone="13912345678")
    expect(frame.locator(".mq-thanks")).to_be_visible()
    button = frame.locator("#mq-tickets-btn")
    expect(button).to_be_visible()  # he has a ticket now
    expect(button.locator(".mq-tickets-badge")).to_be_hidden()

    ticket_id = admin.get("/api/v1/tickets").get_json()["items"][0]["id"]
    admin.post(f"/api/v1/tickets/{ticket_id}/comments", json={"body": NOTE, "visibility": "internal"})
    reply = admin.post(f"/api/v1/tickets/{ticket_id}/comments",
                       json={"body": REPLY, "visibility": "public"}).get_json()

    # Next visit: the closed widget's badge counts the reply, the panel says so.
    visitor.reload()
    expect(visitor.locator("#meiqia-widget .mq-badge")).to_have_text("1")
    visitor.locator("#meiqia-widget .mq-button").click()
    frame = visitor.frame_locator("#meiqia-widget iframe")
    expect(frame.locator("#mq-ticket-notice")).to_contain_text("您的留言有 1 条新回复")
    expect(frame.locator("#mq-tickets-btn .mq-tickets-badge")).to_have_text("1")

    frame.locator("#mq-ticket-notice button").click()
    ticket = frame.locator(f".mq-ticket[data-id='{ticket_id}']")
    expect(ticket.locator(".mq-ticket-status")).to_have_text("待处理")
    expect(ticket.locator(".mq-ticket-content")).to_have_text("耳机左边没有声音，订单 A1024")
    new = ticket.locator(".mq-reply.unread")
    expect(new).to_have_count(1)
    expect(new.locator(".mq-reply-body")).to_have_text(REPLY)  # text, not markup
    expect(new.locator(".mq-new")).to_have_text("新")
    expect(frame.locator("#mq-tickets")).not_to_contain_text(NOTE)
    expect(frame.locator("#mq-tickets-btn .mq-tickets-badge")).to_be_hidden()  # read now
    assert frame.locator("#mq-tickets img").count() == 0
    assert visitor.evaluate("() => window.__xss") is None
    # On a phone the header still fits its three buttons and the list its text.
    assert frame.locator("body").evaluate("b => b.scrollWidth <= b.clientWidth")
    with server.app.app_context():
        assert Ticket.get_by_id(ticket_id).visitor_seen_reply_id == reply["id"]

    frame.locator(".mq-tickets-back").click()
    expect(frame.locator("#mq-input")).to_be_visible()
    admin.patch(f"/api/v1/tickets/{ticket_id}", json={"status": "solved"})

    # The visit after: nothing new, and the status is the agent's.
    visitor.reload()
    visitor.locator("#meiqia-widget .mq-button").click()
    frame = visitor.frame_locator("#meiqia-widget iframe")
    frame.locator("#mq-tickets-btn").click()
    ticket = frame.locator(f".mq-ticket[data-id='{ticket_id}']")
    expect(ticket.locator(".mq-ticket-status")).to_have_text("已解决")
    expect(ticket.locator(".mq-reply")).to_have_count(1)
    expect(ticket.locator(".mq-reply.unread")).to_have_count(0)
    expect(frame.locator("#mq-ticket-notice")).to_be_hidden()


def test_my_messages_quote_times_as_every_other_page_does(server, admin, new_context):
    """我的留言 said "2026/3/5 23:51" where every other page says "2026/03/05 23:51": one
    format everywhere, on the team's clock (the visitor's own is New York's here)."""
    visitor = new_context(viewport={"width": 1100, "height": 800},
                          timezone_id="America/New_York").new_page()
    frame = open_widget(visitor, server, admin.team["id"])
    leave(leave_form(frame), "发票抬头写错了", phone="13912345678")
    expect(frame.locator(".mq-thanks")).to_be_visible()
    ticket_id = admin.get("/api/v1/tickets").get_json()["items"][0]["id"]
    reply = admin.post(f"/api/v1/tickets/{ticket_id}/comments",
                       json={"body": "已重开", "visibility": "public"}).get_json()
    with server.app.app_context():  # single-digit months and days; Shanghai is UTC+8
        Ticket.update(created_at=datetime.datetime(2026, 3, 5, 15, 51)).where(
            Ticket.id == ticket_id).execute()
        TicketComment.update(created_at=datetime.datetime(2026, 3, 6, 1, 2)).where(
            TicketComment.id == reply["id"]).execute()
    frame.locator("#mq-tickets-btn").click()
    ticket = frame.locator(f".mq-ticket[data-id='{ticket_id}']")
    expect(ticket.locator(".mq-ticket-meta time")).to_have_text("2026/03/05 23:51")
    expect(ticket.locator(".mq-reply-meta time")).to_have_text("2026/03/06 09:02")


def chatting_with_admin(server, admin, new_context):
    """A visitor who asked for a person and is served by the admin (online): his
    page, the widget's frame and the conversation's id."""
    admin.go_online()
    visitor = new_context(viewport={"width": 1100, "height": 800}).new_page()
    frame = open_widget(visitor, server, admin.team["id"])
    frame.locator("#mq-human").click()
    expect(frame.locator("#mq-state")).to_contain_text("王管理")
    with server.app.app_context():
        cid = Conversation.get(Conversation.status == "open").id
    return visitor, frame, cid


def test_the_page_after_a_chat_ended_offers_to_leave_a_message(server, admin, new_context):
    visitor, frame, cid = chatting_with_admin(server, admin, new_context)
    assert admin.post(f"/api/v1/conversations/{cid}/end").status_code == 200

    expect(frame.locator("#mq-state")).to_have_text("对话已结束")
    frame.locator(".mq-leave-after").click()
    form = frame.locator(".mq-leave")
    leave(form, "刚才忘了问：能开发票吗？", email="kehu@example.com")
    expect(frame.locator(".mq-thanks")).to_be_visible()
    tickets = admin.get("/api/v1/tickets").get_json()["items"]
    assert [(t["source"], t["conversation_id"]) for t in tickets] == [("after_end", cid)]
    assert tickets[0]["contact"]["email"] == "kehu@example.com"
    expect(frame.locator("#mq-tickets-btn")).to_be_visible()


def test_attachments_upload_with_progress_inside_the_servers_limits(tmp_path, new_context):
    limit = 1024 * 1024  # the server's file limit, which the widget is told and applies
    with serve(tmp_path, MAX_FILE_BYTES=limit) as server:
        with server.app.app_context():
            admin = ApiClient.registered(server.app)
        visitor = new_context(viewport={"width": 1100, "height": 800}).new_page()
        frame = open_widget(visitor, server, admin.team["id"])
        form = leave_form(frame)
        expect(form.locator(".mq-attach-box")).to_contain_text("最多 5 个文件，合计不超过 20 MB")

        photo = png(tmp_path / "破损照片.png")
        note = tmp_path / '<img src=x onerror="alert(4)">订单.txt'
        note.write_text("订单号 A1024", encoding="utf-8")
        form.locator("input[type=file]").set_input_files([str(photo), str(note)])
        done = form.locator(".mq-attachment[data-state=done]")
        expect(done).to_have_count(2)
        expect(done.locator("progress").first).to_have_attribute("value", "100")
        expect(done.locator(".mq-attachment-name")).to_have_text(["破损照片.png", '<img src=x onerror="alert(4)">订单.txt'])

        big = tmp_path / "录像.bin"
        big.write_bytes(b"\0" * (limit + 1))
        form.locator("input[type=file]").set_input_files(str(big))
        expect(form.locator(".mq-error")).to_have_text("录像.bin 太大了：最大 1 MB")
        expect(form.locator(".mq-attachment")).to_have_count(2)  # never uploaded

        form.locator(".mq-attachment-remove").last.click()
        expect(form.locator(".mq-attachment")).to_have_count(1)

        leave(form, "快递盒子破了，照片见附件", phone="13912345678")
        expect(frame.locator(".mq-thanks")).to_be_visible()
        ticket_id = admin.get("/api/v1/tickets").get_json()["items"][0]["id"]
        ticket = admin.get(f"/api/v1/tickets/{ticket_id}").get_json()
        assert [(a["name"], a["is_image"]) for a in ticket["attachments"]] == [("破损照片.png", True)]


def test_form_errors_are_shown_in_the_visitors_language(server, admin, new_context):
    chinese = new_context(locale="zh-CN").new_page()
    frame = open_widget(chinese, server, admin.team["id"])
    form = leave_form(frame)
    error = form.locator(".mq-error")
    # Sent empty: every missing required thing, one line each, the message first (it said
    # only "leave a phone or email": a Chinese support lead).
    form.locator("button[type=submit]").click()
    expect(error).to_have_text(ZH["widget.err.content_required"] + ZH["widget.err.contact_required"])
    assert error.evaluate("e => e.innerText.split('\\n')") == [
        ZH["widget.err.content_required"], ZH["widget.err.contact_required"]]
    for name in ("content", "phone"):
        expect(form.locator(f"[name={name}]")).to_have_attribute("aria-invalid", "true")
    expect(form.locator("textarea[name=content]")).to_be_focused()
    leave(form, "", phone="13912345678")
    expect(error).to_have_text(ZH["widget.err.content_required"])
    expect(form.locator("input[name=phone]")).not_to_have_attribute("aria-invalid", "true")
    leave(form, "请回电", phone="12345")
    expect(error).to_have_text(ZH["widget.err.phone_invalid"])
    expect(form.locator("input[name=phone]")).to_have_attribute("aria-invalid", "true")
    leave(form, "请回电", phone="", email="")
    expect(error).to_have_text(ZH["widget.err.contact_required"])
    leave(form, "请回电", email="not-mail")
    expect(error).to_have_text(ZH["widget.err.email_invalid"])

    english = new_context(locale="en-US").new_page()
    frame = open_widget(english, server, admin.team["id"])
    form = leave_form(frame)
    error = form.locator(".mq-error")
    form.locator("button[type=submit]").click()
    expect(error).to_have_text(EN["widget.err.content_required"] + EN["widget.err.contact_required"])
    leave(form, "Call me back", phone="12345")
    expect(error).to_have_text(EN["widget.err.phone_invalid"])
    leave(form, "Call me back", phone="", email="x@")
    expect(error).to_have_text(EN["widget.err.email_invalid"])
    leave(form, "Call me back", email="me@example.com")
    expect(frame.locator(".mq-thanks")).to_have_text(EN["widget.leave.thanks"])
    with server.app.app_context():
        assert Ticket.select().count() == 1
