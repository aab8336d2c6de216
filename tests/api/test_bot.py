"""The bot inside the app: KB import, answers, merged answerers, the unrecognised loop."""

from __future__ import annotations

import io
import time
import types
from pathlib import Path

import pytest

from meiqia.hookspecs import hookimpl
from meiqia.models import Conversation
from meiqia.models import KnowledgeChange
from meiqia.models import KnowledgeEntry
from meiqia.models import Team
from meiqia.models import UnrecognisedQuestion
from meiqia.models import Visitor
from meiqia.services import bot
from meiqia.services import knowledge
from tests.conftest import close_app
from tests.conftest import make_app
from tests.helpers import ApiClient
from tests.helpers import wait_until

KB = Path(__file__).resolve().parents[2] / "knowledge_base" / "shop.zh-CN.yaml"


def _import(api, path=KB, name=None):
    data = {"file": (io.BytesIO(Path(path).read_bytes()), name or Path(path).name)}
    return api.post("/api/v1/knowledge/import", data=data, content_type="multipart/form-data")


def _conversation(team_id):
    visitor = Visitor.create(team=team_id, uid=f"v{time.monotonic_ns()}")
    return Conversation.create(team=team_id, visitor=visitor, status="bot")


def test_import_then_ask_then_every_edit_is_answered_by_the_very_next_ask(db_api):
    report = _import(db_api).get_json()
    assert report["created"] == report["total"] >= 50
    asked = db_api.post("/api/v1/bot/ask", json={"question": "請問退貨運費誰出？"}).get_json()
    assert asked["decision"] == "answer"
    assert asked["candidates"][0]["entry_id"] == "return-shipping-fee"

    def top(question: str = "退货运费谁出") -> dict:
        return db_api.post("/api/v1/bot/ask", json={"question": question}).get_json()["candidates"][0]

    # No waiting anywhere: the edit's own request brings this process's index up
    # to date before it returns.
    entry = KnowledgeEntry.get(KnowledgeEntry.key == "return-shipping-fee")
    logged = KnowledgeChange.select().count()  # one per imported entry so far
    db_api.patch(f"/api/v1/knowledge/{entry.id}", json={"answer": "运费由我们承担。"})
    assert top()["answer"] == "运费由我们承担。"
    db_api.patch(f"/api/v1/knowledge/{entry.id}", json={"enabled": False})
    assert top()["entry_id"] != "return-shipping-fee"
    db_api.patch(f"/api/v1/knowledge/{entry.id}", json={"enabled": True})
    assert top()["entry_id"] == "return-shipping-fee"
    created = db_api.post("/api/v1/knowledge", json={
        "key": "weekend-ship", "questions": ["周末发货吗", "周六周日发不发货"],
        "answer": "周末照常发货。"}).get_json()
    assert top("周六周日发不发货")["entry_id"] == "weekend-ship"
    db_api.delete(f"/api/v1/knowledge/{created['id']}")
    assert top("周六周日发不发货")["entry_id"] != "weekend-ship"
    assert KnowledgeChange.select().count() == logged + 5


def _second_process(tmp_path):
    """Another app on the same database: its own index store, as another process has."""
    return make_app(tmp_path / "second", DATABASE_URL=f"sqlite:///{tmp_path}/meiqia.sqlite3")


