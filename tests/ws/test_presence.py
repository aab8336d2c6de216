"""Agent presence (issue 14): chats reach agents who are there, the queue hears
when nobody is left, the visitor hears who serves him.

Real sockets against a real server; the presence sweeper runs as in production
(a thread, here every 0.1 s) with a short grace period. The time from the last
agent gone to the visitor's leave-a-message offer is measured and printed
(``-s`` shows it; docs/protocol.md quotes it).
"""

from __future__ import annotations

import datetime
import random
import threading
import time

import pytest

from meiqia.models import Agent
from meiqia.models import AgentSocket
from meiqia.models import Conversation
from meiqia.models import Message
from meiqia.models import Visitor
from meiqia.models.base import utcnow
from meiqia.services import presence
from tests.api.test_conversations import start
from tests.api.test_conversations import vpost
from tests.helpers import wait_until
from tests.ws.conftest import LiveServer
from tests.ws.conftest import Socket
from tests.ws.conftest import cookie_of

GRACE = 0.5


@pytest.fixture
def team(api):
    api.app.config.update(AGENT_AWAY_GRACE_SECONDS=GRACE, AGENT_AWAY_OPEN_CHATS="requeue")
    return api.without_bot()


@pytest.fixture
def sweeper(app):
    running = presence.Sweeper(app, 0.1, presence.sweep, "presence")
    running.ensure_running()
    yield running
    running.stop()


def workspace(live, who):
    socket = Socket(live.url("/ws/agent"), cookie_of(who))
    socket.expect("hello")
    return socket


def visitor(live, token):
    socket = Socket(live.url(f"/ws/visitor?token={token}"))
    socket.expect("hello")
    return socket


def offered(socket, timeout=5.0):
    return socket.expect("conversation", timeout,
                         where=lambda d: d.get("offer_ticket") == "nobody_online")


def leave_line(socket):
    """The stored ``leave_message`` line as the socket got it (before or after the
    ``offer_ticket`` frame)."""
    def wanted(d):
        return d["payload"].get("event") == "leave_message"
    for frame in socket.seen:
        if frame["type"] == "message" and wanted(frame["data"]):
            return frame["data"]
    return socket.expect("message", where=wanted)["data"]


def test_an_online_agent_without_a_workspace_gets_no_chat(team, live):
    li = team.online_agent(2, connected=False, name="李客服")
    client, token, cid, data = start(team.app, team.team["id"])
    assert data["conversation"]["status"] == "bot"
    assert data["conversation"]["availability"] == "nobody_online"
    assert any(m["payload"].get("event") == "leave_message" for m in data["messages"])
    socket = workspace(live, li)
    assert presence.is_connected(li.agent["id"])
    asked = vpost(client, token, f"/api/v1/widget/conversations/{cid}/human").get_json()
    assert asked["outcome"] == "open"
    assert Conversation.get_by_id(cid).handler_id == li.agent["id"]
    # The transfer list shows true presence.
    listed = {a["id"]: a for a in team.get("/api/v1/agents").get_json()}
    assert listed[li.agent["id"]]["presence"] == "online"
    assert listed[team.agent["id"]]["presence"] == "offline"
    socket.close()


def test_the_visitor_sees_who_takes_over_in_his_language(team, live):
    li = team.online_agent(2, connected=False, name="李伟", nickname="李客服")
    socket = workspace(live, li)
    client, token, cid, data = start(team.app, team.team["id"])
    line = [m for m in data["messages"] if m["payload"].get("event") == "handover"]
    assert [m["body"] for m in line] == ["李客服 为您服务"]  # his nickname, not his name
    assert line[0]["payload"] == {"event": "handover", "agent": "李客服"}
    # An English widget: the transfer to the admin is announced in English.
    team.go_online()
    en = team.app.test_client()
    session = en.post("/api/v1/widget/session", json={"team_id": team.team["id"]},
                      headers={"X-Meiqia-Lang": "en"}).get_json()
    en_cid = session["conversation"]["conversation_id"]
    assert session["conversation"]["handler"]["name"] == "王管理"  # less loaded than li
    watcher = visitor(live, session["token"])
    moved = team.post(f"/api/v1/conversations/{en_cid}/transfer",
                      json={"agent_id": li.agent["id"]})
    assert moved.status_code == 200, moved.get_json()
    told = watcher.expect("message", where=lambda d: d["payload"].get("event") == "handover"
                          and d["payload"]["agent"] == "李客服")["data"]
    assert told["body"] == "李客服 is now serving you" and told["sender_kind"] == "system"
    assert "李伟" not in str(watcher.seen)
    socket.close()


