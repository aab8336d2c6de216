"""A bot message written out for channels without the widget's buttons."""

from meiqia.services.bot import MESSAGES
from meiqia.services.bot import reply_text


def test_did_you_mean_lists_its_questions_and_says_how_to_answer():
    payload = {"bot": "suggest", "candidates": [
        {"entry_id": 1, "question": "支持哪些付款方式？"},
        {"entry_id": 2, "question": "怎么申请退款？"}]}
    text = reply_text("您是不是想问：", payload, "zh-CN")
    assert text.splitlines() == ["您是不是想问：", "1. 支持哪些付款方式？", "2. 怎么申请退款？",
                                 "回复序号或上面任意一个问题，或者回复“人工”联系客服。"]


def test_unrecognised_says_reply_human_not_press_a_button():
    body = "（您的问题太长，我只读了前 500 个字。）\n" + MESSAGES["zh-CN"]["unrecognised"]
    text = reply_text(body, {"bot": "unrecognised"}, "zh-CN")
    assert "点击" not in text and "回复“人工”" in text and text.startswith("（您的问题太长")
    english = reply_text(MESSAGES["en"]["unrecognised"], {"bot": "unrecognised"}, "en")
    assert "tap" not in english and 'reply "human"' in english


def test_an_answer_is_left_as_it_is():
    assert reply_text("每天 9:00-21:00。", {"bot": "answer", "entry_id": 3}, "zh-CN") \
        == "每天 9:00-21:00。"
    assert reply_text("您是不是想问：", {"bot": "suggest", "candidates": []}, "en") \
        == "您是不是想问："


def test_the_offer_of_a_person_says_one_is_coming():
    """After the bot failed several times it hands the chat to a person at once;
    the widget's line asks "shall I?" beside a button, which a channel has not:
    there the line says a person is being fetched (asking him to reply 人工 while
    his chat was already queued contradicted the waiting line after it)."""
    for lang in ("zh-CN", "en"):
        text = reply_text(MESSAGES[lang]["offer_human"], {"bot": "unrecognised",
                                                          "offer_human": True}, lang)
        assert text == MESSAGES[lang]["offer_human_by_reply"]
    assert "正在为您转接" in MESSAGES["zh-CN"]["offer_human_by_reply"]
