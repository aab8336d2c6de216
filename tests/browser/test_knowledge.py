"""The knowledge-base admin pages: entries, try the bot, import, unrecognised questions."""

from __future__ import annotations

import io
import time
from pathlib import Path

from playwright.sync_api import Expect

from tests.browser.conftest import WAIT_MS
from tests.browser.conftest import login
from tests.browser.conftest import screenshot
from tests.helpers import AGENT_PASSWORD
from tests.helpers import new_client_id

#: Assertions wait as long as page actions do (a loaded machine is slow, not wrong).
expect = Expect()
expect.set_options(timeout=WAIT_MS)
KB = Path(__file__).resolve().parents[2] / "knowledge_base" / "shop.zh-CN.yaml"
XSS = '<img src=x onerror="window.__xss=1">以旧换新<script>window.__xss=2</script>'
UNRECOGNISED_XSS = '<svg onload="window.__xss=3">你们卖汽车吗</svg>'
SMALL_YAML = """\
- id: gift-card
  questions:
  - 你们有礼品卡吗
  - 可以买购物卡送人吗
  answer: 有。礼品卡面值 100 元起，可在“我的 → 礼品卡”购买。
  category: 礼品卡
- id: gift-card-expiry
  questions:
  - 礼品卡有效期多久
  - 购物卡会过期吗
  answer: 礼品卡自购买之日起三年内有效。
  category: 礼品卡
"""


def import_demo_kb(admin) -> None:
    response = admin.post("/api/v1/knowledge/import", content_type="multipart/form-data",
                          data={"file": (io.BytesIO(KB.read_bytes()), "shop.yaml")})
    assert response.status_code == 200, response.get_json()


def visitors_ask(server, admin, questions: list[str]) -> list[int]:
    """Each question from a new visitor of the widget, so each is the first try with the bot;
    returns the conversations' ids."""
    team_id = admin.team["id"]
    conversations = []
    for question in questions:
        client = server.app.test_client()
        session = client.post("/api/v1/widget/session", json={"team_id": team_id})
        assert session.status_code == 200, session.get_json()
        data = session.get_json()
        assert data["conversation"]["status"] == "bot"
        cid = data["conversation"]["conversation_id"]
        sent = client.post(f"/api/v1/widget/conversations/{cid}/messages",
                           json={"client_msg_id": new_client_id(), "body": question}, headers={"X-Visitor-Token": data["token"]})
        assert sent.status_code == 201, sent.get_json()
        conversations.append(cid)
    return conversations


def open_page(server, new_context, errors: list, **options):
    """A logged-in admin's page; script errors are collected in ``errors``."""
    options.setdefault("viewport", {"width": 1280, "height": 900})
    page = new_context(**options).new_page()
    page.on("pageerror", lambda error: errors.append(str(error)))
    login(page, server)
    return page


def ask_until(page, question: str, expected: str) -> None:
    """Ask in the try-the-bot box until the answer shows ``expected`` (edits reach the
    index within the KB version check, so an answer may need a second ask)."""
    deadline = time.monotonic() + WAIT_MS / 1000
    answer = page.locator("#kb-try-result .kb-bot-answer-text")
    while True:
        page.fill("#kb-try-form input[name=question]", question)
        page.click("#kb-try-form button[type=submit]")
        expect(page.locator("#kb-try-result .kb-decision")).to_be_visible()
        page.wait_for_function("!document.querySelector('#kb-try-form button').disabled")
        if answer.count() and expected in answer.inner_text():
            return
        assert time.monotonic() < deadline, f"the bot never answered {question!r} with {expected!r}"
        page.wait_for_timeout(200)


