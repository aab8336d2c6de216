"""Greetings and thanks (你好, 在吗, 谢谢, hello, thanks): the bot greets back in the
visitor's language, through the widget's HTTP route and the test console, and does
not count them as questions it failed (docs/bot.md, "Small talk")."""

from __future__ import annotations

import io
from pathlib import Path

from meiqia.models import Conversation
from meiqia.models import Message
from meiqia.models import UnrecognisedQuestion
from meiqia.services.bot import MESSAGES
from tests.api.test_visitor_language import _say
from tests.api.test_visitor_language import _start

KB = Path(__file__).resolve().parents[2] / "knowledge_base" / "shop.zh-CN.yaml"


def _bot_lines(cid):
    return [(m.body, m.payload.get("bot")) for m in Message.select().where(
        Message.conversation == cid, Message.sender_kind == "bot").order_by(Message.id)]


def test_the_widget_greets_back_and_thanks_are_welcome(api):
    api.post("/api/v1/knowledge/import", data={"file": (io.BytesIO(KB.read_bytes()), KB.name)},
             content_type="multipart/form-data")
    zh = MESSAGES["zh-CN"]
    client, token, cid = _start(api.app, api.team["id"], "zh-CN")
    # More than bot_failures_before_human (2) of them: none counts as a failure.
    for text in ("你好", "在吗", "您好！", "谢谢"):
        assert _say(client, token, cid, text).status_code == 201
    assert _bot_lines(cid) == [(zh["greeting"], "small_talk")] * 3 + [(zh["thanks"], "small_talk")]
    conversation = Conversation.get_by_id(cid)
    assert conversation.status == "bot" and conversation.bot_failures == 0
    assert UnrecognisedQuestion.select().count() == 0
    assert zh["invalid"] not in [body for body, _ in _bot_lines(cid)]
    # A real question after them is answered as before.
    _say(client, token, cid, "你好，退货运费谁出？")
    assert _bot_lines(cid)[-1][1] == "answer"

    en = MESSAGES["en"]
    client, token, cid = _start(api.app, api.team["id"], "en")
    for text in ("hello", "Hi!", "thanks"):
        assert _say(client, token, cid, text).status_code == 201
    assert _bot_lines(cid) == [(en["greeting"], "small_talk")] * 2 + [(en["thanks"], "small_talk")]
    assert Conversation.get_by_id(cid).bot_failures == 0


def test_the_console_says_small_talk_in_the_request_language(api):
    for question, talk in (("你好", "greeting"), ("在吗？", "greeting"), ("谢谢", "thanks")):
        asked = api.post("/api/v1/bot/ask", json={"question": question},
                         headers={"X-Meiqia-Lang": "zh-CN"})
        assert asked.status_code == 200, asked.get_json()
        body = asked.get_json()
        assert body["decision"] == "small_talk" and body["small_talk"] == talk
        assert body["reply"] == MESSAGES["zh-CN"][talk] and body["candidates"] == []
    for question, talk in (("hello", "greeting"), ("hi", "greeting"), ("Thanks!", "thanks")):
        body = api.post("/api/v1/bot/ask", json={"question": question},
                        headers={"X-Meiqia-Lang": "en"}).get_json()
        assert (body["decision"], body["reply"]) == ("small_talk", MESSAGES["en"][talk])
    # Emoji alone is still no question.
    refused = api.post("/api/v1/bot/ask", json={"question": "😀👍"})
    assert refused.status_code == 422 and refused.get_json()["error"]["field"] == "question"


def test_the_english_line_names_the_button_the_widget_shows():
    import json

    catalog = json.loads((Path(__file__).resolve().parents[2] / "meiqia" / "web" / "static"
                          / "i18n.json").read_text(encoding="utf-8"))
    labels = [catalog["en"]["widget.human"], catalog["zh-CN"]["widget.human"]]
    assert f'"{labels[0]}"' in MESSAGES["en"]["unrecognised"]
    assert f"“{labels[1]}”" in MESSAGES["zh-CN"]["unrecognised"]