def test_the_last_agent_gone_requeues_his_chats_and_offers_a_message(team, live, sweeper):
    li = team.online_agent(1, connected=False)
    agent = workspace(live, li)
    _c1, token1, served, _ = start(team.app, team.team["id"])
    _c2, token2, waiting, _ = start(team.app, team.team["id"])
    assert Conversation.get_by_id(waiting).status == "queued"
    first, second = visitor(live, token1), visitor(live, token2)

    agent.close()
    gone_at = time.monotonic()
    # Within the grace period (a reload) nothing changes: no state frame for a third of it.
    assert first.quiet("conversation", GRACE / 3)
    assert Conversation.get_by_id(served).handler_id == li.agent["id"]
    assert presence.is_connected(li.agent["id"])

    first.expect("conversation", where=lambda d: d["status"] == "queued")
    for socket in (first, second):
        offered(socket)
        elapsed = time.monotonic() - gone_at - GRACE
        line = socket.expect("message", where=lambda d: d["payload"].get("event")
                             == "leave_message")["data"]
        assert line["payload"]["reason"] == "nobody_online" and "留言" in line["body"]
    print(f"\nlast agent away -> offer: {elapsed:.2f} s after the grace period")
    assert elapsed < 5
    assert Agent.get_by_id(li.agent["id"]).connected is False
    assert Conversation.get_by_id(served).status == "queued"
    assert Conversation.get_by_id(served).handler_id is None
    # Told once, though every sweep of every process looks again.
    assert second.quiet("message", 0.5, where=lambda d: d["payload"].get("event")
                        == "leave_message")
    assert [m.payload.get("event") for m in Message.select().where(
        Message.conversation == waiting, Message.kind == "event")] == ["leave_message"]
    # He comes back: the one he had is served first (it went back to the head).
    again = workspace(live, li)
    assert Conversation.get_by_id(served).handler_id == li.agent["id"]
    assert Conversation.get_by_id(waiting).status == "queued"
    again.close()


def _told(socket, conversation_id):
    """The ``conversation`` frames a socket got about one chat (offers aside)."""
    return [f["data"] for f in socket.seen if f["type"] == "conversation"
            and f["data"].get("conversation_id") == conversation_id
            and "offer_ticket" not in f["data"]]


def _no_repeats(frames):
    return all(a != b for a, b in zip(frames, frames[1:], strict=False))


def test_a_requeue_tells_each_change_once_to_each_socket(team, live, sweeper):
    """The chats of an agent who went away go back to the queue: the team's
    sockets and the visitors hear each chat's new state once, and the chat
    already waiting behind them hears its new place once."""
    li = team.online_agent(1, connected=False)
    agent = workspace(live, li)
    boss = workspace(live, team)  # the admin sees the team; offline, so never routed to
    _c, token_a, served, _ = start(team.app, team.team["id"])
    _c, token_b, waiting, _ = start(team.app, team.team["id"])
    assert Conversation.get_by_id(waiting).status == "queued"
    first, second = visitor(live, token_a), visitor(live, token_b)
    agent.close()
    first.expect("conversation", where=lambda d: d["status"] == "queued")
    second.expect("conversation", where=lambda d: d.get("queue_position") == 2)
    for socket in (boss, first, second):
        socket.quiet("nothing", 1.0)  # reads every frame that comes meanwhile
    assert [d["queue_position"] for d in _told(boss, served) if d["status"] == "queued"] == [1]
    assert [d["queue_position"] for d in _told(first, served)] == [1]
    assert [d["queue_position"] for d in _told(boss, waiting)] == [1, 2]
    assert [d["queue_position"] for d in _told(second, waiting)] == [2]


