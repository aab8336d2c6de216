"""The bot's lines a WeChat follower gets are the lines stored in his conversation
(what agents, history and exports show): the stored lines were the widget's
(「…或者点击“转人工”联系客服。」, 「…需要为您转接人工客服吗？」) while the follower got
the channel's (「…或者回复“人工”联系客服。」, 「…正在为您转接人工客服。」)."""

from __future__ import annotations

from meiqia.models import Message
from meiqia.services.bot import MESSAGES
from tests.channels.test_wechat import OPENID
from tests.channels.test_wechat import WeChat
from tests.channels.test_wechat import conversation_of
from tests.channels.test_wechat import standin  # noqa: F401 - fixture
from tests.channels.test_wechat import wx  # noqa: F401 - fixture
from tests.channels.test_wechat import wx_app  # noqa: F401 - fixture
from tests.helpers import ApiClient
from tests.wechat_standin import WeChatStandIn


def bot_lines(cid: int) -> list[str]:
    return [m.body for m in Message.select().where(
        Message.conversation == cid, Message.sender_kind == "bot").order_by(Message.id)]


def test_the_stored_bot_lines_are_the_ones_the_follower_got(
        wx: ApiClient, standin: WeChatStandIn) -> None:  # noqa: F811
    words = MESSAGES["zh-CN"]
    wechat = WeChat(wx)
    wechat.text("你们卖汽车吗")
    wechat.text("你们卖飞机吗")  # the second failure in a row: handed to a person
    conversation = conversation_of()
    stored = bot_lines(conversation.id)
    sent = standin.texts_to(OPENID)
    assert stored, "the bot said nothing"
    assert stored[0].endswith(words["unrecognised_by_reply"]), stored
    assert any(line.endswith(words["offer_human_by_reply"]) for line in stored), stored
    assert not any(words["unrecognised"] in line or words["offer_human"] in line
                   for line in stored), stored
    for line in stored:
        assert line in sent, f"stored {line!r}, the follower got {sent!r}"
    # What agents read in the transcript is what was stored, word for word.
    shown = wx.get(f"/api/v1/conversations/{conversation.id}/messages").get_json()
    assert [m["body"] for m in shown["messages"] if m["sender_kind"] == "bot"] == stored


def test_a_did_you_mean_is_stored_as_the_numbered_lines_sent(
        wx: ApiClient, standin: WeChatStandIn) -> None:  # noqa: F811
    """A "did you mean" on WeChat is numbered lines and how to answer them: stored so
    (agents read what the follower read), and its questions are not listed twice in
    a transcript; 「2」 still picks the second."""
    from meiqia.services.messages import transcript_body

    for key, question, answer in (
            ("refund", "怎么申请退款", "在订单页点“申请退款”。"),
            ("return", "怎么申请退货", "在订单页点“申请退货”，七天内包邮。")):
        made = wx.post("/api/v1/knowledge", json={"key": key, "questions": [question],
                                                 "answer": answer})
        assert made.status_code == 201, made.get_json()
    # Every match is a "did you mean", none an answer.
    set_to = wx.patch("/api/v1/team", json={"settings": {"answer_threshold": 0.99,
                                                          "suggest_threshold": 0.05}})
    assert set_to.status_code == 200, set_to.get_json()
    wechat = WeChat(wx)
    wechat.text("怎么申请")
    conversation = conversation_of()
    said = Message.select().where(Message.conversation == conversation.id,
                                  Message.sender_kind == "bot").order_by(Message.id).first()
    assert said.payload.get("bot") == "suggest", (said.body, said.payload)
    lines = said.body.splitlines()
    assert lines[1].startswith("1. ") and lines[2].startswith("2. "), said.body
    assert lines[-1] == MESSAGES["zh-CN"]["suggest_by_reply"], said.body
    assert said.body in standin.texts_to(OPENID)
    assert transcript_body(said.body, said.payload) == said.body
    wx.patch("/api/v1/team", json={"settings": {"answer_threshold": 0.7,
                                                "suggest_threshold": 0.5}})
    wechat.text("2")
    second = lines[2][3:]
    picked = "在订单页点“申请退货”，七天内包邮。" if "退货" in second else "在订单页点“申请退款”。"
    assert standin.texts_to(OPENID)[-1] == picked
