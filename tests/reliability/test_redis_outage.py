"""Fault (a): Redis stops in the middle of a conversation, in production mode
(``REDIS_URL`` set: Redis pub/sub hub and rq queue), then comes back on the
same port.

What the system does, as these tests pin it down:

* ``/healthz`` answers 503 ``unhealthy`` naming the hub and the queue, each
  with the client's error.
* Messages are still stored and acknowledged, over the socket and over HTTP
  (the database is the truth, the hub only notifies): nothing acknowledged is
  lost. Live delivery to other sockets pauses; a socket that reconnects with
  ``?after=`` gets what it missed, and one that stayed open gets it too, once
  and in order, as soon as Redis is back (the hub's resync, without the client
  doing anything), the visitor with a ``conversation`` frame of the state now.
* Work that needs the queue (an export) answers 503 ``unavailable`` and leaves
  no export row that would never run.
* Redis back: health is ok again and events flow to the sockets that stayed
  open, without restarting the app (the hub's listener reconnects by itself).
* A publish that fails while the listeners stay connected (Redis stalled past
  the client's timeout) is announced once Redis answers: every process's
  subscriptions resync.
"""

from __future__ import annotations

import datetime
import json

import peewee

from meiqia.models import ExportJob
from tests.conftest import close_app
from tests.conftest import make_app
from tests.factories import make_conversation
from tests.factories import make_visitor
from tests.helpers import wait_until
from tests.reliability.test_database_faults import bodies
from tests.reliability.test_database_faults import open_chat
from tests.reliability.test_database_faults import say
from tests.ws.conftest import LiveServer
from tests.ws.conftest import Socket
from tests.ws.conftest import cookie_of


def test_redis_down_then_back_during_a_conversation(tmp_path, own_redis):
    app = make_app(tmp_path, REDIS_URL=own_redis.url, REDIS_PREFIX="outage",
                   JOBS_INLINE=False, REDIS_TIMEOUT=0.2)
    server = LiveServer(app)
    try:
        with app.app_context():
            hub = app.extensions["meiqia.hub"]
            assert hub.wait_ready()
            api, visitor_http, token, cid = open_chat(app)
            team = api.team["id"]
            make_conversation(team, make_visitor(team), handler=api.agent["id"],
                              ended_at=datetime.datetime(2026, 11, 20, 4, 0),
                              messages=[("visitor", "旧对话", 0)])
            agent = Socket(server.url("/ws/agent"), cookie_of(api))
            agent.expect("hello")
            visitor = Socket(server.url(f"/ws/visitor?token={token}"))
            visitor.expect("hello")
            visitor.send("message", {"body": "Redis 正常", "client_msg_id": "r1"})
            visitor.expect("ack")
            seen = agent.expect("message", where=lambda d: d.get("body") == "Redis 正常")
            last_seen = seen["data"]["id"]

            own_redis.stop()

            health = app.test_client().get("/healthz")
            assert health.status_code == 503
            data = health.get_json()
            assert data["status"] == "unhealthy" and data["database"]["ok"]
            assert not data["hub"]["ok"] and data["hub"]["error"]
            assert data["hub"]["listening"] is False
            assert not data["queue"]["ok"] and data["queue"]["error"]

            # Messages are stored and acknowledged while Redis is down.
            visitor.send("message", {"body": "Redis 挂了", "client_msg_id": "r2"})
            ack = visitor.expect("ack", timeout=30)["data"]
            assert ack["client_msg_id"] == "r2" and ack["message"]["id"] > last_seen
            assert say(visitor_http, token, cid, "HTTP 也能发", "r3").status_code == 201
            reply = api.post(f"/api/v1/conversations/{cid}/messages",
                             json={"body": "客服也能回", "client_msg_id": "a1"})
            assert reply.status_code == 201, reply.get_json()
            assert bodies(api, cid) == ["Redis 正常", "Redis 挂了", "HTTP 也能发", "客服也能回"]

            # Queued work cannot start: a clear 503, and no export left behind.
            export = api.post("/api/v1/history/exports", json={"format": "csv"})
            assert export.status_code == 503, export.get_json()
            error = export.get_json()["error"]
            assert error["code"] == "unavailable" and "Redis" in error["message"]
            assert ExportJob.select().count() == 0

            # A socket opened now catches up from the database.
            late = Socket(server.url(f"/ws/agent?after={last_seen}"), cookie_of(api))
            late.expect("hello")
            for body in ("Redis 挂了", "HTTP 也能发", "客服也能回"):
                late.expect("message", where=lambda d, b=body: d.get("body") == b, timeout=30)

            own_redis.start()  # same port, empty (no persistence): a restart

            def healthy() -> bool:
                response = app.test_client().get("/healthz")
                return response.status_code == 200 and response.get_json()["hub"]["listening"]

            wait_until(healthy, what="health ok after Redis is back")
            # The sockets that stayed open get what they missed, without reconnecting,
            # before anything newer: the agent all three, in order, once.
            missed = ["Redis 挂了", "HTTP 也能发", "客服也能回"]
            for body in missed:
                agent.expect("message", where=lambda d, b=body: d.get("body") == b, timeout=30)
            got = [f["data"]["body"] for f in agent.seen if f["type"] == "message"]
            assert got == ["Redis 正常", *missed]
            # The visitor: the agent's reply (his own messages came in his acks), and
            # the state now.
            visitor.expect("message", where=lambda d: d.get("body") == "客服也能回", timeout=30)
            state = visitor.expect("conversation", timeout=30)["data"]
            assert state["conversation_id"] == cid and state["status"] == "open"
            visitor.send("message", {"body": "Redis 回来了", "client_msg_id": "r4"})
            visitor.expect("ack")
            # The sockets that stayed open through the outage hear it live again.
            agent.expect("message", where=lambda d: d.get("body") == "Redis 回来了", timeout=30)
            late.expect("message", where=lambda d: d.get("body") == "Redis 回来了", timeout=30)
            api.post(f"/api/v1/conversations/{cid}/messages",
                     json={"body": "收到", "client_msg_id": "a2"})
            visitor.expect("message", where=lambda d: d.get("body") == "收到", timeout=30)
            for socket in (agent, visitor, late):
                ids = [f["id"] for f in socket.seen if f["type"] == "message"]
                assert len(ids) == len(set(ids)), socket.seen  # nothing twice
            export = api.post("/api/v1/history/exports", json={"format": "csv"})
            assert export.status_code == 202, export.get_json()
    finally:
        Socket.close_all()
        server.stop()
        close_app(app)