def test_a_requeue_routed_at_once_tells_each_change_once(team, live, sweeper):
    """Of two requeued chats a colleague with room takes the first: the second
    hears its new place once (not once from the assignment and again from the
    requeue)."""
    li = team.online_agent(2, connected=False)
    agent = workspace(live, li)
    boss = workspace(live, team)
    _c, token_a, one, _ = start(team.app, team.team["id"])
    _c, token_b, two, _ = start(team.app, team.team["id"])
    zhou = team.online_agent(1, connected=False, email="zhou@example.com", name="周")
    colleague = workspace(live, zhou)
    first, second = visitor(live, token_a), visitor(live, token_b)
    agent.close()
    wait_until(lambda: Conversation.get_by_id(one).handler_id == zhou.agent["id"], 5,
               "the first requeued chat routed to 周")
    for socket in (boss, colleague, first, second):
        socket.quiet("nothing", 1.0)  # reads every frame that comes meanwhile
    assert Conversation.get_by_id(two).status == "queued"
    for socket in (boss, colleague, first, second):
        for conversation_id in (one, two):
            frames = _told(socket, conversation_id)
            assert _no_repeats(frames), (conversation_id, frames)
    assert [d["queue_position"] for d in _told(boss, two)][-1:] == [1]
    assert [d["queue_position"] for d in _told(second, two)] == [2, 1]
    assert [d["status"] for d in _told(first, one)] == ["queued", "open"]


def test_going_offline_tells_the_queue_at_once(team, live):
    li = team.online_agent(1, connected=False)
    agent = workspace(live, li)
    start(team.app, team.team["id"])
    _c, token, waiting, _ = start(team.app, team.team["id"])
    socket = visitor(live, token)
    began = time.monotonic()
    assert li.patch(f"/api/v1/agents/{li.agent['id']}", json={"status": "offline"}
                    ).status_code == 200
    offered(socket)
    print(f"\nlast agent offline -> offer: {time.monotonic() - began:.3f} s")
    assert Conversation.get_by_id(waiting).status == "queued"
    agent.close()


def test_a_group_queue_hears_when_its_last_member_goes(team, live):
    """Colleagues outside the group are still there, but a chat waiting for the
    group waits for nobody once its last member left: offered too; the general
    queue, which they serve, is not."""
    group = team.post("/api/v1/groups", json={"name": "售后组"}).get_json()
    li = team.online_agent(1, name="李客服", email="li@example.com", groups=[group["id"]])
    team.online_agent(1, name="周客服", email="zhou@example.com")
    start(team.app, team.team["id"])
    start(team.app, team.team["id"])  # both busy now
    _c, token_g, for_group, _ = start(team.app, team.team["id"])
    moved = team.post(f"/api/v1/conversations/{for_group}/transfer",
                      json={"group_id": group["id"]})
    assert moved.status_code == 200, moved.get_json()
    _c, token_q, general, _ = start(team.app, team.team["id"])
    assert Conversation.get_by_id(general).status == "queued"
    group_socket, general_socket = visitor(live, token_g), visitor(live, token_q)
    assert li.patch(f"/api/v1/agents/{li.agent['id']}", json={"status": "offline"}
                    ).status_code == 200
    offered(group_socket)
    assert general_socket.quiet("conversation", 0.5, where=lambda d: "offer_ticket" in d)


