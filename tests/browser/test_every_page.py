"""Every page in both languages at both sizes, in one Chromium: one language, one clock.

Issue 17: an English visitor read Chinese system lines, an English UI showed "访客 12",
the export and the pages showed times in different zones. This walk visits every page
an agent, an admin and a visitor reach (agent pages, admin tabs, the ticket page, the
widget with its leave-a-message form and 我的留言 list) with a browser in each language,
and checks what a person reads there (text, titles, placeholders, labels):

* English: no CJK character. The seed data is ASCII, so any CJK is a UI string.
* zh-CN: no English word except an allow-list (product and protocol names, and the
  ASCII seed data, which is user content).
* One clock: the team's zone is America/New_York and the browser's Asia/Shanghai; a
  seeded time must show as New York time, and no time on any page may read as the
  Shanghai rendering of a seeded time or of the walk's own minutes.

Each page is saved to docs/screenshots/<lang>-<width>/<page>.png at 1366x768 and
1920x1080 (the README shows the widget, the workspace and the dashboard). One server,
one browser, one context per (language, size) reused for all its pages.
"""

from __future__ import annotations

import datetime
import re
import time
from collections.abc import Iterator
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import expect

from meiqia.models import Conversation
from meiqia.models import SinkDelivery
from meiqia.models import Ticket
from meiqia.models import TicketSink
from meiqia.models import UnrecognisedQuestion
from meiqia.models.base import utcnow
from tests.browser.conftest import SCREENSHOTS
from tests.browser.conftest import WAIT_MS
from tests.browser.conftest import login
from tests.browser.conftest import serve
from tests.factories import make_conversation
from tests.factories import make_visitor
from tests.helpers import ADMIN_PASSWORD
from tests.helpers import ApiClient

SIZES = ((1366, 768), (1920, 1080))
LANGS = ("zh-CN", "en")
TEAM_ZONE = "America/New_York"
BROWSER_ZONE = "Asia/Shanghai"
#: Fixed past times of the seeded chats (naive UTC, as stored).
ENDED = datetime.datetime(2026, 11, 20, 4, 17)     # New York 23:17 (19th), Shanghai 12:17
OPEN_AT = datetime.datetime(2026, 11, 21, 6, 42)   # New York 01:42, Shanghai 14:42
#: Around each of these the seed writes its messages and tickets.
SEEDED = (ENDED, ENDED - datetime.timedelta(hours=1), OPEN_AT)
#: Every text a person typed into the seed: ASCII, so CJK on an English page is ours.
SEED_WORDS = """Acme Shop Wendy Admin Leo Chen Pre sales Tom Baker Ann Lee Desktop Nanjing
Windows Chrome Where is my order On its way refund Broken headphones The left side is
silent ship Shipping We within hours returns How do I return an item Within days CI script
Please call me back What colour is it example com shop Mac macOS Safari hook""".split()
#: English words a zh-CN page may show: names of products, protocols and formats.
ZH_ALLOWED = {
    "KB", "API", "Webhook", "webhook", "IP", "URL", "SMTP", "STARTTLS", "HMAC", "SHA", "CSV",
    "XLSX", "YAML", "JSON", "HTTP", "HTTPS", "OpenAPI", "Bearer", "Meiqia", "ID", "iframe",
    "PNG", "JPEG", "GIF", "WebP", "MB", "GB", "UTC", "Asia", "America", "New_York",
    "Enter", "Shift", "Excel", "CRM",
    "token", "Authorization",  # token=… and Authorization: literal names
    "id", "question", "answer",  # the columns of a knowledge-base file, named as in the file
}
CJK = re.compile(r"[\u3400-\u9fff\u3000-\u303f\uff00-\uffef]")
WORD = re.compile(r"[A-Za-z][A-Za-z_]+")
CLOCK = re.compile(r"\b([01]\d|2[0-3]):([0-5]\d)\b")
#: E-mails, addresses, paths, markup, API tokens (mq_…, shown cut), host names: not words.
STRIP = re.compile(r"\S+@\S+|https?://\S+|/[\w./?=&#-]+|<[^>]*>|\bmq_\S*"
                   r"|\b[\w-]+(?:\.[\w-]+)+\b")  # … and host names