def test_admin_creates_tries_and_edits_an_entry(server, admin, new_context):
    import_demo_kb(admin)
    errors: list[str] = []
    page = open_page(server, new_context, errors)
    page.goto(f"{server.url}/admin/knowledge")
    expect(page.locator("#kb-page-info")).to_have_text("第 1 / 3 页 · 共 59 条")
    first_page = page.locator("#kb-table .kb-key").all_inner_texts()
    page.click("#kb-next")
    expect(page.locator("#kb-page-info")).to_have_text("第 2 / 3 页 · 共 59 条")
    expect(page.locator("#kb-table tbody tr")).to_have_count(20)
    assert not set(page.locator("#kb-table .kb-key").all_inner_texts()) & set(first_page)
    assert "page=2" in page.url

    page.click("#kb-new")
    form = page.locator("dialog form.kb-editor")
    form.locator("input[name=key]").fill("trade-in")
    form.locator("input[name=question]").fill("你们支持以旧换新吗")
    form.locator("textarea[name=similar]").fill("旧手机能换新的吗\n\n以旧换新怎么操作\n")
    form.locator("input[name=category]").fill("售后")
    form.locator("button[type=submit]").click()
    # Nothing is sent without an answer; the error sits under the answer field.
    expect(form.locator("[data-error-for=answer]")).to_have_text("请填写答案。")
    assert form.locator("textarea[name=answer]").get_attribute("aria-invalid") == "true"
    form.locator("textarea[name=answer]").fill("支持以旧换新：旧机估价后抵扣新机货款。")
    form.locator("button[type=submit]").click()
    row = page.locator("#kb-table tbody tr", has_text="你们支持以旧换新吗")
    expect(row).to_be_visible()
    expect(row.locator(".kb-similar li")).to_have_text(["旧手机能换新的吗", "以旧换新怎么操作"])
    expect(row.locator(".kb-category")).to_have_text("售后")

    # A second entry with the same id: the server refuses, next to the id field.
    page.click("#kb-new")
    form = page.locator("dialog form.kb-editor")
    form.locator("input[name=key]").fill("trade-in")
    form.locator("input[name=question]").fill("另一个问题")
    form.locator("textarea[name=answer]").fill("另一个答案")
    form.locator("button[type=submit]").click()
    # The server's refusal, in the page's language (web/error_text.py).
    expect(form.locator("[data-error-for=key]")).to_contain_text("已有这个 ID 的问答")
    page.locator("dialog .close").click()
    page.fill("#kb-search input[name=q]", "")
    expect(page.locator("#kb-page-info")).to_contain_text("共 60 条")

    # A paraphrase the entry does not contain word for word (reordered: the
    # calibrated scale answers it; a far one, 能不能拿旧的换新的, it no longer does).
    ask_until(page, "以旧换新支持吗", "旧机估价后抵扣新机货款")
    result = page.locator("#kb-try-result")
    expect(result.locator(".kb-decision")).to_have_attribute("data-decision", "answer")
    score = float(result.locator(".kb-bot-answer .kb-score-num").inner_text())
    assert 0.7 <= score <= 1
    assert result.locator(".kb-candidates li").count() >= 1  # the runner-up matches
    expect(page.locator("#kb-thresholds")).to_contain_text("0.70")
    expect(page.locator("#toast .toast")).to_have_count(0)
    screenshot(page, "knowledge")

    # Search narrows the list; edit the answer: the list and the bot both use the new one.
    page.fill("#kb-search input[name=q]", "以旧换新")
    expect(page.locator("#kb-page-info")).to_contain_text("共 1 条")
    row.locator(".kb-edit").click()
    form = page.locator("dialog form.kb-editor")
    expect(form.locator("input[name=question]")).to_have_value("你们支持以旧换新吗")
    expect(form.locator(".kb-editor-key code")).to_have_text("trade-in")
    form.locator("textarea[name=answer]").fill("支持以旧换新，最高抵扣 500 元。")
    form.locator("button[type=submit]").click()
    expect(row.locator(".kb-answer-text")).to_have_text("支持以旧换新，最高抵扣 500 元。")
    ask_until(page, "以旧换新支持吗", "最高抵扣 500 元")

    # Delete asks first.
    row.locator(".kb-delete").click()
    page.locator("dialog .danger-fill").click()
    expect(page.locator("#kb-empty")).to_be_visible()
    expect(page.locator("#kb-empty")).to_have_text("没有符合条件的问答。")
    assert admin.get("/api/v1/knowledge?q=trade-in").get_json()["total"] == 0
    assert errors == []


