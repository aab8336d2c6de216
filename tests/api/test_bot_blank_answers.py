"""An entry's answer is never blank (every way in refuses one), and what the bot
makes of a visitor's message never becomes an error of the request that sent it:
an answer it cannot say (a blank one stored before the check, one longer than a
message) is logged and the question treated as unrecognised."""

from __future__ import annotations

import io
import logging
from pathlib import Path

from meiqia.db import database
from meiqia.models import KnowledgeEntry
from meiqia.models import Message
from meiqia.models import UnrecognisedQuestion
from meiqia.services import knowledge
from meiqia.services.bot import MESSAGES
from meiqia.services.messages import MAX_BODY
from tests.api.test_visitor_language import _say

QUESTIONS = ["会员日是哪天", "会员日什么时候", "哪天是会员日"]


def test_a_blank_answer_is_refused_everywhere(api):
    for blank in (" \n\t ", "   ", "\u3000"):
        created = api.post("/api/v1/knowledge", json={"questions": QUESTIONS, "answer": blank},
                           headers={"X-Meiqia-Lang": "zh-CN"})
        assert created.status_code == 422, created.get_json()
        error = created.get_json()["error"]
        assert error["field"] == "answer" and error["message"] == "答案：不能为空"
    entry = api.post("/api/v1/knowledge", json={"questions": QUESTIONS, "answer": "每月 8 号。"}
                     ).get_json()
    changed = api.patch(f"/api/v1/knowledge/{entry['id']}", json={"answer": " \n "})
    assert changed.status_code == 422 and changed.get_json()["error"]["message"] == \
        "answer: must not be empty"
    assert KnowledgeEntry.get_by_id(entry["id"]).answer == "每月 8 号。"
    # A KB file's entry too (the YAML loader keeps the text as it is).
    bad = "- id: blank\n  questions: [会员日是哪天]\n  answer: \"  \"\n".encode()
    imported = api.post("/api/v1/knowledge/import", data={"file": (io.BytesIO(bad), "kb.yaml")},
                        content_type="multipart/form-data")
    assert imported.status_code == 422
    assert "id blank" in imported.get_json()["error"]["message"]
    assert KnowledgeEntry.select().count() == 1


def _start(app, team_id):
    client = app.test_client()
    data = client.post("/api/v1/widget/session", json={"team_id": team_id},
                       headers={"X-Meiqia-Lang": "zh-CN"}).get_json()
    return client, data["token"], data["conversation"]["conversation_id"]


def _store_answer(team_id: int, key: str, answer: str) -> None:
    """An entry whose answer the checks refuse now (stored before them, or
    written to the table by hand), brought into the index like any edit."""
    with database.atomic():
        KnowledgeEntry.create(team=team_id, key=key, questions=QUESTIONS, answer=answer)
        knowledge.record_changes(team_id, [key])
    knowledge.refresh(team_id)


def test_an_answer_the_bot_cannot_say_is_unrecognised_not_an_error(api, caplog):
    team_id = api.team["id"]
    _store_answer(team_id, "blank-answer", " \n\t ")
    asked = api.post("/api/v1/bot/ask", json={"question": "会员日是哪天"}).get_json()
    assert asked["decision"] == "unrecognised"
    assert "blank-answer" not in [c["entry_id"] for c in asked["candidates"]]

    client, token, cid = _start(api.app, team_id)
    with caplog.at_level(logging.WARNING):
        sent = _say(client, token, cid, "会员日是哪天")
    assert sent.status_code == 201, sent.get_json()
    bot = Message.get(Message.conversation == cid, Message.sender_kind == "bot")
    assert bot.body == MESSAGES["zh-CN"]["unrecognised"] and bot.payload["bot"] == "unrecognised"
    assert "entry blank-answer: the answer is blank" in caplog.text
    assert UnrecognisedQuestion.select().count() == 1

    # Longer than a message may be: refused now (the entry's limit is a message's),
    # but an entry stored before that limit is the same: it never breaks the chat.
    kb = Path(__file__).resolve().parents[2] / "knowledge_base" / "shop.zh-CN.yaml"
    api.post("/api/v1/knowledge/import", data={"file": (io.BytesIO(kb.read_bytes()), kb.name)},
             content_type="multipart/form-data")
    entry = KnowledgeEntry.get(KnowledgeEntry.key == "return-shipping-fee")
    too_long = "运费由我们承担。" * (MAX_BODY // 7)
    long = api.patch(f"/api/v1/knowledge/{entry.id}", json={"answer": too_long})
    assert long.status_code == 422, long.get_json()
    assert long.get_json()["error"]["message"] == \
        f"answer: at most {MAX_BODY} characters (the longest chat message)"
    with database.atomic():
        KnowledgeEntry.update(answer=too_long).where(KnowledgeEntry.id == entry.id).execute()
        knowledge.record_changes(team_id, [entry.key])
    knowledge.refresh(team_id)
    # Such an entry stays editable where its answer is left alone.
    kept = api.patch(f"/api/v1/knowledge/{entry.id}", json={"category": "售后"})
    assert kept.status_code == 200 and kept.get_json()["answer"] == too_long
    asked = api.post("/api/v1/bot/ask", json={"question": "退货运费谁出"}).get_json()
    assert asked["decision"] == "answer"  # what the console says it would do
    client, token, cid = _start(api.app, team_id)
    with caplog.at_level(logging.WARNING):
        sent = _say(client, token, cid, "退货运费谁出")
    assert sent.status_code == 201, sent.get_json()
    bot = Message.get(Message.conversation == cid, Message.sender_kind == "bot")
    assert bot.payload["bot"] == "unrecognised", (bot.payload, len(bot.body), bot.body[:40])
    assert "the answer of entry return-shipping-fee" in caplog.text
