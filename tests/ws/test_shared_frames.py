"""A hub event is encoded once per process, not once per socket (issue 19).

Every socket of a process that hears an event gets the same ``SharedData``
object; the first socket's ``Channel.send`` encodes the frame and keeps it there,
the others send that text. The agents' sockets here are real (a live server in
this process), and so is the hub: the test subscribes to the same topic and
looks at the very object the sockets were given.
"""

from __future__ import annotations

import json

from meiqia.hub import SharedData
from meiqia.services import messages
from tests.api.test_conversations import start
from tests.helpers import wait_until
from tests.ws.conftest import Socket
from tests.ws.conftest import cookie_of


def test_one_encoding_per_event_for_every_agent_socket(api, live):
    api.patch("/api/v1/team", json={"settings": {"bot_enabled": False}})
    li = api.new_agent(max_concurrent=3)
    li.go_online()
    _client, token, cid, _ = start(api.app, api.team["id"], name="访客甲")
    agents = [Socket(live.url("/ws/agent"), cookie_of(li)) for _ in range(3)]
    for agent in agents:
        agent.expect("hello")
    visitor = Socket(live.url(f"/ws/visitor?token={token}"))
    visitor.expect("hello")
    hub = api.app.extensions["meiqia.hub"]
    with hub.subscribe([messages.team_topic(api.team["id"])]) as watch:
        for n in range(5):
            visitor.send("message", {"body": f"第{n}条", "client_msg_id": f"v{n}"})
            visitor.expect("ack")
            frames = [a.expect("message", where=lambda d, n=n: d.get("body") == f"第{n}条")
                      for a in agents]
            event = wait_until(lambda: next((e for _t, e in watch.drain()
                                             if e["type"] == "message"), None),
                               10, "the event on the team topic")
            data = event["data"]
            assert type(data) is SharedData and data["body"] == f"第{n}条"
            wait_until(lambda d=data: d.frames, 10, "the frame kept with the event")
            [(key, text)] = data.frames.items()  # one encoding for three sockets
            assert key == ("message", data["id"])
            assert all(frame == json.loads(text) for frame in frames)  # ts included
    for s in (*agents, visitor):
        s.close()


def test_the_publishers_event_is_left_as_it_was(app):
    hub = app.extensions["meiqia.hub"]
    event = {"type": "typing", "data": {"conversation_id": 1, "typing": True}}
    with hub.subscribe(["conversation:1"]) as a, hub.subscribe(["conversation:1"]) as b:
        hub.publish("conversation:1", event)
        got_a = wait_until(a.drain, 5, "the event")[0][1]
        got_b = wait_until(b.drain, 5, "the event")[0][1]
    assert got_a["data"] is got_b["data"] and type(got_a["data"]) is SharedData
    assert got_a == event and type(event["data"]) is dict