def test_import_shows_progress_to_the_end_then_the_new_entries(server, admin, new_context,
                                                                tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("id,question,answer\na,退款,好\nb,,x\n", encoding="utf-8")
    good = tmp_path / "gift.yaml"
    good.write_text(SMALL_YAML, encoding="utf-8")
    errors: list[str] = []
    page = open_page(server, new_context, errors)
    page.goto(f"{server.url}/admin/knowledge")
    expect(page.locator("#kb-empty")).to_be_visible()
    expect(page.locator("#kb-empty")).to_contain_text("知识库还是空的")

    form = page.locator("#kb-import-form")
    form.locator("input[name=file]").set_input_files(str(bad))
    form.locator("button[type=submit]").click()
    expect(form.locator("[data-error-for=file]")).to_contain_text("第 3 行")

    form.locator("input[name=file]").set_input_files(str(good))
    form.locator("button[type=submit]").click()
    progress = page.locator("#kb-import-progress")
    expect(progress).to_have_attribute("data-state", "done")
    assert page.locator("#kb-upload-bar").evaluate("bar => bar.value") == 1
    assert page.locator("#kb-reindex-bar").evaluate("bar => bar.value") == 1
    expect(page.locator("#kb-upload-text")).to_have_text("100%")
    expect(page.locator("#kb-reindex-text")).to_contain_text("100%")
    expect(page.locator("#kb-import-report")).to_contain_text("新建 2 条")
    expect(page.locator("#kb-table .kb-standard")).to_have_text(["你们有礼品卡吗", "礼品卡有效期多久"])
    expect(page.locator("#kb-search select[name=category] option")).to_have_text(["全部分类", "礼品卡"])

    # The export is the file again.
    with page.expect_download() as download:
        page.click("#kb-export-link")
    text = Path(download.value.path()).read_text(encoding="utf-8")
    assert "gift-card-expiry" in text and "礼品卡自购买之日起三年内有效" in text
    assert errors == []


def test_an_unrecognised_group_becomes_an_entry_and_another_is_dismissed(
        server, admin, new_context):
    import_demo_kb(admin)
    asked = visitors_ask(server, admin, ["你们卖汽车吗", "你们卖不卖汽车", "卖汽车吗", "帮我写一首诗"])
    # An agent answered one of them himself: the page offers his reply as the answer.
    reply = admin.post(f"/api/v1/conversations/{asked[0]}/messages",
                       json={"client_msg_id": new_client_id(), "body": "您好，我们目前只卖日用百货，没有汽车。"})
    assert reply.status_code == 201, reply.get_json()
    groups = admin.get("/api/v1/bot/unrecognised").get_json()["groups"]
    assert [g["count"] for g in groups] == [3, 1]

    errors: list[str] = []
    page = open_page(server, new_context, errors)
    page.goto(f"{server.url}/admin/unrecognised")
    cards = page.locator("#unrec-list .unrec-group")
    expect(cards).to_have_count(2)
    first = cards.nth(0)
    expect(first.locator(".unrec-count")).to_have_text("×3")
    expect(first.locator(".unrec-examples li")).to_have_count(3)
    screenshot(page, "unrecognised")

    first.locator(".unrec-resolve").click()
    form = page.locator("dialog form.kb-editor")
    standard = form.locator("input[name=question]").input_value()
    similar = form.locator("textarea[name=similar]").input_value().split("\n")
    assert sorted([standard, *similar]) == sorted(["你们卖汽车吗", "你们卖不卖汽车", "卖汽车吗"])
    expect(form.locator("textarea[name=answer]")).to_have_value("您好，我们目前只卖日用百货，没有汽车。")
    expect(form.locator(".kb-replies li")).to_have_count(1)
    form.locator("textarea[name=answer]").fill("我们只卖日用百货，不卖汽车。")
    form.locator("input[name=category]").fill("经营范围")
    form.locator("button[type=submit]").click()
    expect(cards).to_have_count(1)
    expect(cards.nth(0).locator(".unrec-question")).to_have_text("帮我写一首诗")
    created = admin.get("/api/v1/knowledge?category=经营范围").get_json()["items"]
    assert [e["answer"] for e in created] == ["我们只卖日用百货，不卖汽车。"]

    cards.nth(0).locator(".unrec-dismiss").click()
    page.locator("dialog .danger-fill").click()
    expect(cards).to_have_count(0)
    expect(page.locator("#unrec-empty")).to_be_visible()
    expect(page.locator("#unrec-empty")).to_have_text("最近 30 天没有未识别问题。")
    assert admin.get("/api/v1/bot/unrecognised").get_json()["groups"] == []

    # The bot now answers what it did not know.
    page.goto(f"{server.url}/admin/knowledge")
    ask_until(page, "你们卖不卖汽车呀", "不卖汽车")
    assert errors == []


def test_html_in_questions_and_answers_renders_as_text(server, admin, new_context):
    # Asked while the knowledge base is empty, so the bot cannot know it.
    visitors_ask(server, admin, [UNRECOGNISED_XSS])
    response = admin.post("/api/v1/knowledge", json={
        "questions": [XSS, "<b>旧手机</b>能换新的吗"], "answer": f"答：{XSS}", "category": "<i>售后</i>"})
    assert response.status_code == 201, response.get_json()
    errors: list[str] = []
    page = open_page(server, new_context, errors)
    page.goto(f"{server.url}/admin/knowledge")
    expect(page.locator("#kb-table .kb-standard")).to_have_text([XSS])
    expect(page.locator("#kb-table .kb-answer-text")).to_have_text([f"答：{XSS}"])
    expect(page.locator("#kb-table .kb-category")).to_have_text(["<i>售后</i>"])
    ask_until(page, XSS, "答：")
    assert page.locator("#kb-try-result .kb-bot-answer-text").inner_text() == f"答：{XSS}"
    page.locator("#kb-table .kb-edit").click()
    expect(page.locator("dialog input[name=question]")).to_have_value(XSS)
    page.locator("dialog .close").click()

    page.goto(f"{server.url}/admin/unrecognised")
    question = page.locator("#unrec-list .unrec-question")
    expect(question).to_have_text([UNRECOGNISED_XSS])
    assert page.evaluate("window.__xss") is None
    assert page.locator("main img, main svg, main b, main i").count() == 0
    assert errors == []


def test_agents_get_404_on_the_knowledge_pages(server, admin, new_context):
    admin.post("/api/v1/agents", json={"name": "李客服", "email": "li@example.com",
                                       "password": AGENT_PASSWORD})
    page = new_context().new_page()
    login(page, server, "li@example.com", AGENT_PASSWORD)
    for path in ("/admin/knowledge", "/admin/unrecognised"):
        assert page.goto(f"{server.url}{path}").status == 404
    # The admin sees both among the admin tabs, in English too.
    admin_page = new_context(locale="en").new_page()
    login(admin_page, server)
    admin_page.goto(f"{server.url}/lang/en?next=/admin/knowledge")
    expect(admin_page.locator(".tabs a")).to_contain_text(["Knowledge base", "Unrecognised questions"])
    expect(admin_page.locator("h1")).to_have_text("Knowledge base")


def settled_calibration(admin) -> dict:
    """The calibration report once no rebuild or self-test is running."""
    deadline = time.monotonic() + 4 * WAIT_MS / 1000
    while True:
        report = admin.get("/api/v1/knowledge/calibration").get_json()
        if not report["running"]:
            return report
        assert time.monotonic() < deadline, "the calibration never finished"
        time.sleep(0.2)


#: Records whether the card ever showed a progress bar (the rebuild and self-test are quick).
WATCH_PROGRESS = """() => {
  window.__cardProgress = false;
  const figures = document.getElementById('kb-calibration-figures');
  new MutationObserver(() => {
    if (figures.querySelector('progress')) window.__cardProgress = true;
  }).observe(figures, { childList: true, subtree: true });
}"""


def expect_card_shows(page, report: dict) -> None:
    """The card shows the figures and competing pairs of ``report``, and no progress."""
    figures = page.locator("#kb-calibration-figures")
    expect(figures.locator("progress")).to_have_count(0)
    expect(figures).to_contain_text(f"{report['in_scope']} 个问法，{report['out_of_scope']} 个留出问题")
    # Each row waited for: after a words save the counts above may not change, and the
    # old card's rows are still there until the new report replaces them.
    items = page.locator("#kb-competing li")
    expected = [" ".join(pair["entries"]) for pair in report["competing"][:10]]
    expect(items).to_have_count(len(expected))
    for i, entries in enumerate(expected):
        expect(items.nth(i)).to_have_attribute("data-entries", entries)


def test_the_calibration_card_follows_an_import_and_a_words_save(server, admin, new_context,
                                                                  tmp_path):
    """An outside check: after an import made on the page (removing entries), the card kept
    the old KB's figures and competing entries, deleted ones included, until a reload."""
    import yaml

    import_demo_kb(admin)
    before = settled_calibration(admin)
    assert before["competing"]
    # The new file: the demo KB without the entries of its first competing pairs.
    removed = {key for pair in before["competing"][:6] for key in pair["entries"]}
    entries = [e for e in yaml.safe_load(KB.read_text(encoding="utf-8")) if e["id"] not in removed]
    smaller = tmp_path / "小知识库.yaml"
    smaller.write_text(yaml.safe_dump(entries, allow_unicode=True), encoding="utf-8")

    errors: list[str] = []
    page = open_page(server, new_context, errors)
    page.goto(f"{server.url}/admin/knowledge")
    expect_card_shows(page, before)

    page.evaluate(WATCH_PROGRESS)
    form = page.locator("#kb-import-form")
    form.locator("input[name=file]").set_input_files(str(smaller))
    form.locator("input[name=replace]").check()
    form.locator("button[type=submit]").click()
    expect(page.locator("#kb-import-progress")).to_have_attribute("data-state", "done")
    expect(page.locator("#kb-import-report")).to_contain_text(f"删除 {len(removed)} 条")
    after = settled_calibration(admin)
    assert after["entries"] == len(entries) and after["in_scope"] < before["in_scope"]
    expect_card_shows(page, after)  # no reload
    assert not {key for pair in after["competing"] for key in pair["entries"]} & removed
    assert page.evaluate("window.__cardProgress"), "the card never showed the rebuild"

    # Saving the team's words rebuilds and recalibrates the index: the card follows too.
    page.evaluate(WATCH_PROGRESS)
    words = page.locator("#kb-words-form")
    words.locator("textarea[name=bot_synonyms]").fill("退款 = 退钱\n发票 = 票据")
    words.locator("button[type=submit]").click()
    expect(page.locator("#toast .toast")).to_contain_text(["已保存"])
    expect_card_shows(page, settled_calibration(admin))
    assert page.evaluate("window.__cardProgress"), "the card never showed the rebuild"
    assert errors == []