def test_writes_that_queue_a_job_while_redis_is_down(tmp_path, own_redis):
    """A write whose follow-up job cannot be queued either answers 503 and keeps
    nothing (so the retry does it all), or keeps the write and answers it (so
    the retry does not duplicate it) — never "saved, but told it failed"."""
    app = make_app(tmp_path, REDIS_URL=own_redis.url, REDIS_PREFIX="outage2",
                   JOBS_INLINE=False, REDIS_TIMEOUT=0.2)
    try:
        with app.app_context():
            api, visitor_http, token, cid = open_chat(app)
            ticket = api.post("/api/v1/tickets", json={
                "content": "发票开错了", "email": "kehu@example.com"}).get_json()
            grades = [{"grade": "A", "min_messages": 10}]
            original = api.get("/api/v1/conversation-rules").get_json()["grades"]
            assert original != grades
            own_redis.stop()

            rules = api.put("/api/v1/conversation-rules", json={"grades": grades})
            assert rules.status_code == 503, rules.get_json()
            assert api.get("/api/v1/conversation-rules").get_json()["grades"] == original

            reply = api.post(f"/api/v1/tickets/{ticket['id']}/comments",
                             json={"body": "已重新开具", "visibility": "public"})
            assert reply.status_code == 201, reply.get_json()
            shown = api.get(f"/api/v1/tickets/{ticket['id']}").get_json()
            assert json.dumps(shown, ensure_ascii=False).count("已重新开具") == 1

            own_redis.start()
            wait_until(lambda: app.test_client().get("/healthz").status_code == 200,
                       what="health ok after Redis is back")
            again = api.put("/api/v1/conversation-rules", json={"grades": grades})
            assert again.status_code == 200, again.get_json()
            assert again.get_json().get("job_id")  # the regrade is queued this time
            assert api.get("/api/v1/conversation-rules").get_json()["grades"] == grades
    finally:
        close_app(app)


