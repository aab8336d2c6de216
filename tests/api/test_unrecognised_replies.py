"""The agent replies that closed an unrecognised question, shown with its group.

They are what an admin turns into the new entry's answer, so the list must hold
the right replies: the first public text reply an agent gave after the question,
in the question's own conversation, each reply once.
"""

from __future__ import annotations

from meiqia.models import Agent
from meiqia.models import Conversation
from meiqia.models import UnrecognisedQuestion
from meiqia.models import Visitor
from meiqia.services import bot
from meiqia.services.messages import post_message


def _chat(team_id: int, uid: str) -> Conversation:
    visitor = Visitor.create(team=team_id, uid=uid)
    return Conversation.create(team=team_id, visitor=visitor, status="bot")


def _ask(conversation: Conversation, text: str) -> None:
    """A visitor question the bot does not know, as the conversation logs it."""
    message, _ = post_message(conversation, "visitor", text)
    reply = bot.answer_visitor(conversation, message)
    assert reply["kind"] == "unrecognised", reply
    post_message(conversation, "bot", reply["body"], payload={"bot": reply["kind"]})


def test_closing_replies_are_the_agents_first_public_answers_after_each_question(api):
    team_id = api.team["id"]
    agent = Agent.get_by_id(api.agent["id"])

    first = _chat(team_id, "v-weekend-1")
    post_message(first, "agent", "您好，请问有什么可以帮您？", agent=agent)  # before the question
    _ask(first, "你们周末发货吗")
    post_message(first, "agent", "内部备注：查一下周末排班", agent=agent, visibility="internal")
    post_message(first, "agent", "截图.png", agent=agent, kind="image",
                 payload={"attachment": "x"})
    post_message(first, "agent", "周末正常发货，下午四点前付款当天发出。", agent=agent)
    post_message(first, "agent", "还有别的问题吗？", agent=agent)  # not the first reply

    second = _chat(team_id, "v-weekend-2")
    _ask(second, "周末发不发货")
    post_message(second, "agent", "周末正常发货，下午四点前付款当天发出。", agent=agent)  # again

    third = _chat(team_id, "v-weekend-3")
    _ask(third, "周六日发货吗")
    post_message(third, "agent", "周六周日都发货，顺丰次日达。", agent=agent)

    unanswered = _chat(team_id, "v-weekend-4")
    _ask(unanswered, "星期天发货吗")  # nobody replied: no closing reply
    UnrecognisedQuestion.create(team=team_id, question="周末能发货吗")  # no conversation

    groups = api.get("/api/v1/bot/unrecognised").get_json()["groups"]
    weekend = next(g for g in groups if "你们周末发货吗" in g["questions"])
    assert {"周末发不发货", "周六日发货吗"} <= set(weekend["questions"])
    assert sorted(weekend["closing_replies"]) == sorted(
        ["周末正常发货，下午四点前付款当天发出。", "周六周日都发货，顺丰次日达。"])
    assert all("内部备注" not in r and "还有别的" not in r and "有什么可以帮您" not in r
               for g in groups for r in g["closing_replies"])


def test_closing_replies_stop_at_three(api):
    team_id = api.team["id"]
    agent = Agent.get_by_id(api.agent["id"])
    for n, reply in enumerate(["退款三天内到账。", "退款一到三个工作日原路返回。",
                               "仓库收货后退款。", "退款请看订单详情。"]):
        chat = _chat(team_id, f"v-refund-{n}")
        _ask(chat, f"退钱要等多少天{'啊' * n}")
        post_message(chat, "agent", reply, agent=agent)
    groups = api.get("/api/v1/bot/unrecognised").get_json()["groups"]
    refund = next(g for g in groups if g["count"] == 4)
    assert len(refund["closing_replies"]) == 3
    assert len(set(refund["closing_replies"])) == 3


def test_a_visitor_message_is_never_a_closing_reply(api):
    team_id = api.team["id"]
    chat = _chat(team_id, "v-self")
    _ask(chat, "你们卖汽车吗")
    post_message(chat, "visitor", "算了，我自己找找")
    groups = api.get("/api/v1/bot/unrecognised").get_json()["groups"]
    assert groups[0]["closing_replies"] == []