def test_another_process_applies_the_changed_entries_without_a_rebuild(api, tmp_path,
                                                                       monkeypatch):
    _import(api)
    team_id = api.team["id"]
    other = _second_process(tmp_path)
    try:
        with other.app_context():
            index = knowledge.index_for(team_id)  # its first question builds it
            built = knowledge._store().indexes[team_id].built
            assert index.query("退货运费谁出", k=1)[0].entry_id == "return-shipping-fee"
        entry = KnowledgeEntry.get(KnowledgeEntry.key == "return-shipping-fee")
        api.patch(f"/api/v1/knowledge/{entry.id}", json={"answer": "运费由我们承担。"})
        api.post("/api/v1/knowledge", json={"key": "weekend-ship", "questions": ["周末发货吗"],
                                            "answer": "周末照常发货。"})
        monkeypatch.setattr(knowledge, "CHECK_SECONDS", 0.0)  # check at every question
        with other.app_context():
            # The question that notices the new version is answered from the index
            # as it is; the two entries are applied in the background.
            assert knowledge.index_for(team_id) is index
            wait_until(lambda: index.query("退货运费谁出", k=1)[0].answer == "运费由我们承担。"
                       and index.query("周末发货吗", k=1)[0].entry_id == "weekend-ship",
                       timeout=30, what="the edits in the other process")
            cached = knowledge._store().indexes[team_id]
            assert knowledge.index_for(team_id) is index and cached.built == built
            assert cached.version == knowledge.kb_version(team_id)
    finally:
        close_app(other)


def test_reindex_and_large_imports_make_other_processes_rebuild_in_the_background(
        api, tmp_path, monkeypatch):
    _import(api)
    team_id = api.team["id"]
    other = _second_process(tmp_path)
    monkeypatch.setattr(knowledge, "CHECK_SECONDS", 0.0)
    try:
        with other.app_context():
            old = knowledge.index_for(team_id)
            # An index built from the version a reindex reads is what it asks for: only
            # one that has taken edits since its build (patched) is rebuilt.
            entry = KnowledgeEntry.get(KnowledgeEntry.key == "return-shipping-fee")
            api.patch(f"/api/v1/knowledge/{entry.id}", json={"answer": "运费由我们承担。"})
            knowledge.refresh(team_id)
            assert old.query("退货运费谁出", k=1)[0].answer == "运费由我们承担。"
        before = knowledge.kb_version(team_id)
        job = api.get(f"/api/v1/jobs/{api.post('/api/v1/knowledge/reindex').get_json()['job_id']}"
                      ).get_json()
        assert job["result"]["version"] > before == job["result"]["version"] - 1
        with other.app_context():
            assert knowledge.index_for(team_id) is old  # answers while it rebuilds
            fresh = wait_until(lambda: (i := knowledge.index_for(team_id)) is not old and i,
                               timeout=60, what="the rebuilt index")
            assert fresh.query("退货运费谁出", k=1)[0].entry_id == "return-shipping-fee"

        # More entries than PATCH_MAX at once: one "import" change, not a row each, and
        # every process rebuilds in the background, the importing one too.
        many = tmp_path / "many.csv"
        rows = [f"bulk-{n},批量问题{n}号怎么办,批量答案{n}" for n in range(knowledge.PATCH_MAX + 5)]
        many.write_text("id,question,answer\n" + "\n".join(rows) + "\n", encoding="utf-8")
        changes = KnowledgeChange.select().count()
        _import(api, many)
        assert KnowledgeChange.select().count() == changes + 1
        wait_until(lambda: api.post("/api/v1/bot/ask", json={"question": "批量问题7号怎么办"})
                   .get_json()["candidates"][0]["entry_id"] == "bulk-7",
                   timeout=60, what="the importing process's rebuild")
        with other.app_context():
            assert knowledge.index_for(team_id) is fresh
            wait_until(lambda: knowledge.index_for(team_id).query("批量问题7号怎么办", k=1)[0]
                       .entry_id == "bulk-7", timeout=60, what="the other process's rebuild")
    finally:
        close_app(other)


def test_import_with_errors_lands_nothing(db_api):
    bad = b"id,question,answer\na,\xe9\x80\x80\xe6\xac\xbe,\xe5\xa5\xbd\nb,,x\n"
    response = db_api.post(
        "/api/v1/knowledge/import",
        data={"file": (io.BytesIO(bad), "售后/问答.csv")}, content_type="multipart/form-data",
    )
    assert response.status_code == 422
    # Named as the admin's file (its last path part), not as a temporary file.
    assert response.get_json()["error"]["message"].startswith("file: 问答.csv: line 3")
    assert KnowledgeEntry.select().count() == 0