def test_a_chat_transferred_to_a_group_with_nobody_online_is_told_by_the_sweep(
        team, live, sweeper):
    """The hteam's D8: transferred to 售后组, whose only member is offline, the
    visitor still read "排队中：第 1 位" a minute later. Nobody went (so no departure
    told the group's queue); the presence sweep now looks at chats just moved to a
    group and offers those nobody of the group can serve, once. A chat transferred
    to a group whose member is there but busy just waits."""
    after_sales = team.post("/api/v1/groups", json={"name": "售后组"}).get_json()
    presale = team.post("/api/v1/groups", json={"name": "售前组"}).get_json()
    bob = team.new_agent(email="bob@example.com", name="Bob", groups=[after_sales["id"]])
    zhang = team.online_agent(1, connected=False, name="张三", email="zs@example.com",
                              groups=[presale["id"]])
    zhang_socket = workspace(live, zhang)
    li = team.online_agent(2, connected=False, name="李客服", email="li@example.com")
    li_socket = workspace(live, li)
    start(team.app, team.team["id"])  # 张三 is full now (limit 1)
    _c, token, cid, _ = start(team.app, team.team["id"])
    _c, busy_token, busy_cid, _ = start(team.app, team.team["id"])
    assert {Conversation.get_by_id(c).handler_id for c in (cid, busy_cid)} == {li.agent["id"]}
    socket, busy_socket = visitor(live, token), visitor(live, busy_token)

    moved = li.post(f"/api/v1/conversations/{cid}/transfer", json={"group_id": after_sales["id"]})
    assert moved.status_code == 200 and moved.get_json()["status"] == "queued"
    began = time.monotonic()
    offered(socket)
    print(f"\ntransfer to a group nobody serves -> offer: {time.monotonic() - began:.2f} s")
    assert time.monotonic() - began < 5
    line = leave_line(socket)
    assert line["payload"]["reason"] == "nobody_online" and "留言" in line["body"]
    # Told once, though every sweep looks again while the chat is recent.
    assert socket.quiet("message", 1.5, where=lambda d: d["payload"].get("event")
                        == "leave_message")
    assert [m.payload.get("event") for m in Message.select().where(
        Message.conversation == cid, Message.kind == "event",
        Message.visibility == "public")].count("leave_message") == 1
    assert Conversation.get_by_id(cid).status == "queued"

    # A group whose member is there but full: waiting, not offered.
    moved = li.post(f"/api/v1/conversations/{busy_cid}/transfer",
                    json={"group_id": presale["id"]})
    assert moved.status_code == 200 and moved.get_json()["status"] == "queued"
    assert busy_socket.quiet("conversation", 1.5, where=lambda d: "offer_ticket" in d)

    # Bob comes: he serves the chat that waited for his group.
    assert bob.patch(f"/api/v1/agents/{bob.agent['id']}", json={"status": "online"}
                     ).status_code == 200
    bob_socket = workspace(live, bob)
    wait_until(lambda: Conversation.get_by_id(cid).handler_id == bob.agent["id"], 5,
               "Bob takes the chat that waited for 售后组")
    for s in (bob_socket, zhang_socket, li_socket):
        s.close()


def test_keep_leaves_the_chats_with_the_away_agent(team, live, sweeper):
    team.app.config["AGENT_AWAY_OPEN_CHATS"] = "keep"
    li = team.online_agent(1, connected=False)
    colleague = team.online_agent(1, connected=False, email="zhou@example.com", name="周")
    agents = workspace(live, li), workspace(live, colleague)
    _c, _t, served, _ = start(team.app, team.team["id"])
    owner = Conversation.get_by_id(served).handler_id
    away = agents[0] if owner == li.agent["id"] else agents[1]
    away.close()
    wait_until(lambda: not Agent.get_by_id(owner).connected, 5, "the agent marked away")
    assert Conversation.get_by_id(served).handler_id == owner
    # Away agents get no new chats.
    _c, _t, later, _ = start(team.app, team.team["id"])
    assert Conversation.get_by_id(later).handler_id not in (owner, None)


def test_a_reload_within_the_grace_period_changes_nothing(team, live, sweeper):
    li = team.online_agent(1, connected=False)
    watcher = workspace(live, team)
    agent = workspace(live, li)
    _c, _t, served, _ = start(team.app, team.team["id"])
    agent.close()
    agent = workspace(live, li)  # the reload
    # Three grace periods with no "away" for him: the reload was no absence.
    assert watcher.quiet("agent.presence", GRACE * 3, where=lambda d: d["presence"] == "away")
    assert Agent.get_by_id(li.agent["id"]).connected
    assert Conversation.get_by_id(served).handler_id == li.agent["id"]
    agent.close()


def test_a_socket_of_a_killed_process_expires(team, live, sweeper):
    """A process killed -9 closes nothing: its rows simply stop being refreshed."""
    team.app.config["AGENT_HEARTBEAT_SECONDS"] = 0.5
    li = team.online_agent(1, connected=False)
    watcher = workspace(live, team)
    presence.agent_connected(Agent.get_by_id(li.agent["id"]))  # then the process died
    _c, token, served, _ = start(team.app, team.team["id"])
    assert Conversation.get_by_id(served).handler_id == li.agent["id"]
    socket = visitor(live, token)
    watcher.expect("agent.presence", where=lambda d: d["agent_id"] == li.agent["id"]
                   and d["presence"] == "away")
    offered(socket)
    assert not presence.is_connected(li.agent["id"])


