"""In Chromium: the widget's banner during a database outage speaks to the visitor, and
goes once his message is through.

Found from outside (hops widget_pgcut_banner.py): during a 20 s PostgreSQL cut, a
question typed then stayed "sending" and went once the database was back, and the bot
answered it, as documented; but the yellow banner "数据库繁忙或无法连接：请重新发送" (the
server's error text for the ``typing`` frames refused meanwhile) stayed on screen for
good: it told the visitor to send again what had already gone, and named the database.
Now an ``unavailable`` refusal shows the widget's own words in his language ("网络繁忙，
消息将自动重发": the widget resends by itself), and the banner goes as soon as the
message it waited for is acknowledged.

The outage is real: the test's own PostgreSQL database refuses connections
(``ALLOW_CONNECTIONS false``) and its backends are terminated, as an operator's cut or a
failover does; then it is allowed again.
"""

from __future__ import annotations

import contextlib
from urllib.parse import urlparse

import psycopg2
import pytest
from playwright.sync_api import expect

from meiqia.models import Message
from tests.browser.conftest import serve
from tests.browser.test_widget import open_widget
from tests.conftest import truncate_all
from tests.helpers import ApiClient

#: The widget's banner while a message waits for the database, per language
#: (static/i18n/widget.json ``widget.busy.resending``; docs/ui.md).
BUSY = {"zh-CN": "网络繁忙，消息将自动重发", "en": "Network busy: your message will be sent automatically"}
QUESTION = {"zh-CN": "请问退货运费谁出？（断库期间）", "en": "Who pays for the return shipping? (during the cut)"}
ANSWER = {"zh-CN": "质量问题的退货运费由我们承担", "en": "We pay the return shipping"}


@contextlib.contextmanager
def database_cut(url: str):
    """The database ``url`` names refuses new connections and its open ones are ended;
    allowed again on leaving (only this database: the server's others are untouched)."""
    name = urlparse(url).path.lstrip("/")
    admin = psycopg2.connect(url.rsplit("/", 1)[0] + "/postgres")
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            cur.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE datname = %s AND pid <> pg_backend_pid()", (name,))
        yield
    finally:
        with admin.cursor() as cur:
            cur.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        admin.close()


def said_hello(page):
    """The ``hello`` frames the page's sockets (its widget frame's) received, as they come
    (Playwright delivers them while the test waits on the page)."""
    hellos: list[str] = []
    page.on("websocket", lambda ws: ws.on(
        "framereceived", lambda data: hellos.append(data) if '"hello"' in str(data) else None))
    return hellos


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_the_busy_banner_speaks_to_the_visitor_and_goes_once_his_message_is_acked(
        tmp_path, new_context, pg_database_url, lang):
    truncate_all(pg_database_url)
    with serve(tmp_path, DATABASE_URL=pg_database_url) as server:
        with server.app.app_context():
            admin = ApiClient.registered(server.app)
        assert admin.post("/api/v1/knowledge", json={
            "key": "return-shipping", "questions": [QUESTION[lang]],
            "answer": ANSWER[lang]}).status_code == 201
        # A browser of the other language: the widget's own language decides. Closed
        # while the server (and its pool) is up, so its socket's last words reach it.
        with contextlib.closing(new_context(locale="en-US" if lang == "zh-CN" else "zh-CN")
                                ) as context:
            page = context.new_page()
            hellos = said_hello(page)
            frame = open_widget(page, server, admin.team["id"], lang=lang)
            expect(frame.locator("#mq-send")).to_be_enabled()
            for _ in range(300):  # the socket taken (its hello), so the cut finds it open
                if hellos:
                    break
                page.wait_for_timeout(50)
            assert hellos, "the widget's socket got no hello"
            banner = frame.locator("#mq-banner")
            mine = frame.locator(".mq-msg.mine .mq-status")

            with database_cut(pg_database_url):
                # Typed, then sent: its typing frames and the message are refused alike.
                frame.locator("#mq-input").press_sequentially(QUESTION[lang][:4], delay=50)
                frame.locator("#mq-input").fill(QUESTION[lang])
                frame.locator("#mq-input").press("Enter")
                expect(banner).to_be_visible()
                expect(banner).to_have_text(BUSY[lang])
                for word in ("数据库", "database", "重新发送", "send it again"):
                    assert word not in banner.inner_text()
                expect(mine).to_have_attribute("data-status", "sending")
                page.wait_for_timeout(1500)  # more refusals (the message's first resend)
                expect(banner).to_have_text(BUSY[lang])

            expect(frame.locator(".mq-msg.from-bot").last).to_contain_text(
                ANSWER[lang], timeout=40_000)
            expect(mine).not_to_have_attribute("data-status", "sending")
            expect(mine).not_to_have_attribute("data-status", "failed")
            expect(banner).to_be_hidden()
            expect(frame.locator(".mq-msg.mine")).to_have_count(1)
        with server.app.app_context():
            stored = [m.body for m in Message.select().where(Message.sender_kind == "visitor")]
        assert stored == [QUESTION[lang]]