def test_a_publish_lost_while_listeners_stay_connected_is_announced(own_redis):
    """Redis stalls (``CLIENT PAUSE``) past the publisher's timeout: the publish
    fails, the listeners never disconnect. Once Redis answers, the publisher
    broadcasts a resync and the other process's subscriptions take it."""
    import time

    import redis

    from meiqia.hub import RedisHub
    from meiqia.hub import make_redis

    # The publisher gives up after 0.3 s (make_redis's floor is 4 s, too long here).
    publisher = RedisHub(redis.Redis.from_url(own_redis.url, socket_timeout=0.3), "stall")
    listener = RedisHub(make_redis(own_redis.url, 0.1), "stall")
    admin = redis.Redis.from_url(own_redis.url)
    try:
        assert publisher.wait_ready() and listener.wait_ready()
        sub = listener.subscribe(["conversation:1"])
        before = time.time()
        admin.execute_command("CLIENT", "PAUSE", "1500", "WRITE")
        publisher.publish("conversation:1", {"type": "message", "data": {"id": 1}})
        health = publisher.health()  # PING is served during the pause
        assert not health["ok"] and health["resync_pending"] and health["listening"]
        assert "could not be published" in health["error"]
        assert wait_until(lambda: sub.resync_since is not None, timeout=10,
                          what="the resync broadcast")
        assert before <= sub.resync_since <= time.time()
        assert publisher.health()["ok"] and not publisher.health()["resync_pending"]
        assert listener.health()["listening"]
    finally:
        admin.close()
        publisher.close()
        listener.close()


def test_many_sockets_miss_nothing_across_redis_outages(tmp_path, own_redis):
    """Several conversations, visitors and the agent writing all the time while
    Redis goes down and comes back three times at random moments: every socket that
    stayed open ends with every stored message of its scope, once, in order,
    without reconnecting."""
    import random
    import threading
    import time

    app = make_app(tmp_path, REDIS_URL=own_redis.url, REDIS_PREFIX="outage3",
                   REDIS_TIMEOUT=0.2)
    server = LiveServer(app)
    try:
        with app.app_context():
            assert app.extensions["meiqia.hub"].wait_ready()
            api, _, token, cid = open_chat(app)
            chats = [(token, cid)]
            for _ in range(3):
                data = app.test_client().post("/api/v1/widget/session", json={
                    "team_id": api.team["id"]}).get_json()
                chats.append((data["token"], data["conversation"]["conversation_id"]))
            from meiqia.models import Message

            # What was stored before the agent's socket opened (each chat's handover
            # line) is in his hello lists, not among his message frames.
            before = Message.select(peewee.fn.MAX(Message.id)).scalar() or 0
            agent = Socket(server.url("/ws/agent"), cookie_of(api))
            agent.expect("hello")
            visitors = []
            for token, _ in chats:
                visitors.append(Socket(server.url(f"/ws/visitor?token={token}")))
                visitors[-1].expect("hello")
            # One writer (so message ids follow the order of commits) sends all the
            # time, over the visitors' sockets and the agent's REST API, while Redis
            # stops and starts at random moments: publishes land just before, during
            # and just after each cut and each return.
            stop, failures, sent = threading.Event(), [], []

            def write() -> None:
                rng = random.Random(13)
                while not stop.is_set():
                    n = len(sent) + 1
                    i = rng.randrange(len(chats))
                    try:
                        if rng.random() < 0.5:
                            visitors[i].send("message", {"body": f"访客{n}",
                                                         "client_msg_id": f"v{n}"})
                            visitors[i].expect("ack", timeout=30)
                        else:
                            reply = api.post(f"/api/v1/conversations/{chats[i][1]}/messages",
                                             json={"body": f"客服{n}", "client_msg_id": f"a{n}"})
                            assert reply.status_code == 201, reply.get_json()
                    except Exception as exc:  # noqa: BLE001 - reported by the test thread
                        failures.append(exc)
                        return
                    sent.append(n)
                    stop.wait(rng.uniform(0, 0.03))

            writer = threading.Thread(target=write)
            writer.start()
            rng = random.Random(31)
            for _ in range(3):
                time.sleep(rng.uniform(0.2, 1.0))
                own_redis.stop()
                time.sleep(rng.uniform(0.1, 1.5))
                own_redis.start()
            time.sleep(rng.uniform(0, 0.5))
            stop.set()
            writer.join(timeout=60)
            assert not failures, failures
            assert len(sent) > 20
            sent = len(sent)
            wait_until(lambda: app.test_client().get("/healthz").status_code == 200,
                       what="health ok after Redis is back")
            from meiqia.models import Message

            stored = {c: [m.id for m in Message.select().where(Message.conversation == c)
                          .order_by(Message.id)] for _, c in chats}
            # Every message written is stored once (besides them: each chat's
            # handover line, stored when it was assigned, before the writer began).
            written = Message.select().where(
                Message.conversation.in_([c for _, c in chats]),
                Message.sender_kind.in_(("visitor", "agent"))).count()
            assert written == sent
            # Once each, and in order within each conversation (the protocol's
            # order is per conversation, by seq: docs/protocol.md).
            for _, c in chats:
                mine = [i for i in stored[c] if i > before]
                got = [i for i in _message_ids(agent, mine[-1]) if i in set(stored[c])]
                assert got == mine
            for socket, (_, c) in zip(visitors, chats, strict=True):
                mine = {f["data"]["message"]["id"] for f in socket.seen if f["type"] == "ack"}
                theirs = [i for i in stored[c] if i not in mine]
                if theirs:  # (his own may come as a message too: issue 13 item 3)
                    got = _message_ids(socket, theirs[-1])
                    assert [i for i in got if i not in mine] == theirs
                    assert len(got) == len(set(got))
    finally:
        Socket.close_all()
        server.stop()
        close_app(app)


