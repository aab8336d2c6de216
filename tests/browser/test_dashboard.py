"""The home dashboard in Chromium: live figures, today's cards, SVG charts, the range picker.

Data are built with the factories (exact end times, ratings, handlers) as in
``tests/api/test_dashboard.py``; the team is in Asia/Shanghai, so a conversation
that ended at 17:30 UTC on the 19th counts on the 20th.
"""

from __future__ import annotations

import datetime

from playwright.sync_api import expect

from meiqia.models.base import utcnow
from tests.browser.conftest import login
from tests.browser.conftest import screenshot
from tests.factories import make_conversation
from tests.factories import make_visitor
from tests.helpers import AGENT_PASSWORD

UTC = datetime.datetime
RANGE = "from=2026-11-14&to=2026-11-20"


def build(server, admin):
    """Five conversations in the week, one ended today, three going on now."""
    li = admin.new_agent(email="li@example.com", name="李客服", scope="self").agent["id"]
    me = admin.agent["id"]
    team = admin.team["id"]
    # Online, but taking no conversation himself (limit 0), so the queue stays queued.
    assert admin.patch(f"/api/v1/agents/{me}", json={"status": "online", "max_concurrent": 0}
                       ).status_code == 200
    admin.workspace_open()  # "online" on the dashboard is online with a workspace open
    with server.app.app_context():
        def conv(handler, ended, messages, **fields):
            return make_conversation(team, make_visitor(team, name="访客"), handler=handler,
                                     ended_at=ended, messages=messages, **fields)

        conv(li, UTC(2026, 11, 20, 4, 0), [("visitor", "退款 13800138000", 0),
                                           ("agent", "好的", 30), ("agent", "已退", 90)],
             rating="good")
        conv(li, UTC(2026, 11, 19, 17, 30), [("visitor", "在吗", 0), ("agent", "在", 10)],
             rating="bad")
        conv(me, UTC(2026, 11, 15, 2, 0), [("visitor", "在吗", 0)])  # missed
        conv(None, UTC(2026, 11, 17, 8, 0), [("visitor", "发票怎么开", 0),
                                             ("bot", "在订单页申请", 1)])  # bot resolved
        conv(me, UTC(2026, 11, 16, 6, 0), [("agent", "您好", 0)], rating="neutral")  # invalid
        conv(li, utcnow(), [("visitor", "邮箱 a@b.cn", -20), ("agent", "收到", -8)])  # today
        make_conversation(team, make_visitor(team), handler=li, status="open")
        make_conversation(team, make_visitor(team), status="bot")
        make_conversation(team, make_visitor(team), status="queued")


def stat(page, section, key):
    return page.locator(f"#{section} [data-stat={key}] .stat-value")