def test_talk_to_a_human_refused_during_a_cut_says_try_again_in_the_visitors_words(
        tmp_path, new_context, pg_database_url):
    """转人工 answered 503 ``unavailable`` during the cut: the banner says 「网络繁忙，请稍后
    再试」, not the server's "数据库繁忙或无法连接…"; pressed again once the database is
    back, the request goes through and that banner is gone."""
    truncate_all(pg_database_url)
    with serve(tmp_path, DATABASE_URL=pg_database_url) as server:
        with server.app.app_context():
            admin = ApiClient.registered(server.app)
        with contextlib.closing(new_context()) as context:
            page = context.new_page()
            hellos = said_hello(page)
            frame = open_widget(page, server, admin.team["id"], lang="zh-CN")
            for _ in range(300):
                if hellos:
                    break
                page.wait_for_timeout(50)
            banner = frame.locator("#mq-banner")
            with database_cut(pg_database_url):
                frame.locator("#mq-human").click()
                expect(banner).to_have_text("网络繁忙，请稍后再试")
            with page.expect_response(lambda r: r.url.endswith("/human")) as answer:
                frame.locator("#mq-human").click()
            assert answer.value.status == 200
            expect(banner).to_be_hidden()


def test_the_workspace_says_nothing_of_typing_refused_during_a_cut(
        tmp_path, new_context, pg_database_url):
    """The agent's side of the same cut: his typing frames refused as ``unavailable``
    told him "数据库繁忙或无法连接：请重新发送" once per frame, while nothing of his was to
    send again (the workspace sends his replies by REST). Now they show nothing; his
    reply refused meanwhile says so (503, "请稍后再试") and stays in the composer."""
    from tests.browser.conftest import login
    from tests.browser.test_e2e_conversation import go_online

    truncate_all(pg_database_url)
    with serve(tmp_path, DATABASE_URL=pg_database_url) as server:
        with server.app.app_context():
            admin = ApiClient.registered(server.app)
        with contextlib.closing(new_context(viewport={"width": 1360, "height": 820})) as agent_side, \
                contextlib.closing(new_context()) as visitor_side:
            agent = agent_side.new_page()
            login(agent, server)
            go_online(agent)
            frame = open_widget(visitor_side.new_page(), server, admin.team["id"])
            frame.locator("#mq-human").click()
            expect(frame.locator("#mq-state")).to_contain_text("王管理")
            agent.locator("#ws-list .ws-item").first.click()
            expect(agent.locator("#ws-input")).to_be_visible()
            agent.wait_for_load_state("networkidle")  # the chat's panels loaded before the cut
            toasts = agent.locator("#toast .toast.error")

            with database_cut(pg_database_url):
                agent.locator("#ws-input").press_sequentially("您好，请稍等", delay=120)
                agent.wait_for_timeout(1500)  # his typing frames: refused by now
                assert toasts.all_inner_texts() == []
                agent.press("#ws-input", "Enter")
                expect(toasts.last).to_have_text("数据库繁忙或无法连接：请稍后再试")
                expect(toasts.filter(has_text="重新发送")).to_have_count(0)
                expect(agent.locator("#ws-input")).to_have_value("您好，请稍等")


def test_the_leave_a_message_form_refused_during_a_cut_says_try_again_and_keeps_the_text(
        tmp_path, new_context, pg_database_url):
    """留言 (nobody online) sent during the cut: the server answers 503 ``unavailable`` with
    "数据库繁忙或无法连接：请稍后再试", which the form showed as is. Now it says 「网络繁忙，
    请稍后再试」 like the chat, keeps what the visitor typed, and sent again once the
    database is back, the ticket is created once."""
    from meiqia.models import Ticket

    truncate_all(pg_database_url)
    typed = {"name": "李雷", "phone": "13912345678", "email": "lilei@example.com"}
    content = "断库期间留言：请回电，订单号 20240518"
    with serve(tmp_path, DATABASE_URL=pg_database_url) as server:
        with server.app.app_context():
            admin = ApiClient.registered(server.app)
        with contextlib.closing(new_context(locale="zh-CN")) as context:
            page = context.new_page()
            frame = open_widget(page, server, admin.team["id"], lang="zh-CN")
            frame.locator("#mq-human").click()  # nobody online: the form
            form = frame.locator(".mq-leave")
            form.wait_for()
            for name, value in typed.items():
                form.locator(f"input[name={name}]").fill(value)
            form.locator("textarea[name=content]").fill(content)
            error = form.locator(".mq-error")

            with database_cut(pg_database_url):
                with page.expect_response(lambda r: r.url.endswith("/widget/tickets")
                                          and r.request.method == "POST") as answer:
                    form.locator("button[type=submit]").click()
                assert answer.value.status == 503
                assert answer.value.json()["error"]["code"] == "unavailable"
                expect(error).to_have_text("网络繁忙，请稍后再试")
                assert "数据库" not in error.inner_text()
            for name, value in typed.items():
                expect(form.locator(f"input[name={name}]")).to_have_value(value)
            expect(form.locator("textarea[name=content]")).to_have_value(content)
            expect(form.locator("button[type=submit]")).to_be_enabled()

            with page.expect_response(lambda r: r.url.endswith("/widget/tickets")
                                      and r.request.method == "POST") as answer:
                form.locator("button[type=submit]").click()
            assert answer.value.status == 201
            expect(frame.locator(".mq-thanks")).to_be_visible()
        with server.app.app_context():
            tickets = [(t.content, t.contact_name, t.contact_email) for t in Ticket.select()]
        assert tickets == [(content, typed["name"], typed["email"])]
