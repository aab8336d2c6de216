"""On ``meiqia run`` (gevent), the visitor's ``ack`` does not wait for the
agent's suggestions, nor for the bot.

In a chat an agent handles, the bot ranks every visitor message for the agent
(the ``suggestions`` frame, docs/protocol.md). Under gevent a socket's frame runs
in one greenlet: the ranking computes without yielding, so the hub could not
send the ``ack`` until it was done, and the visitor waited for suggestions meant
for the agent (the sentence model on an English knowledge base: several ms).
The socket now acknowledges first and ranks after
(``conversations.visitor_message(after=...)``, ``ws._after_answer``); the same
holds for the bot's own answer in a chat still with the bot.

The proof holds the ranking on purpose in a real ``meiqia run``: an answerer
plugin from ``instance/plugins/`` computes (never yields) on a marked question
until a file the test writes on seeing the ``ack`` appears, or 1.5 s pass. It
says in its answer which came first. With the ack after the ranking the file can
only come after the wait, and the answer says so.
"""

from __future__ import annotations

import asyncio
import json
import time

from tests.helpers import run_coroutine
from tests.integration.test_embedded_server import Http
from tests.integration.test_embedded_server import embedded  # noqa: F401 - the fixture
from tests.integration.test_embedded_server import frames
from tests.integration.test_embedded_server import team

HELD = "这个问题请慢慢想"
TRIALS = 4

PLUGIN = '''
"""A test answerer: on a marked question it computes until the test releases it."""
import os
import time

from meiqia.hookspecs import hookimpl

HELD = "这个问题请慢慢想"
HERE = os.path.dirname(os.path.abspath(__file__))


class Held:
    name = "held-answerer"

    def answer(self, question, conversation):
        said = "想好的回答"
        if HELD in question:
            release = os.path.join(HERE, "release-" + question.split()[-1])
            deadline = time.monotonic() + 1.5
            while not os.path.exists(release) and time.monotonic() < deadline:
                pass  # computing: nothing here yields to gevent's loop
            said = "等到了" if os.path.exists(release) else "没等到"
        return [{"entry_id": "held", "question": "慢慢想的问题", "answer": said,
                 "score": 0.99}]


@hookimpl
def register_answerers(app):
    return [Held()]
'''


def test_the_ack_goes_out_before_the_ranking_for_the_agent_and_the_bot(embedded, tmp_path):  # noqa: F811
    from websockets.asyncio.client import connect

    plugins = tmp_path / "instance" / "plugins"
    plugins.mkdir(parents=True)
    (plugins / "held_answerer.py").write_text(PLUGIN, encoding="utf-8")
    server = embedded()
    admin, team_id, agent_id = team(server, max_concurrent=TRIALS + 2)
    ws_base = f"ws://127.0.0.1:{server.port}"

    async def scenario() -> list[dict]:
        agent = await connect(f"{ws_base}/ws/agent", additional_headers={
            "Cookie": admin.cookie()}, compression=None, ping_interval=None)
        agent_seen: list[dict] = []
        readers = [asyncio.create_task(frames(agent, agent_seen))]
        results = []
        for trial in range(TRIALS):
            session = Http(server.base).call("POST", "/api/v1/widget/session",
                                             {"team_id": team_id})
            visitor = await connect(f"{ws_base}/ws/visitor?token={session['token']}",
                                    compression=None, ping_interval=None)
            seen: list[dict] = []
            readers.append(asyncio.create_task(frames(visitor, seen)))
            cid = f"held-{trial}"
            await visitor.send(json.dumps({"type": "message", "data": {
                "body": f"{HELD} t{trial}", "client_msg_id": cid}}, ensure_ascii=False))
            deadline = time.monotonic() + 30
            ack = None
            while ack is None and time.monotonic() < deadline:
                ack = next((f for f in seen if f["type"] == "ack"
                            and f["data"]["client_msg_id"] == cid), None)
                await asyncio.sleep(0.005)
            assert ack is not None, seen
            (plugins / f"release-t{trial}").touch()  # the ack is here: let it answer
            message_id = ack["data"]["message"]["id"]
            while time.monotonic() < deadline:
                found = [f for f in agent_seen if f["type"] == "suggestions"
                         and f["data"]["message_id"] == message_id]
                if found:
                    results.append(found[0]["data"])
                    break
                await asyncio.sleep(0.01)
            else:
                raise AssertionError(f"no suggestions for message {message_id}")
            await visitor.close()
        await agent.close()
        for task in readers:
            task.cancel()
        return results

    results = run_coroutine(scenario)
    assert len(results) == TRIALS
    for data in results:
        assert data["handler_id"] == agent_id
        assert [(s["entry_id"], s["answer"]) for s in data["suggestions"]] == \
            [("held", "等到了")], data

    # With the bot on, the bot's own answer comes after the ack the same way.
    admin.call("PATCH", "/api/v1/team", {"settings": {"bot_enabled": True}})

    async def with_the_bot() -> dict:
        session = Http(server.base).call("POST", "/api/v1/widget/session",
                                         {"team_id": team_id})
        visitor = await connect(f"{ws_base}/ws/visitor?token={session['token']}",
                                compression=None, ping_interval=None)
        seen: list[dict] = []
        reader = asyncio.create_task(frames(visitor, seen))
        await visitor.send(json.dumps({"type": "message", "data": {
            "body": f"{HELD} bot", "client_msg_id": "held-bot"}}, ensure_ascii=False))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any(
                f["type"] == "ack" and f["data"]["client_msg_id"] == "held-bot" for f in seen):
            await asyncio.sleep(0.005)
        (plugins / "release-bot").touch()
        answer = None
        while answer is None and time.monotonic() < deadline:
            answer = next((f["data"] for f in seen if f["type"] == "message"
                           and f["data"]["sender_kind"] == "bot"
                           and f["data"]["payload"].get("bot") == "answer"), None)
            await asyncio.sleep(0.01)
        await visitor.close()
        reader.cancel()
        return answer

    answer = run_coroutine(with_the_bot)
    assert answer is not None and answer["body"] == "等到了", answer
