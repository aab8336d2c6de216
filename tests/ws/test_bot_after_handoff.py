"""The bot never speaks after a person has taken the chat.

Seen in a loaded browser run: a visitor pressed "转人工" and typed at once. His message
was stored while the chat was still the bot's, a person took the chat while the bot
was thinking, and the bot's answer was then stored after the person's handover line:
the visitor read a bot answer in a chat an agent had, and the agent's list showed the
bot's words as the chat's last message instead of the visitor's. The bot's answer is
now stored only while the chat is still the bot's (checked under the conversation's
lock, ``post_message(while_status="bot")``).

The person takes the chat exactly in that window: an answerer plugin (third-party
code the bot asks, docs/plugins.md) has the visitor's other tab ask for a person, and
waits for the answer, before it answers itself.
"""

from __future__ import annotations

import random
import threading
import time
import types

import pytest

from meiqia.hookspecs import hookimpl
from meiqia.testing.clients import AgentClient
from meiqia.testing.clients import VisitorClient
from meiqia.testing.sockets import LiveServer
from tests.conftest import close_app
from tests.conftest import make_app
from tests.conftest import truncate_all
from tests.ws.conftest import Socket

SLOW = "这个问题要想一想"


class HandoffWhileThinking:
    """Answers every question surely; on ``SLOW`` it lets a person take the chat
    first (the test's other thread, the visitor's other tab, does it: a plugin's
    own connections go through the SSRF guard, which refuses this host)."""

    name = "handoff-while-thinking"

    def __init__(self) -> None:
        self.thinking = threading.Event()
        self.taken = threading.Event()

    def answer(self, question, conversation):
        if SLOW in question:
            self.thinking.set()
            self.taken.wait(1.5)  # within the answerer's budget (2 s)
        return [{"entry_id": "sure", "question": question, "answer": "机器人的回答",
                 "score": 0.99}]


@pytest.mark.parametrize("db", ["sqlite", "postgres"])
def test_the_bot_does_not_answer_after_a_person_took_the_chat(request, tmp_path, db):
    answerer = HandoffWhileThinking()
    plugin = types.ModuleType("handoff_while_thinking")
    plugin.register_answerers = hookimpl(lambda app: [answerer])
    extra = {} if db == "sqlite" else {"DATABASE_URL": request.getfixturevalue("pg_database_url")}
    app = make_app(tmp_path, plugins=(plugin,), **extra)
    if db == "postgres":  # one statement: the status is checked in its WHERE
        truncate_all(extra["DATABASE_URL"])
    live = LiveServer(app)
    try:
        with app.app_context():
            admin = AgentClient(live).register()
            admin.patch(f"/api/v1/agents/{admin.agent['id']}", json={"max_concurrent": 50})
            admin.go_online()
            for trial in range(4):
                visitor = VisitorClient(live, admin.team["id"]).start()
                # The same visitor without the race: the bot answers as ever.
                visitor.send("普通的问题")
                assert visitor.bot_reply()["body"] == "机器人的回答"
                answers: list = []
                answerer.thinking.clear()
                answerer.taken.clear()

                def other_tab(v=visitor, answers=answers):
                    """Presses "human" while the bot thinks about SLOW."""
                    if answerer.thinking.wait(10):
                        time.sleep(random.random() * 0.05)
                        answers.append(v.post(
                            f"/api/v1/widget/conversations/{v.conversation_id}/human"))
                    answerer.taken.set()

                tab = threading.Thread(target=other_tab)
                tab.start()
                asked = visitor.send(SLOW)
                tab.join(10)
                assert answers and answers[0].status == 200, answers
                assert answers[0].json()["status"] == "open"
                stored = visitor.messages()
                after = stored[[m["id"] for m in stored].index(asked["id"]) + 1:]
                assert [m["sender_kind"] for m in after] == ["system"], (trial, after)
                assert after[0]["payload"]["event"] == "handover"
                # The visitor's socket got no bot frame for it either.
                visitor.socket().quiet("message", 0.2)
                late = [f for f in visitor.socket().seen if f["type"] == "message"
                        and f["data"]["sender_kind"] == "bot"
                        and f["data"]["id"] > asked["id"]]
                assert late == [], (trial, late)
                # The agent's list shows the handover as the chat's last line, in the
                # agent's words as his chat shows it (not the visitor's "为您服务").
                row = admin.get(f"/api/v1/conversations/{visitor.conversation_id}",
                                headers={"X-Meiqia-Lang": "zh-CN"}).get_json()
                assert row["last_message"] == \
                    f"{after[0]['payload']['agent']} 开始接待", row
                visitor.close()
    finally:
        Socket.close_all()
        live.stop()
        close_app(app)
