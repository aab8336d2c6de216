"""The answerer in a running meiqia, through meiqia.testing's fixtures only."""

import pytest

PLUGIN = "example_order_status"  # the entry point: the package must be installed
ORDERS = {"ORDER_STATUS": {"MQ123456": "已发货，顺丰 SF1234567890"}}


@pytest.mark.meiqia(plugins=[PLUGIN], config=ORDERS)
def test_the_bot_answers_with_the_order_status(meiqia_visitor):
    meiqia_visitor.send("我的订单 MQ123456 到哪了？")
    reply = meiqia_visitor.bot_reply()
    assert reply["body"] == "订单 MQ123456：已发货，顺丰 SF1234567890"


@pytest.mark.meiqia(plugins=[PLUGIN], config=ORDERS)
def test_an_unknown_order_is_only_suggested(meiqia_visitor):
    meiqia_visitor.send("订单 MQ999999 发货了吗")
    reply = meiqia_visitor.bot_reply()
    assert reply["payload"]["bot"] == "suggest", reply
    assert reply["payload"]["candidates"][0]["entry_id"] == "order-status:unknown"


@pytest.mark.meiqia(plugins=[PLUGIN], config=ORDERS)
def test_questions_without_an_order_number_are_left_to_the_knowledge_base(meiqia_admin):
    asked = meiqia_admin.post("/api/v1/bot/ask", json={"question": "怎么退货"}).json()
    assert all(c["source"] != "order_status" for c in asked["candidates"])
    asked = meiqia_admin.post("/api/v1/bot/ask", json={"question": "where is order MQ123456"})
    assert asked.json()["decision"] == "answer"
    assert asked.json()["candidates"][0]["source"] == "order_status"