def test_the_agent_socket_keeps_its_row_alive(team, live, sweeper):
    team.app.config["AGENT_HEARTBEAT_SECONDS"] = 0.6
    li = team.online_agent(1, connected=False)
    agent = workspace(live, li)
    for _ in range(8):  # pings, as the workspace sends every 25 s
        agent.send("ping")
        agent.expect("pong")
        assert agent.quiet("error", 0.15)  # the next ping after a while
    assert Agent.get_by_id(li.agent["id"]).connected
    assert presence.is_connected(li.agent["id"])
    agent.close()


def test_a_ping_is_a_sign_of_life_while_the_database_is_busy(team, live, monkeypatch):
    """The sign of life is noted before the socket's credential check, which waits its
    turn for the database with every chat frame of a busy process: a ping that waited
    there past AGENT_HEARTBEAT_SECONDS took the agent for gone (issue 19)."""
    from meiqia import embedded_server
    from meiqia.web import ws

    team.app.config.update(PRESENCE_SWEEP_SECONDS=1, AGENT_HEARTBEAT_SECONDS=0.3)
    li = team.online_agent(1, connected=False)
    agent = workspace(live, li)
    monkeypatch.setattr(ws, "CREDENTIAL_CHECK_SECONDS", 0)  # every frame checks it
    gate = team.app.extensions["meiqia.ws_gate"] = embedded_server.bounded_semaphore(1)
    with team.app.app_context():
        notes = presence.touches()
    notes.flush()
    time.sleep(0.2)  # past the interval between two notes
    assert gate.acquire(timeout=5)  # every database turn of the process taken
    try:
        agent.send("ping")
        wait_until(lambda: notes.agents, 5, "the ping noted while the database is busy")
    finally:
        gate.release()
    agent.expect("pong")
    agent.close()


TRIALS = 12


def test_chats_routed_while_the_socket_drops_never_stay_with_him(db_api):
    """The race on purpose: visitors arrive while the agent's only socket closes
    (no grace). Afterwards no open chat has a handler without a live socket,
    and every visitor either has a connected agent or was offered a message."""
    app = db_api.app
    app.config.update(AGENT_AWAY_GRACE_SECONDS=0, AGENT_AWAY_OPEN_CHATS="requeue")
    db_api.without_bot()
    li = db_api.online_agent(3, connected=False)
    zhou = db_api.online_agent(1, connected=False, email="zhou@example.com", name="周")
    live = LiveServer(app)
    rng = random.Random(14)
    try:
        for trial in range(TRIALS):
            stay = workspace(live, zhou) if trial % 2 else None
            drop = workspace(live, li)
            errors: list[BaseException] = []
            barrier = threading.Barrier(4)

            def arrive(barrier=barrier, errors=errors):
                try:
                    barrier.wait(5)
                    time.sleep(rng.random() * 0.02)
                    start(app, db_api.team["id"])
                except BaseException as exc:  # noqa: BLE001 - asserted below
                    errors.append(exc)

            def leave(barrier=barrier, drop=drop):
                barrier.wait(5)
                time.sleep(rng.random() * 0.02)
                drop.close()

            threads = [threading.Thread(target=arrive) for _ in range(3)]
            threads.append(threading.Thread(target=leave))
            for t in threads:
                t.start()
            for t in threads:
                t.join(30)
            assert not errors, errors
            # The close's own settle may still be running on the server.
            wait_until(lambda: not Agent.get_by_id(li.agent["id"]).connected, 5,
                       "the close's settle")
            presence.sweep()

            def strays(trial=trial):
                """Open chats whose handler has no live socket (the settle that
                flips ``connected`` then requeues his chats: wait for the requeue)."""
                live_ids = {a for (a,) in AgentSocket.select(AgentSocket.agent).where(
                    AgentSocket.alive_until > utcnow()).tuples()}
                return [(trial, c.id, c.handler_id) for c in Conversation.select().where(
                    Conversation.status == "open") if c.handler_id not in live_ids]

            wait_until(lambda: strays() == [], 5, f"no stray open chats: {strays()}")
            for c in Conversation.select().where(
                    Conversation.status.not_in(["open", "ended"])):
                events = [m.payload.get("event") for m in Message.select().where(
                    Message.conversation == c.id, Message.kind == "event")]
                assert "leave_message" in events or c.status == "queued", (trial, c.id)
            if stay is not None:
                stay.close()
                presence.sweep(utcnow() + datetime.timedelta(seconds=1))
            Conversation.update(status="ended").where(Conversation.status != "ended").execute()
    finally:
        Socket.close_all()
        live.stop()