def test_dashboard_shows_the_figures_and_draws_the_charts(server, admin, new_context):
    build(server, admin)
    page = new_context(viewport={"width": 1360, "height": 1700}).new_page()
    login(page, server, next="/dashboard")
    # The home page of a logged-in agent is the dashboard.
    page.goto(f"{server.url}/")
    page.wait_for_url(f"{server.url}/dashboard**")
    page.goto(f"{server.url}/dashboard?{RANGE}")
    expect(page.locator("#dashboard")).to_have_attribute("data-loaded", "2026-11-14/2026-11-20")

    # Now: 王管理 online; open + bot in progress; one queued.
    expect(stat(page, "dash-now", "online")).to_have_text("1")
    expect(page.locator("#dash-now [data-stat=online] .stat-hint")).to_have_text("王管理")
    expect(stat(page, "dash-now", "active")).to_have_text("2")
    expect(stat(page, "dash-now", "queued")).to_have_text("1")
    # Today: the one that ended just now (a lead).
    expect(stat(page, "dash-today", "ended")).to_have_text("1")
    expect(stat(page, "dash-today", "leads")).to_have_text("1")
    expect(stat(page, "dash-today", "first-response")).to_have_text("12 秒")
    # The week: hand-checked figures.
    expect(page.locator("#dash-range-label")).to_have_text("2026-11-14 – 2026-11-20")
    expect(stat(page, "dash-range-stats", "ended")).to_have_text("5")
    expect(stat(page, "dash-range-stats", "missed")).to_have_text("1")  # not the bot-resolved one
    expect(stat(page, "dash-range-stats", "invalid")).to_have_text("1")
    expect(stat(page, "dash-range-stats", "bot")).to_have_text("20%")
    expect(stat(page, "dash-range-stats", "satisfaction")).to_have_text("33.3%")

    # Charts: one point per day, one bar per hour, per rating, two donut segments.
    points = page.locator("#chart-by-day svg circle.point")
    assert points.count() == 7
    assert [points.nth(i).get_attribute("data-value") for i in range(7)] == [
        "0", "1", "1", "1", "0", "0", "2"]
    assert page.locator("#chart-by-hour svg rect.bar").count() == 24
    ratings = page.locator("#chart-ratings svg rect.bar")
    assert [ratings.nth(i).get_attribute("data-value") for i in range(4)] == ["1", "1", "1", "2"]
    segments = page.locator("#chart-bot svg path.segment")
    assert [segments.nth(i).get_attribute("data-value") for i in range(2)] == ["1", "4"]
    assert page.locator("#chart-response svg rect.bar").count() == 4
    assert page.locator("#chart-agents svg rect.bar").count() == 2
    # Accessible: a title on the svg, and the numbers as a table.
    assert page.locator("#chart-by-day svg title").first.text_content() == "每日对话量"
    page.locator("#chart-by-day details summary").click()
    assert page.locator("#chart-by-day table tbody tr").count() == 7
    assert page.locator("#chart-by-day table tbody tr").last.inner_text().split() == [
        "2026-11-20", "2"]
    # A tooltip on hover.
    points.nth(6).hover()
    expect(page.locator("#chart-by-day .chart-tip")).to_have_text("11-20: 2")
    rows = page.locator("#dash-agents tbody tr")
    expect(rows).to_have_count(2)
    assert rows.first.locator("th").inner_text() == "李客服"
    page.locator("#chart-by-day details summary").click()  # closed again
    page.mouse.move(0, 0)
    screenshot(page, "dashboard")

    # The range picker reloads the figures (and the URL keeps the range).
    form = page.locator("#dash-range")
    form.locator("input[name=from]").fill("2026-11-20")
    form.locator("input[name=to]").fill("2026-11-20")
    form.locator("button[type=submit]").click()
    expect(page.locator("#dashboard")).to_have_attribute("data-loaded", "2026-11-20/2026-11-20")
    expect(stat(page, "dash-range-stats", "ended")).to_have_text("2")
    assert page.locator("#chart-by-day svg circle.point").count() == 1
    assert page.url.endswith("?from=2026-11-20&to=2026-11-20")
    # A range the server refuses says why, on the form.
    form.locator("input[name=from]").fill("2026-11-21")
    form.locator("button[type=submit]").click()
    expect(form.locator(".form-error")).to_contain_text("开始日期：不能晚于结束日期")
    # The same range in the address: the refused dates stay beside the error, and
    # "right now" and "today" show all the same (they do not depend on the range).
    page.goto(f"{server.url}/dashboard?from=2026-11-21&to=2026-11-20")
    expect(form.locator(".form-error")).to_contain_text("开始日期：不能晚于结束日期")
    expect(form.locator("input[name=from]")).to_have_value("2026-11-21")
    expect(form.locator("input[name=to]")).to_have_value("2026-11-20")
    expect(page.locator("#dash-now .stat").first).to_be_visible()
    expect(page.locator("#dash-today .stat").first).to_be_visible()
    # Presets count back from the team's today.
    page.locator("#dash-range [data-days='7']").click()
    expect(page.locator("#dash-range-stats [data-stat=ended] .stat-value")).to_have_text("1")
    assert page.locator("#chart-by-day svg circle.point").count() == 7
    # All of them went to agents: one segment, the whole ring.
    assert page.locator("#chart-bot svg path.segment").count() == 1


def test_an_agent_sees_his_scope_and_english(server, admin, new_context):
    build(server, admin)
    page = new_context(locale="en-US").new_page()
    login(page, server, "li@example.com", AGENT_PASSWORD, next="/dashboard")
    page.goto(f"{server.url}/dashboard?{RANGE}")
    expect(page.locator("#dashboard")).to_have_attribute("data-loaded", "2026-11-14/2026-11-20")
    # 李客服 (scope self): his two and the team's unassigned pool (the bot one).
    expect(stat(page, "dash-range-stats", "ended")).to_have_text("3")
    assert page.locator("#chart-agents svg rect.bar").count() == 1
    assert page.locator("#chart-by-day figcaption").inner_text() == "Conversations per day"
    assert page.locator("h1").inner_text() == "Dashboard"
