"""A bot answerer: "where is my order MQ123456?" gets that order's status.

The knowledge base answers questions whose answer never changes; this answers
one whose answer depends on the order. A real plugin would ask the shop's order
API (through ``meiqia.services.outbound``); this one reads a dict from the
server's configuration so the example stays self-contained:

    ORDER_STATUS = {"MQ123456": "已发货，顺丰 SF1234567890"}   # instance/config.py
"""

from __future__ import annotations

import re
from typing import Any

from flask import current_app

from meiqia.hookspecs import hookimpl

__version__ = "1.0.0"

ORDER = re.compile(r"\bMQ\d{6}\b", re.IGNORECASE)
WORDS = ("订单", "物流", "快递", "发货", "order", "shipped", "delivery", "where")


class OrderStatus:
    """Answers only questions naming an order number, so it never competes with
    the knowledge base on anything else."""

    name = "order_status"
    # Between equal scores, this answer goes first (the knowledge base's is 0).
    priority = 10

    def answer(self, question: str, conversation: Any) -> list[dict]:
        match = ORDER.search(question)
        if match is None:
            return []
        number = match.group(0).upper()
        status = current_app.config.get("ORDER_STATUS", {}).get(number)
        if status is None:
            # "Did you mean" range: the bot offers it, an agent can take over.
            return [{"entry_id": "order-status:unknown", "question": f"订单 {number}",
                     "answer": f"没有查到订单 {number}，请核对订单号。", "score": 0.55}]
        asks_about_it = any(word in question.lower() for word in WORDS)
        return [{"entry_id": f"order-status:{number}", "question": f"订单 {number} 的状态",
                 "answer": f"订单 {number}：{status}",
                 # Sure enough to answer directly only when the question is about it.
                 "score": 0.95 if asks_about_it else 0.6}]


@hookimpl
def register_answerers(app: Any) -> list[Any]:
    return [OrderStatus()]
