"""A visitor socket's ``hello`` says the conversation's state as it is once the socket
listens, so a change in between is never lost.

Seen in a loaded browser run: the widget asked for a person while its socket was
opening. The socket had read the conversation ("bot"), the request then assigned it
and published "open" before the socket subscribed, and the ``hello`` that followed the
request's answer said "bot": the widget showed "智能助手为您服务" for a chat an agent
had, and no later frame corrected it. Here the request is made exactly in that window:
when the socket subscribes (the hub's own subscribe runs right after).
"""

from __future__ import annotations

import random
import threading

from meiqia.testing.clients import AgentClient
from meiqia.testing.clients import VisitorClient
from tests.ws.conftest import Socket


def test_a_chat_assigned_while_its_socket_opens_is_open_in_hello(app, live):
    admin = AgentClient(live).register()
    admin.patch(f"/api/v1/agents/{admin.agent['id']}", json={"max_concurrent": 50})
    admin.go_online()
    hub = app.extensions["meiqia.hub"]
    real_subscribe = hub.subscribe
    window: dict = {}

    def subscribe_after_the_request(topics, *args, **kwargs):
        """The socket has read its conversation and is about to listen: the
        visitor's other tab asks for a person now, and is answered."""
        request = window.pop("request", None)
        if request is not None:
            worker = threading.Thread(target=request)
            worker.start()
            worker.join(10)
        return real_subscribe(topics, *args, **kwargs)

    hub.subscribe = subscribe_after_the_request
    try:
        for trial in range(5):
            visitor = VisitorClient(live, admin.team["id"]).start()
            answers: list = []
            window["request"] = lambda v=visitor, answers=answers: answers.append(v.post(
                f"/api/v1/widget/conversations/{v.conversation_id}/human"))
            socket = Socket(live.url(f"/ws/visitor?token={visitor.token}"))
            hello = socket.expect("hello", timeout=15)["data"]
            assert answers and answers[0].status == 200, answers
            assert answers[0].json()["status"] == "open"
            # What the widget shows last: the hello, or a conversation frame after it.
            socket.quiet("conversation", 0.3 + random.random() * 0.2)
            states = [hello["status"]] + [f["data"]["status"] for f in socket.seen
                                          if f["type"] == "conversation"]
            assert states[-1] == "open", (trial, states)
            assert hello["handler"] and hello["handler"]["name"] == "王管理", (trial, hello)
            socket.close()
    finally:
        hub.subscribe = real_subscribe
