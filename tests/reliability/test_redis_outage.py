"""Fault (a): Redis stops in the middle of a conversation, in production mode
(``REDIS_URL`` set: Redis pub/sub hub and rq queue), then comes back on the
same port.

What the system does, as these tests pin it down:

* ``/healthz`` answers 503 ``unhealthy`` naming the hub and the queue, each
  with the client's error.
* Messages are still stored and acknowledged, over the socket and over HTTP
  (the database is the truth, the hub only notifies): nothing acknowledged is
  lost. Live delivery to other sockets stops; a socket that reconnects with
  ``?after=`` gets what it missed.
* Work that needs the queue (an export) answers 503 ``unavailable`` and leaves
  no export row that would never run.
* Redis back: health is ok again and events flow to the sockets that stayed
  open, without restarting the app (the hub's listener reconnects by itself).
"""

from __future__ import annotations

import datetime
import json

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
            visitor.send("message", {"body": "Redis 回来了", "client_msg_id": "r4"})
            visitor.expect("ack")
            # The sockets that stayed open through the outage hear it live again.
            agent.expect("message", where=lambda d: d.get("body") == "Redis 回来了", timeout=30)
            late.expect("message", where=lambda d: d.get("body") == "Redis 回来了", timeout=30)
            api.post(f"/api/v1/conversations/{cid}/messages",
                     json={"body": "收到", "client_msg_id": "a2"})
            visitor.expect("message", where=lambda d: d.get("body") == "收到", timeout=30)
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