#: What a person reads on a page: its text, title, and the words of inputs and controls.
READ = """() => {
  const parts = [document.title, document.body.innerText];
  for (const node of document.querySelectorAll('[placeholder],[title],[aria-label]')) {
    if (node.closest('[hidden]') || node.offsetParent === null && node.tagName !== 'BODY') continue;
    for (const name of ['placeholder', 'title', 'aria-label']) {
      if (node.getAttribute(name)) parts.push(node.getAttribute(name));
    }
  }
  // Code shown as code (a snippet, a hook name, a file's column) is the same in every
  // language: left out of what is read.
  const code = [...document.querySelectorAll('code, pre, kbd')].map((n) => n.innerText).filter(Boolean);
  return { text: parts.join('\\n'), code };
}"""
#: A language's own name, on the switch to it ("English" on a Chinese page, "中文" on an
#: English one, 简体中文 in the team-language choice): meant to be in that language.
LANGUAGE_NAMES = {"English", "中文", "简体中文"}


def reading(page: Any) -> str:
    read = page.evaluate(READ)
    text = read["text"]
    for snippet in sorted(read["code"], key=len, reverse=True):
        text = text.replace(snippet, " ")
    return text


def shanghai(when: datetime.datetime) -> str:
    return when.replace(tzinfo=datetime.UTC).astimezone(ZoneInfo(BROWSER_ZONE)).strftime("%H:%M")


def new_york(when: datetime.datetime) -> str:
    return when.replace(tzinfo=datetime.UTC).astimezone(ZoneInfo(TEAM_ZONE)).strftime("%H:%M")


def seed(app: Any) -> dict[str, Any]:
    """A team with something on every page, every text in ASCII."""
    api = ApiClient(app)
    response = api.client.post("/api/v1/auth/register", json={
        "team_name": "Acme Shop", "name": "Wendy Admin", "email": "admin@example.com",
        "password": ADMIN_PASSWORD})
    assert response.status_code == 201, response.get_json()
    api._take(response.get_json())
    team = api.team["id"]
    me = api.agent["id"]
    assert api.patch("/api/v1/team", json={"timezone": TEAM_ZONE}).status_code == 200
    api.new_agent(name="Leo Chen", email="leo@example.com")
    api.post("/api/v1/groups", json={"name": "Pre sales"})
    api.post("/api/v1/quick-replies", json={"keyword": "ship", "title": "Shipping",
                                            "body": "We ship within 48 hours.", "team": True})
    api.post("/api/v1/knowledge", json={"key": "returns", "questions": ["How do I return an item"],
                                        "answer": "Within 7 days."})
    api.post("/api/v1/tokens", json={"name": "CI script"})
    visit = {"device": "Desktop", "os": "Windows", "browser": "Chrome", "region": "Nanjing"}
    tom = make_visitor(team, name="Tom Baker", **visit)
    ended = make_conversation(team, tom, handler=me, ended_at=ENDED, rating="good",
                              tags=["refund"], messages=[("visitor", "Where is my order", 0),
                                                         ("agent", "On its way", 30)])
    nameless = make_visitor(team, name="", **visit)  # shown as "访客 N" / "Visitor N"
    make_conversation(team, nameless, handler=me, ended_at=ENDED - datetime.timedelta(hours=1),
                      messages=[("visitor", "What colour is it", 0)])
    # The last days' chats, so the dashboard's charts have something to draw.
    recent = []
    for days, rating in ((1, "good"), (2, "good"), (2, "bad"), (3, "neutral"), (4, "good")):
        when = utcnow() - datetime.timedelta(days=days, hours=2)
        recent.append(when)
        make_conversation(team, make_visitor(team, name="Tom Baker", **visit), handler=me,
                          ended_at=when, rating=rating,
                          messages=[("visitor", "Where is my order", 0),
                                    ("agent", "On its way", 40)])
    ann = make_visitor(team, name="Ann Lee", **visit)
    open_chat = make_conversation(team, ann, handler=me, started_at=OPEN_AT,
                                  messages=[("visitor", "Where is my order", 0),
                                            ("agent", "On its way", 60)])
    ticket = api.post("/api/v1/tickets", json={
        "conversation_id": open_chat.id, "subject": "Broken headphones",
        "content": "The left side is silent", "name": "Ann Lee"}).get_json()
    Ticket.update(created_at=ENDED, updated_at=ENDED).where(Ticket.id == ticket["id"]).execute()
    UnrecognisedQuestion.create(team=team, conversation=ended.id, question="What colour is it")
    sink = TicketSink.create(team=team, type="webhook", name="CRM hook", config={
        "url": "https://crm.example.com/hook", "secret": "s" * 16})
    SinkDelivery.create(sink=sink, ticket=ticket["id"], event="created", status="failed",
                        attempts=4, last_error="RuntimeError: webhook answered HTTP 500")
    started = api.post("/api/v1/history/exports", json={"format": "csv"})
    assert started.status_code == 202, started.get_json()
    return {"api": api, "team": team, "ended": ended.id, "open": open_chat.id,
            "ticket": ticket["id"], "nameless": nameless.id, "recent": recent}