def _message_ids(socket, last_id):
    """The ids of the message frames a socket got, waiting until ``last_id``."""
    if not any(f["type"] == "message" and f["id"] == last_id for f in socket.seen):
        socket.expect("message", where=lambda d: d.get("id") == last_id, timeout=30)
    socket.quiet("message", 0.3)
    return [f["id"] for f in socket.seen if f["type"] == "message"]


def test_a_listener_connection_cut_while_redis_stays_up_resyncs(own_redis):
    """The listener's connection is dropped (``CLIENT KILL TYPE pubsub``: a proxy or
    a network blip) while Redis stays up; whether the client library reconnects
    inside its read or the listener does, the local subscriptions resync."""
    import redis

    from meiqia.hub import RedisHub
    from meiqia.hub import make_redis

    hub = RedisHub(make_redis(own_redis.url, 0.2), "cut")
    admin = redis.Redis.from_url(own_redis.url)
    try:
        assert hub.wait_ready()
        sub = hub.subscribe(["conversation:1"])
        for _ in range(3):
            assert sub.take_resync() is None
            assert admin.client_kill_filter(_type="pubsub") >= 1
            wait_until(lambda: sub.resync_since is not None, timeout=10,
                       what="a resync after the cut")
            wait_until(lambda: hub.health()["ok"], what="listening again")
            sub.take_resync()
            sub.drain()
        hub.publish("conversation:1", {"type": "message", "data": {"id": 1}})
        assert wait_until(lambda: sub.get(timeout=0.1), what="live again") == (
            "conversation:1", {"type": "message", "data": {"id": 1}})
    finally:
        admin.close()
        hub.close()


def test_a_redis_outage_is_one_warning_in_the_hub_log_not_one_per_publish(own_redis, caplog):
    """Redis down: every publish fails and the listener retries, and the log says
    each once, then once that it works again, with the count. A 20 s outage used to
    log a warning per publish (96 in a web process) and one per listener retry."""
    import logging

    from meiqia.hub import RedisHub
    from meiqia.hub import make_redis

    caplog.set_level(logging.INFO, logger="meiqia.hub")
    hub = RedisHub(make_redis(own_redis.url, 0.2), "quiet")
    try:
        assert hub.wait_ready()
        own_redis.stop()
        for n in range(40):
            hub.publish("conversation:1", {"type": "message", "data": {"id": n}})
        # The listener retries with backoff; three failed retries are enough to tell.
        wait_until(lambda: hub._listen_log.count >= 3, what="the listener retrying")
        own_redis.start()
        wait_until(lambda: hub.health()["ok"], what="the hub back (listener, announced)")
        hub.publish("conversation:1", {"type": "message", "data": {"id": 40}})
        lines = [r.getMessage() for r in caplog.records if r.name == "meiqia.hub"]
        failed = [line for line in lines if "publish to conversation:1 failed" in line]
        assert len(failed) == 1, lines
        assert [line for line in lines if "publishing to Redis works again" in line
                and "40 failure(s)" in line], lines
        lost = [line for line in lines if "listener lost connection" in line]
        assert len(lost) == 1, lines
        assert [line for line in lines if "Redis listener works again" in line], lines
    finally:
        hub.close()