def test_ask_refuses_unreadable_questions(api):
    response = api.post("/api/v1/bot/ask", json={"question": "😀😀"})
    assert response.status_code == 422 and response.get_json()["error"]["field"] == "question"
    long = api.post("/api/v1/bot/ask", json={"question": "退款" * 1500}).get_json()
    assert long["truncated"] is True


def test_answer_visitor_answers_suggests_and_offers_a_human(api):
    _import(api)
    team = Team.get_by_id(api.team["id"])
    conv = _conversation(team.id)
    reply = bot.answer_visitor(conv, types.SimpleNamespace(id=1, body="能开专票吗"))
    assert reply["kind"] == "answer" and "专用发票" in reply["body"]

    assert bot.answer_visitor(conv, types.SimpleNamespace(id=2, body="转人工"))["kind"] == "human"
    assert bot.wants_human("我要人工客服") and bot.wants_human("HUMAN please")
    # Found from outside: 我要和真人说话 was not a request for a person.
    for asked in ("我要和真人说话", "能跟真人聊聊吗", "找真人", "转人工坐席",
                  "Can I talk to a person?", "I want to speak with a human"):
        assert bot.wants_human(asked), asked
    assert not bot.wants_human("人工费怎么算才合理呢我想了解")

    first = bot.answer_visitor(conv, types.SimpleNamespace(id=3, body="帮我写一首诗"))
    assert first["kind"] == "unrecognised" and not first["offer_human"]
    second = bot.answer_visitor(conv, types.SimpleNamespace(id=4, body="你们卖汽车吗"))
    assert second["offer_human"] is True  # two in a row (team default)
    assert UnrecognisedQuestion.select().count() == 2
    assert Conversation.get_by_id(conv.id).bot_failures == 2


class EchoAnswerer:
    name = "faq_service"

    def answer(self, question, conversation):
        if "营业执照" in question:
            return [{"entry_id": "license", "question": "营业执照", "answer": "可以查看。",
                     "score": 0.99}]
        return [{"entry_id": "junk", "answer": "x", "score": "not a number"}]


class BrokenAnswerer:
    name = "broken"

    def answer(self, question, conversation):
        raise RuntimeError("down")


def test_hook_register_answerers_candidates_are_merged_and_ranked(tmp_path):
    plugin = types.ModuleType("extra_answerers")
    plugin.register_answerers = hookimpl(lambda app: [EchoAnswerer(), BrokenAnswerer()])
    app = make_app(tmp_path, plugins=(plugin,))
    try:
        with app.app_context():
            api = ApiClient.registered(app)
            _import(api)
            conv = _conversation(api.team["id"])
            found = bot.candidates_for("你们有营业执照吗", conv)
            assert found[0]["source"] == "faq_service" and found[0]["entry_id"] == "license"
            merged = bot.candidates_for("退货运费谁出", conv)
            assert merged[0]["source"] == "knowledge_base"
            assert all(c["entry_id"] != "junk" for c in merged)  # malformed one dropped
    finally:
        close_app(app)


def test_unrecognised_groups_and_turning_one_into_an_entry(api):
    _import(api)
    team_id = api.team["id"]
    conv = _conversation(team_id)
    for text in ["你们周末发货吗", "周末发不发货", "周六日发货吗", "营业执照在哪看"]:
        UnrecognisedQuestion.create(team=team_id, conversation=conv.id, question=text)
    groups = api.get("/api/v1/bot/unrecognised").get_json()["groups"]
    assert groups[0]["count"] == 3
    assert set(groups[0]["questions"]) == {"你们周末发货吗", "周末发不发货", "周六日发货吗"}

    created = api.post("/api/v1/bot/unrecognised/resolve", json={
        "question_ids": groups[0]["question_ids"], "answer": "周末照常发货。", "category": "物流",
    })
    assert created.status_code == 201
    assert created.get_json()["questions"][0] in groups[0]["questions"]
    after = api.get("/api/v1/bot/unrecognised").get_json()["groups"]
    assert [g["count"] for g in after] == [1]
    # Created inside the resolve transaction, applied to the index after its commit.
    asked = api.post("/api/v1/bot/ask", json={"question": "周末发货吗"}).get_json()
    assert asked["candidates"][0]["answer"] == "周末照常发货。"