@pytest.fixture(scope="module")
def site(tmp_path_factory: Any) -> Iterator[Any]:
    with serve(tmp_path_factory.mktemp("every-page")) as server, server.app.app_context():
        server.seed = seed(server.app)
        # The bot's index built before the walks, as a server builds it when it starts
        # (``knowledge.warm_up``): the seed has just written the knowledge base, and that
        # first build (with its calibration) on a loaded full run outlasted the widget
        # walk's 30 s for the bot's first answer, three runs out of five.
        from meiqia.db import connection
        from meiqia.services import knowledge

        with connection():
            knowledge.index_for(server.seed["team"])
        yield server


def agent_pages(seeded: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(name, path, a selector that is there once the page's script has drawn it)."""
    return [
        ("dashboard", "/dashboard", "#dash-today .stat"),
        ("workspace", f"/workspace#c{seeded['open']}", "#chat-title:not(:empty)"),
        ("history", f"/history#c{seeded['ended']}", "#history-table tbody tr"),
        ("exports", "/history/exports", "#exports-table tbody tr[data-id]"),
        ("tickets", "/tickets", "text=Broken headphones"),
        ("ticket", f"/tickets/{seeded['ticket']}", "text=The left side is silent"),
        ("tokens", "/tokens", "text=CI script"),
        ("admin-settings", "/admin/settings", "form"),
        ("admin-agents", "/admin/agents", "text=Leo Chen"),
        ("admin-groups", "/admin/groups", "text=Pre sales"),
        ("admin-conversation-rules", "/admin/conversation-rules", "form"),
        ("admin-knowledge", "/admin/knowledge", "text=How do I return an item"),
        ("admin-unrecognised", "/admin/unrecognised", "text=What colour is it"),
        ("admin-quick-replies", "/admin/quick-replies", "text=Shipping"),
        ("admin-ticket-sinks", "/admin/ticket-sinks", "#sinks-table tbody tr"),
        ("admin-iframe-plugins", "/admin/iframe-plugins", "main"),
        ("admin-plugins", "/admin/plugins", "main"),
    ]


class Findings:
    """What the walk found: every problem at once, not only the first."""

    def __init__(self, started: datetime.datetime, recent: list[datetime.datetime]) -> None:
        self.started = started
        self.recent = recent  # the dashboard's chats: their New York times are right too
        self.problems: list[str] = []

    def forbidden_clocks(self) -> set[str]:
        """Shanghai renderings of the seeded times and of every minute of the walk, but
        the round hours and half hours settings may name, and what the seed's New York
        times and the walk's own New York minutes read (a Shanghai minute may fall on
        one)."""
        def minutes(start: datetime.datetime, end: datetime.datetime) -> list[datetime.datetime]:
            out, minute = [], start.replace(second=0, microsecond=0)
            while minute <= end:
                out.append(minute)
                minute += datetime.timedelta(minutes=1)
            return out

        span = datetime.timedelta(minutes=3)
        seeded = [m for t in SEEDED for m in minutes(t - span, t + span)]
        times = {shanghai(m) for m in seeded + minutes(self.started - span, utcnow() + span)}
        allowed = {new_york(m) for m in seeded + [m for t in self.recent
                                                  for m in minutes(t - span, t + span)]}
        # What the seed and the walk create now (tickets, tokens, exports) reads the New
        # York time of now, rightly: when that equals a seeded time's Shanghai reading
        # (a run at 17:14 UTC: New York 12:14, the seeded chat's Shanghai 12:17 ± 3),
        # it is no evidence of the browser's zone.
        allowed |= {new_york(m) for m in minutes(self.started - datetime.timedelta(minutes=10),
                                                 utcnow() + span)}
        return {t for t in times if t[3:] not in ("00", "30")} - allowed

    def check(self, where: str, lang: str, text: str) -> None:
        if lang == "en":
            bad = sorted({line.strip()[:80] for line in text.splitlines()
                          if CJK.search(line) and line.strip() not in LANGUAGE_NAMES})
            if bad:
                self.problems.append(f"{where}: Chinese on an English page: {bad}")
        else:
            words = set(WORD.findall(STRIP.sub(" ", text)))
            bad = sorted(words - ZH_ALLOWED - LANGUAGE_NAMES - set(SEED_WORDS))
            if bad:
                self.problems.append(f"{where}: English words on a Chinese page: {bad}")
        wrong = sorted({f"{h}:{m}" for h, m in CLOCK.findall(text)} & self.forbidden_clocks())
        if wrong:
            self.problems.append(f"{where}: a time in the browser's zone: {wrong}")


def shot(page: Any, lang: str, width: int, name: str) -> None:
    folder = SCREENSHOTS / f"{lang}-{width}"
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"{name}.png"))