def test_processes_telling_the_queue_at_once_tell_each_visitor_once(db_api):
    """Several processes' sweepers see the last agent gone at the same moment (the
    race on purpose, threads with their own connections): each queued visitor
    gets one offer, not one per process."""
    from meiqia.db import connection
    from meiqia.services import routing

    app = db_api.app
    db_api.without_bot()
    li = db_api.online_agent(1)
    start(app, db_api.team["id"])
    waiting = [start(app, db_api.team["id"])[2] for _ in range(4)]
    for trial in range(5):
        # His sockets expired (a killed process): time moved through the data.
        AgentSocket.update(alive_until=utcnow() - datetime.timedelta(seconds=1)).where(
            AgentSocket.agent == li.agent["id"]).execute()
        Conversation.update(offered_at=None).where(Conversation.id.in_(waiting)).execute()
        barrier = threading.Barrier(4)
        told: list[int] = []
        errors: list[BaseException] = []

        def tell(barrier=barrier, told=told, errors=errors):
            try:
                with app.app_context(), connection():
                    barrier.wait(5)
                    told.append(routing.tell_if_nobody_left(db_api.team["id"]))
            except BaseException as exc:  # noqa: BLE001 - asserted below
                errors.append(exc)

        threads = [threading.Thread(target=tell) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert not errors, errors
        assert sum(told) == len(waiting), (trial, told)
        for cid in waiting:
            offers = [m for m in Message.select().where(
                Message.conversation == cid, Message.kind == "event")
                if m.payload.get("event") == "leave_message"]
            assert len(offers) == trial + 1, (trial, cid, len(offers))


def test_signs_of_life_wait_for_the_sweep_and_never_revive_a_closed_socket(app):
    """With a presence sweeper, a ping only notes the socket; the sweep writes
    every note at once. A visitor whose socket closed after its note, and an
    agent socket closed after its note, are not brought back by it."""
    from tests.factories import make_agent
    from tests.factories import make_team
    from tests.factories import make_visitor

    app.config["PRESENCE_SWEEP_SECONDS"] = 1  # batched; the test sweeps by hand
    team = make_team()
    stays, leaves = make_visitor(team, "留下"), make_visitor(team, "离开")
    past = utcnow() - datetime.timedelta(seconds=1)
    for v in (stays, leaves):
        presence.visitor_connected(v.id)
    Visitor.update(online_until=past).where(Visitor.id == stays.id).execute()
    presence.touches().visitor(stays.id)
    presence.visitor_disconnected(leaves.id)
    presence.touches().visitor(leaves.id)  # a note that lost the race with the close
    assert Visitor.get_by_id(stays.id).online_until == past  # noted, not written
    agent = make_agent(team, "王客服")
    Agent.update(status="online").where(Agent.id == agent.id).execute()
    socket_id = presence.agent_connected(agent)
    AgentSocket.update(alive_until=past).where(AgentSocket.id == socket_id).execute()
    presence.touches().agent(agent, socket_id)
    closed_id = presence.agent_connected(agent)
    presence.touches().agent(agent, closed_id)
    presence.agent_disconnected(agent, closed_id)
    grace_end = AgentSocket.get_by_id(closed_id).alive_until

    presence.sweep()

    assert presence.is_online(Visitor.get_by_id(stays.id))
    assert not presence.is_online(Visitor.get_by_id(leaves.id))
    assert AgentSocket.get_by_id(socket_id).alive_until > utcnow()
    assert AgentSocket.get_by_id(closed_id).alive_until == grace_end
    assert presence.is_connected(agent.id)


def test_pings_keep_the_workspace_alive_through_the_batched_sweep(team, live, sweeper):
    team.app.config.update(AGENT_HEARTBEAT_SECONDS=0.6, PRESENCE_SWEEP_SECONDS=0.1)
    li = team.online_agent(1, connected=False)
    agent = workspace(live, li)
    for _ in range(8):
        agent.send("ping")
        agent.expect("pong")
        assert agent.quiet("error", 0.15)
    assert Agent.get_by_id(li.agent["id"]).connected
    assert presence.is_connected(li.agent["id"])
    agent.close()


def test_a_visitor_nobody_can_serve_is_shown_the_form_each_time_but_told_once(team, live):
    """With the bot off every message asks for a person. Each gets the form (the
    ``offer_ticket`` frame); the stored line comes once per 30 s, also when his
    messages arrive at once from two tabs (the race on purpose, five trials)."""
    from meiqia.services import routing

    for trial in range(5):
        client, token, cid, data = start(team.app, team.team["id"])
        lines = Message.select().where(Message.conversation == cid, Message.kind == "event")
        assert lines.count() == 1  # the session's own offer
        Conversation.update(offered_at=None).where(Conversation.id == cid).execute()
        tabs = [visitor(live, token) for _ in range(2)]
        go, answers = threading.Barrier(8), []

        def send(n, client=client, token=token, cid=cid, trial=trial, go=go, answers=answers):
            go.wait(5)
            answers.append(vpost(client, token, f"/api/v1/widget/conversations/{cid}/messages",
                                 json={"client_msg_id": f"t{trial}-{n}", "body": f"在吗？{n}"}
                                 ).status_code)

        senders = [threading.Thread(target=send, args=(n,)) for n in range(8)]
        for t in senders:
            t.start()
        for t in senders:
            t.join(10)
        assert sorted(answers) == [201] * 8, answers
        for tab in tabs:  # the form, once for each message
            for _ in range(8):
                offered(tab)
            tab.close()
        assert lines.count() == 2  # one more line for the eight, not eight
        # Past OFFER_AGAIN_SECONDS he is told again.
        Conversation.update(offered_at=utcnow() - datetime.timedelta(
            seconds=routing.OFFER_AGAIN_SECONDS + 1)).where(Conversation.id == cid).execute()
        vpost(client, token, f"/api/v1/widget/conversations/{cid}/messages",
              json={"client_msg_id": f"t{trial}-late", "body": "还有人吗"})
        assert lines.count() == 3


def test_a_process_behind_on_its_sweep_still_routes_to_the_agents_it_hears(team, live):
    """The sweep that writes the signs of life runs on a timer, which an overloaded
    process runs late (50 s at 300 msg/s on one core). Here no sweep runs at all: the
    agent's row expires while he keeps pinging, and this process still routes to him;
    once he is silent past the heartbeat, it does not."""
    team.app.config.update(PRESENCE_SWEEP_SECONDS=1, AGENT_HEARTBEAT_SECONDS=1)
    li = team.online_agent(2, connected=False)
    agent = workspace(live, li)
    deadline = time.monotonic() + 2.5
    while time.monotonic() < deadline:  # pings, as the workspace sends them
        agent.send("ping")
        agent.expect("pong")
        time.sleep(0.2)
    assert not presence.live_sockets().where(AgentSocket.agent == li.agent["id"]).exists()  # his row expired, nothing wrote it
    served = start(team.app, team.team["id"])[2]
    assert Conversation.get_by_id(served).handler_id == li.agent["id"]
    time.sleep(1.3)  # silent past the heartbeat, socket still open
    waiting = start(team.app, team.team["id"])[2]
    assert Conversation.get_by_id(waiting).handler_id is None
    agent.close()


def test_a_visitor_whose_socket_goes_silent_is_announced_offline(team, live, sweeper,
                                                                 monkeypatch):
    """His socket stays open but sends nothing (a tab asleep, a network gone with no
    close): after ONLINE_SECONDS without a sign of life the agents' sockets hear
    ``presence`` online false, once, as REST already said (found from outside:
    REST turned offline at 75 s and no frame ever came)."""
    monkeypatch.setattr(presence, "ONLINE_SECONDS", 1)
    watcher = workspace(live, team)
    _c, token, cid, _ = start(team.app, team.team["id"])
    silent = visitor(live, token)  # connects, then never pings
    watcher.expect("presence", where=lambda d: d["conversation_id"] == cid and d["online"])
    gone = watcher.expect("presence", timeout=10,
                          where=lambda d: d["conversation_id"] == cid and not d["online"])
    assert gone["data"]["visitor_id"] == Conversation.get_by_id(cid).visitor_id
    assert team.get(f"/api/v1/conversations/{cid}").get_json()["customer"]["online"] is False
    # Told once, though every sweep looks again.
    assert watcher.quiet("presence", 1.0, where=lambda d: d["conversation_id"] == cid)
    silent.close()


def test_a_closed_workspace_takes_new_chats_only_for_a_reload(team, live, sweeper):
    """Found from outside: for the whole away grace (60 s) after an agent's
    workspace closed, new chats went to him and each visitor read "客服1 为您服务"
    from nobody. A closed workspace now takes new chats for
    AGENT_ROUTING_GRACE_SECONDS only (a reload), while the longer away grace still
    keeps his status and his chats."""
    team.app.config.update(AGENT_AWAY_GRACE_SECONDS=30, AGENT_ROUTING_GRACE_SECONDS=0.4)
    li = team.online_agent(20, connected=False, name="李客服")
    agent = workspace(live, li)
    agent.close()
    # A reload's moment: the chat is his.
    _c, _t, first, data = start(team.app, team.team["id"])
    assert Conversation.get_by_id(first).handler_id == li.agent["id"], data["conversation"]
    # Past the routing grace, within the away grace: nobody takes new chats.
    wait_until(lambda: start(team.app, team.team["id"])[3]["conversation"]["availability"]
               == "nobody_online", timeout=10, what="no chat for a closed workspace")
    assert Agent.get_by_id(li.agent["id"]).connected  # not marked away yet
    assert Conversation.get_by_id(first).handler_id == li.agent["id"]  # his chat stays
    # What routing does, the list and a transfer say: he is not shown online and no
    # colleague can hand him a chat (the list once said ``online`` for the whole away
    # grace, so whoever waited for ``online`` sent a visitor to nobody).
    listed = {a["id"]: a for a in team.get("/api/v1/agents").get_json()}
    assert listed[li.agent["id"]]["presence"] == "away"
    team.go_online()
    _c, _t, mine, _ = start(team.app, team.team["id"])
    assert Conversation.get_by_id(mine).handler_id == team.agent["id"]
    moved = team.post(f"/api/v1/conversations/{mine}/transfer", json={"agent_id": li.agent["id"]})
    assert moved.status_code == 409, moved.get_json()
    assert Conversation.get_by_id(mine).handler_id == team.agent["id"]
    assert team.patch(f"/api/v1/agents/{team.agent['id']}",
                      json={"status": "offline"}).status_code == 200
    # He reloads: new chats reach him again at once.
    agent = workspace(live, li)
    listed = {a["id"]: a for a in team.get("/api/v1/agents").get_json()}
    assert listed[li.agent["id"]]["presence"] == "online"
    _c, _t, later, _ = start(team.app, team.team["id"])
    assert Conversation.get_by_id(later).handler_id == li.agent["id"]
    agent.close()


def test_nobody_while_an_agent_is_marked_connected_is_logged(team, caplog):
    """When routing finds nobody but an agent is marked online and connected (the two
    should agree), the log names what each side read, for the next such mystery."""
    import logging

    li = team.online_agent(2, connected=False, name="李客服")
    Agent.update(connected=True).where(Agent.id == li.agent["id"]).execute()  # no socket
    with caplog.at_level(logging.WARNING, logger="meiqia.services.capacity"):
        _c, _t, _cid, data = start(team.app, team.team["id"])
    assert data["conversation"]["availability"] == "nobody_online"
    lines = [r.getMessage() for r in caplog.records if r.name == "meiqia.services.capacity"]
    assert len(lines) == 1 and f"yet agents [{li.agent['id']}] are online" in lines[0], lines
    assert "sockets (agent, alive until, closed at): []" in lines[0]
