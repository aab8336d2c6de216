"""In Chromium: a visitor's message refused while the database is busy is not lost.

The server answers ``unavailable`` when a frame waited longer than
DATABASE_BUSY_TIMEOUT for the database (here: another connection holds SQLite's
write lock). The widget keeps the message pending and sends it again, same
client_msg_id, once the database answers: stored once, shown once, never
"failed" (docs/protocol.md).
"""

from __future__ import annotations

import logging

from playwright.sync_api import expect

from meiqia.models import Message
from tests.browser.conftest import serve
from tests.browser.test_widget import open_widget
from tests.helpers import ApiClient
from tests.helpers import wait_until
from tests.reliability.test_database_faults import sqlite_lock

TEXT = "数据库忙的时候发的消息"


def test_a_message_refused_while_the_database_is_busy_goes_again_by_itself(
        tmp_path, new_context, caplog):
    with serve(tmp_path, DATABASE_BUSY_TIMEOUT=0.5) as server:
        with server.app.app_context():
            admin = ApiClient.registered(server.app)
        assert admin.patch("/api/v1/team", json={"settings": {"bot_enabled": False}}
                           ).status_code == 200
        assert admin.patch(f"/api/v1/agents/{admin.agent['id']}", json={
            "status": "online", "max_concurrent": 5}).status_code == 200
        admin.workspace_open()
        page = new_context().new_page()
        frame = open_widget(page, server, admin.team["id"])
        expect(frame.locator("#mq-send")).to_be_enabled()

        caplog.set_level(logging.WARNING, logger="meiqia.web.ws")
        holder = sqlite_lock(server.app)
        try:
            frame.locator("#mq-input").fill(TEXT)
            frame.locator("#mq-input").press("Enter")
            wait_until(lambda: any("unavailable for a message frame" in r.getMessage()
                                   for r in caplog.records),
                       30, "the server to refuse the message as unavailable")
            status = frame.locator(".mq-msg.mine .mq-status")
            expect(status).to_have_attribute("data-status", "sending")  # kept, not failed
        finally:
            holder.execute("ROLLBACK")
            holder.close()

        expect(frame.locator(".mq-msg.mine .mq-status")).not_to_have_attribute(
            "data-status", "sending", timeout=30_000)
        expect(frame.locator(".mq-msg.mine .mq-status")).not_to_have_attribute(
            "data-status", "failed")
        expect(frame.locator(".mq-msg.mine")).to_have_count(1)
        with server.app.app_context():
            stored = [m.body for m in Message.select().where(Message.sender_kind == "visitor")]
        assert stored == [TEXT]


def test_a_widget_refused_at_connect_comes_back_by_itself(tmp_path, new_context, caplog):
    """A widget whose socket is refused at connect (no database turn: ``unavailable``
    with ``retry_after_ms``, close 1013) reconnects by itself once there is one, and
    shows no error (static/js/socket.js, docs/protocol.md "Outages")."""
    import threading

    with serve(tmp_path, DATABASE_BUSY_TIMEOUT=0.3) as server:
        with server.app.app_context():
            admin = ApiClient.registered(server.app)
        assert admin.patch("/api/v1/team", json={"settings": {"bot_enabled": False}}
                           ).status_code == 200
        gate = server.app.extensions["meiqia.ws_gate"] = threading.BoundedSemaphore(1)
        context = new_context()
        page = context.new_page()
        frame = open_widget(page, server, admin.team["id"])
        expect(frame.locator("#mq-send")).to_be_enabled()

        caplog.set_level(logging.WARNING, logger="meiqia.web.ws")
        assert gate.acquire(timeout=10)  # the database has no turn for a socket
        try:
            context.set_offline(True)  # the socket drops; back online it reconnects
            context.set_offline(False)
            wait_until(lambda: sum("connect refused" in r.getMessage()
                                   for r in caplog.records) >= 2,
                       60, "the server to refuse the widget's reconnects (1013)")
        finally:
            gate.release()
        frame.locator("#mq-input").fill(TEXT)
        frame.locator("#mq-input").press("Enter")
        expect(frame.locator(".mq-msg.mine .mq-status")).not_to_have_attribute(
            "data-status", "sending", timeout=30_000)
        expect(frame.locator(".mq-msg.mine .mq-status")).not_to_have_attribute(
            "data-status", "failed")
        assert not any("handler failed" in r.getMessage() for r in caplog.records)


def test_a_widget_whose_session_is_refused_while_the_database_is_busy_starts_by_itself(
        tmp_path, new_context, caplog):
    """The session itself answered 503 (SQLite's write lock held past the busy
    timeout): the widget says "reconnecting", not an error, tries again after
    Retry-After, and the question typed meanwhile reaches the bot once it can."""
    with serve(tmp_path, DATABASE_BUSY_TIMEOUT=0.5) as server:
        with server.app.app_context():
            admin = ApiClient.registered(server.app)
        admin.post("/api/v1/knowledge", json={"key": "refund", "questions": ["怎么申请退款"],
                                               "answer": "七天内可以无理由退款。"})
        caplog.set_level(logging.WARNING, logger="meiqia.web.unavailable")
        holder = sqlite_lock(server.app)
        try:
            page = new_context().new_page()
            frame = open_widget(page, server, admin.team["id"])
            wait_until(lambda: any("/widget/session" in r.getMessage()
                                   for r in caplog.records),
                       30, "the server to refuse the widget's session as unavailable")
            frame.locator("#mq-input").fill("怎么申请退款")
            frame.locator("#mq-input").press("Enter")
            expect(frame.locator("#mq-conn")).to_be_visible()  # "Reconnecting…"
            expect(frame.locator(".mq-msg.mine .mq-status")).to_have_attribute(
                "data-status", "sending")
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        expect(frame.locator(".mq-msg.from-bot").last).to_contain_text(
            "七天内可以无理由退款", timeout=30_000)
        expect(frame.locator("#mq-conn")).to_be_hidden()
        expect(frame.locator("#mq-banner")).to_be_hidden()
        expect(frame.locator(".mq-msg.mine")).to_have_count(1)
        with server.app.app_context():
            stored = [m.body for m in Message.select().where(Message.sender_kind == "visitor")]
        assert stored == ["怎么申请退款"]