def sink_dialog(page: Any, lang: str, width: int, findings: Findings) -> None:
    """The new-sink dialog with the server's refusal: its words in the page's language."""
    page.select_option("#sink-type", "email")
    page.click("#sink-new")
    form = page.locator("dialog form")
    form.locator("input[name='config.host']").fill("smtp.example.com")
    form.locator("input[name='config.port']").fill("70000")
    form.locator("input[name='config.from']").fill("help@example.com")
    form.locator("input[name='config.to']").fill("ops@example.com")
    form.locator("button[type=submit]").click()
    alert = page.locator("dialog").get_by_role("alert").filter(has_text="65535").first
    expect(alert).to_be_visible()
    findings.check(f"{lang}-{width} admin-ticket-sink-dialog", lang, reading(page))
    shot(page, lang, width, "admin-ticket-sink-dialog")
    page.keyboard.press("Escape")


def socket_log(page: Any) -> list[str]:
    """Every websocket frame of the page and its frames, with the time it passed."""
    log: list[str] = []

    def opened(ws: Any) -> None:
        log.append(f"{time.monotonic():.2f} open {ws.url.split('?')[0]}")
        ws.on("framesent", lambda data: log.append(f"{time.monotonic():.2f} > {data[:300]}"))
        ws.on("framereceived",
              lambda data: log.append(f"{time.monotonic():.2f} < {data[:300]}"))
        ws.on("close", lambda _ws: log.append(f"{time.monotonic():.2f} closed"))

    page.on("websocket", opened)
    return log