def test_unrecognised_is_admin_only(api):
    agent = api.new_agent()
    assert agent.get("/api/v1/bot/unrecognised").status_code == 403


@pytest.mark.parametrize("name", ["kb.txt", "kb.exe"])
def test_import_refuses_unknown_formats(api, name):
    response = _import(api, name=name)
    assert response.status_code == 422 and response.get_json()["error"]["field"] == "file"


def test_reindex_runs_as_a_job_with_progress(api):
    _import(api)
    started = api.post("/api/v1/knowledge/reindex")
    assert started.status_code == 202
    job = api.get(f"/api/v1/jobs/{started.get_json()['job_id']}").get_json()
    assert job["status"] == "finished" and job["progress"] == 1.0
    assert job["result"]["entries"] >= 50 and job["result"]["variants"] > job["result"]["entries"]
    assert job["message"] == f"{job['result']['entries']} entries indexed"
    assert job["result"]["version"] == knowledge.kb_version(api.team["id"])
    assert job["name"] == "knowledge base reindex" and "name_en" not in job
    # In the reader's language, as errors are; the English beside it.
    zh = api.get(f"/api/v1/jobs/{job['id']}", headers={"X-Meiqia-Lang": "zh-CN"}).get_json()
    assert (zh["name"], zh["name_en"]) == ("知识库重建索引", "knowledge base reindex")
    assert zh["message"] == f"已索引 {job['result']['entries']} 条问答"
    assert zh["message_en"] == job["message"]
    agent = api.new_agent()
    assert agent.get(f"/api/v1/jobs/{job['id']}").status_code == 404
    assert agent.post("/api/v1/knowledge/reindex").status_code == 403


def test_an_edit_right_after_an_import_is_seen_while_the_index_rebuilds(api):
    """An import makes every process rebuild (and recalibrate) in the background;
    an edit made meanwhile is patched into the answering index, and the fresh
    index must have it too before it answers (it was swapped in first and caught
    up after: for a moment the editor's own process answered the old text)."""
    _import(api)
    team_id = api.team["id"]
    old = knowledge.index_for(team_id)  # built from the whole KB (the first question)
    _import(api)  # the same file again: every entry updated, the index rebuilt
    entry = KnowledgeEntry.get(KnowledgeEntry.key == "return-shipping-fee")
    api.patch(f"/api/v1/knowledge/{entry.id}", json={"answer": "运费由我们承担。"})
    seen = []

    def answered_by_the_fresh_index() -> bool:
        index = knowledge.index_for(team_id)
        seen.append(index.query("退货运费谁出", k=1)[0].answer)
        return index is not old

    wait_until(answered_by_the_fresh_index, timeout=60, what="the rebuilt index")
    seen.append(knowledge.index_for(team_id).query("退货运费谁出", k=1)[0].answer)
    assert set(seen) == {"运费由我们承担。"}, seen


def test_the_bot_reads_the_first_500_characters_and_says_so(api):
    """One limit for the service, the CLI and the index (normalize.MAX_QUESTION_CHARS,
    docs/bot.md "Long questions"): a question of 500 characters is read whole, one
    of 501 is cut, and the cut is what the visitor is told."""
    from meiqia.services.bot import MESSAGES

    head = "退款多久到账？"
    whole = api.post("/api/v1/bot/ask", json={"question": head + "钱" * (500 - len(head))})
    assert whole.get_json()["truncated"] is False
    cut = api.post("/api/v1/bot/ask", json={"question": head + "钱" * (501 - len(head))})
    assert cut.get_json()["truncated"] is True
    assert "500" in MESSAGES["zh-CN"]["truncated"] and "500" in MESSAGES["en"]["truncated"]