def walk_widget(site: Any, context: Any, lang: str, width: int, findings: Findings) -> None:
    """The visitor: on the demo shop, then the chat page itself (the same visitor): the
    bot, the leave-a-message form, 我的留言."""
    # The demo shop: the button and the open panel with a question to the bot (the
    # shop's own text is the embedding site's, not ours: the panel is read below).
    demo = context.new_page()
    frames = socket_log(demo)
    demo.goto(f"{site.url}/demo?team={site.seed['team']}&lang={lang}")
    demo.wait_for_function("() => window.MeiqiaWidget && window.MeiqiaWidget.loaded")
    demo.locator("#meiqia-widget .mq-button").click()
    frame = demo.frame_locator("#meiqia-widget iframe")
    frame.locator("#mq-input").wait_for()
    frame.locator("#mq-input").fill("How do I return an item")
    frame.locator("#mq-input").press("Enter")
    # A deadline, not a timing claim: on a busy machine the panel's script, its session
    # and the bot's first answer take longer than expect()'s 5 s.
    try:
        expect(frame.locator(".mq-msg.from-bot").last).to_contain_text("Within 7 days.",
                                                                       timeout=30_000)
    except AssertionError as exc:
        # Tell a socket that never opened from a message that was never answered.
        panel = demo.frames[-1].evaluate("() => document.body.innerText")
        raise AssertionError(f"{exc}\nsocket frames:\n" + "\n".join(frames)
                             + f"\nthe panel reads:\n{panel}") from None
    shot(demo, lang, width, "widget-demo")
    demo.close()

    page = context.new_page()
    page.goto(f"{site.url}/widget/frame?team={site.seed['team']}&lang={lang}")
    expect(page.locator(".mq-msg.from-bot").last).to_be_visible()  # the same chat
    findings.check(f"{lang}-{width} widget", lang, reading(page))
    shot(page, lang, width, "widget")
    page.locator("#mq-human").click()
    form = page.locator(".mq-leave")
    form.wait_for()
    findings.check(f"{lang}-{width} widget-leave-message", lang, reading(page))
    shot(page, lang, width, "widget-leave-message")
    form.locator("input[name=phone]").fill("13912345678")
    form.locator("textarea[name=content]").fill("Please call me back")
    form.locator("button[type=submit]").click()
    expect(page.locator(".mq-thanks")).to_be_visible()
    page.locator("#mq-tickets-btn").click()
    expect(page.locator("#mq-tickets")).to_be_visible()
    expect(page.locator("#mq-tickets")).to_contain_text("Please call me back")
    findings.check(f"{lang}-{width} widget-tickets", lang, reading(page))
    shot(page, lang, width, "widget-tickets")
    page.close()


def test_every_page_in_both_languages_one_clock_with_screenshots(site, browser):
    findings = Findings(utcnow(), site.seed["recent"])
    seeded = site.seed
    for lang in LANGS:
        for width, height in SIZES:
            options = {"viewport": {"width": width, "height": height}, "locale": lang,
                       "timezone_id": BROWSER_ZONE}
            context = browser.new_context(**options)
            context.set_default_timeout(WAIT_MS)
            context.add_cookies([{"name": "lang", "value": lang, "url": site.url}])
            try:
                page = context.new_page()
                for name, path in (("login", "/login"), ("register", "/register")):
                    page.goto(site.url + path)
                    findings.check(f"{lang}-{width} {name}", lang, reading(page))
                    shot(page, lang, width, name)
                login(page, site, next="/dashboard")
                for name, path, ready in agent_pages(seeded):
                    page.goto(site.url + path)
                    page.locator(ready).first.wait_for()
                    page.wait_for_load_state("networkidle")
                    findings.check(f"{lang}-{width} {name}", lang, reading(page))
                    shot(page, lang, width, name)
                    if name == "history":
                        # The seeded chat ended at 23:17 New York time, on every page.
                        expect(page.locator("#history-table tbody")).to_contain_text(
                            new_york(ENDED))
                        unnamed = "访客" if lang == "zh-CN" else "Visitor"
                        expect(page.locator("#history-table tbody")).to_contain_text(
                            f"{unnamed} {seeded['nameless']}")
                    if name == "workspace":
                        expect(page.locator("#ws-chat")).to_contain_text(new_york(OPEN_AT))
                    if name == "ticket":
                        expect(page.locator("main")).to_contain_text(new_york(ENDED))
                    if name == "admin-ticket-sinks":
                        sink_dialog(page, lang, width, findings)
                page.close()
                walk_widget(site, context, lang, width, findings)
            finally:
                context.close()
    assert not findings.problems, "\n".join(findings.problems)
    assert Conversation.select().count() >= 3  # the walk read real data
