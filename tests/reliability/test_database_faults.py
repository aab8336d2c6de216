"""Fault (b): the database busy, cut or unreachable.

* SQLite locked by another connection holding a write transaction: a write
  waits for the lock (busy timeout) and lands once it is free; held past the
  timeout, the request answers 503 ``unavailable`` with ``Retry-After``, stores
  nothing, and the client's resend (same ``client_msg_id``) is stored once.
* PostgreSQL backends terminated (``pg_terminate_backend``, as a restart or a
  failover does): the next request gets a fresh connection and succeeds.
* PostgreSQL unreachable (its TCP path cut by a forwarder the test controls):
  requests answer 503, ``/healthz`` says the database is down and why; when the
  path is back, the same process serves again without a restart.
"""

from __future__ import annotations

import contextlib
import socket
import sqlite3
import threading
from urllib.parse import urlparse

import psycopg2

from meiqia.models import Message
from tests.conftest import close_app
from tests.conftest import make_app
from tests.conftest import truncate_all
from tests.helpers import ApiClient
from tests.helpers import new_client_id
from tests.helpers import wait_until
from tests.servers import free_port


def open_chat(app):
    """An admin online with the bot off, and a visitor talking to him."""
    api = ApiClient.registered(app)
    assert api.patch("/api/v1/team", json={"settings": {"bot_enabled": False}}
                     ).status_code == 200
    assert api.patch(f"/api/v1/agents/{api.agent['id']}", json={
        "status": "online", "max_concurrent": 5}).status_code == 200
    api.workspace_open()
    visitor = app.test_client()
    data = visitor.post("/api/v1/widget/session", json={"team_id": api.team["id"]}).get_json()
    return api, visitor, data["token"], data["conversation"]["conversation_id"]


def say(visitor, token, cid, body, client_msg_id):
    return visitor.post(f"/api/v1/widget/conversations/{cid}/messages",
                        headers={"X-Visitor-Token": token},
                        json={"body": body, "client_msg_id": client_msg_id})


def bodies(api, cid):
    response = api.get(f"/api/v1/conversations/{cid}/messages")
    assert response.status_code == 200, response.get_json()
    return [m["body"] for m in response.get_json()["messages"] if m["kind"] == "text"]


def sqlite_lock(app) -> sqlite3.Connection:
    """Another connection (another process would do the same) holding the write lock."""
    path = urlparse(app.config["DATABASE_URL"]).path[1:]
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("UPDATE team SET name = name")
    return holder


def test_sqlite_write_waits_for_the_lock_then_lands(tmp_path):
    app = make_app(tmp_path)  # the default busy timeout: 10 s
    try:
        with app.app_context():
            api, visitor, token, cid = open_chat(app)
            holder = sqlite_lock(app)
            result = {}
            writer = threading.Thread(target=lambda: result.update(
                response=say(app.test_client(), token, cid, "锁着的时候发的", "w1")))
            writer.start()
            writer.join(1.0)
            assert writer.is_alive()  # waiting on the lock, not failed
            assert Message.select().where(Message.body == "锁着的时候发的").count() == 0
            holder.execute("COMMIT")
            holder.close()
            writer.join(30)
            assert result["response"].status_code == 201, result["response"].get_json()
            assert bodies(api, cid) == ["锁着的时候发的"]
    finally:
        close_app(app)


def test_sqlite_lock_held_past_the_timeout_is_a_clear_503_and_loses_nothing(tmp_path):
    app = make_app(tmp_path, DATABASE_BUSY_TIMEOUT=0.3)
    try:
        with app.app_context():
            api, visitor, token, cid = open_chat(app)
            assert say(visitor, token, cid, "第一句", "m1").status_code == 201
            holder = sqlite_lock(app)
            refused = say(visitor, token, cid, "第二句", "m2")
            assert refused.status_code == 503
            assert refused.headers["Retry-After"]
            error = refused.get_json()["error"]
            assert error["code"] == "unavailable" and "database" in error["message"]
            # An agent's write and a form page are refused the same way.
            note = api.post(f"/api/v1/conversations/{cid}/messages",
                            json={"client_msg_id": new_client_id(), "body": "备注", "mode": "internal"})
            assert note.status_code == 503
            holder.execute("ROLLBACK")
            holder.close()
            # Not acknowledged, so the widget resends: stored once.
            again = say(visitor, token, cid, "第二句", "m2")
            assert again.status_code == 201 and not again.get_json()["duplicate"]
            assert say(visitor, token, cid, "第二句", "m2").get_json()["duplicate"]
            assert bodies(api, cid) == ["第一句", "第二句"]
    finally:
        close_app(app)


@contextlib.contextmanager
def served(tmp_path, **config):
    """An app behind a real threaded server (websockets), torn down whatever happens."""
    from tests.ws.conftest import LiveServer
    from tests.ws.conftest import Socket

    app = make_app(tmp_path, **config)
    server = LiveServer(app)
    try:
        with app.app_context():
            yield app, server
    finally:
        Socket.close_all()
        server.stop()
        close_app(app)


def unlock_then_resend(holder, socket, api, cid, body, client_msg_id):
    """The lock goes; the client's resend (same id) is acknowledged and stored once."""
    holder.execute("ROLLBACK")
    holder.close()
    socket.send("message", {"body": body, "client_msg_id": client_msg_id})
    ack = socket.expect("ack", timeout=30)["data"]
    assert ack["client_msg_id"] == client_msg_id and not ack["duplicate"]
    assert bodies(api, cid) == [body]


def test_a_socket_frame_during_a_lock_is_refused_and_the_socket_lives(tmp_path):
    from tests.ws.conftest import Socket

    with served(tmp_path, DATABASE_BUSY_TIMEOUT=0.3) as (app, server):
        api, visitor, token, cid = open_chat(app)
        socket = Socket(server.url(f"/ws/visitor?token={token}"))
        socket.expect("hello")
        holder = sqlite_lock(app)
        socket.send("message", {"body": "锁住时", "client_msg_id": "s1"})
        error = socket.expect("error", timeout=30)["data"]
        assert error["code"] == "unavailable"
        unlock_then_resend(holder, socket, api, cid, "锁住时", "s1")


def test_postgres_backends_terminated_then_the_next_request_reconnects(pg_app):
    api, visitor, token, cid = open_chat(pg_app)
    assert say(visitor, token, cid, "断开以前", "p1").status_code == 201
    url = pg_app.config["DATABASE_URL"]
    killer = psycopg2.connect(url)
    killer.autocommit = True
    with killer.cursor() as cur:
        cur.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()")
        assert cur.fetchone()[0] >= 1  # the app's pooled connections
    killer.close()
    from meiqia.db import database

    if not database.is_closed():  # the test's own app-context connection died too
        database.obj.manual_close()
    assert say(visitor, token, cid, "断开以后", "p2").status_code == 201
    assert bodies(api, cid) == ["断开以前", "断开以后"]
    assert pg_app.test_client().get("/healthz").status_code == 200


class Forwarder:
    """A TCP path to PostgreSQL that the test can cut and restore on the same port."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self.listener: socket.socket | None = None
        self.pairs: list[socket.socket] = []
        self.lock = threading.Lock()

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.pairs += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self) -> None:
        """Refuse new connections and reset the open ones."""
        if self.listener is not None:
            try:  # wakes the blocked accept(); close() alone would leave it listening
                self.listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.listener.close()
            self.listener = None
        with self.lock:
            pairs, self.pairs = self.pairs, []
        for s in pairs:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()


def test_postgres_unreachable_is_503_and_health_says_why_then_recovers(
        tmp_path, pg_database_url):
    parsed = urlparse(pg_database_url)
    path = Forwarder((parsed.hostname or "127.0.0.1", parsed.port or 5432))
    path.start()
    url = parsed._replace(netloc=f"{parsed.username}@127.0.0.1:{path.port}").geturl()
    app = make_app(tmp_path, DATABASE_URL=url)
    truncate_all(pg_database_url)
    try:
        with app.app_context():
            api, visitor, token, cid = open_chat(app)
            assert say(visitor, token, cid, "断网以前", "u1").status_code == 201
            from meiqia.db import database

            database.close()
            path.cut()

            health = app.test_client().get("/healthz")
            assert health.status_code == 503
            data = health.get_json()
            assert data["status"] == "unhealthy" and not data["database"]["ok"]
            assert data["database"]["error"]  # the driver's reason, e.g. refused
            refused = say(visitor, token, cid, "断网时", "u2")
            assert refused.status_code == 503
            assert refused.get_json()["error"]["code"] == "unavailable"
            assert api.get("/api/v1/me").status_code == 503

            path.start()  # back, same address: no restart of the app
            wait_until(lambda: app.test_client().get("/healthz").status_code == 200,
                       what="health back")
            assert say(visitor, token, cid, "断网时", "u2").status_code == 201  # the resend
            assert bodies(api, cid) == ["断网以前", "断网时"]
    finally:
        path.cut()
        close_app(app)


def test_a_socket_opened_during_a_lock_stays_open_and_records_presence_later(tmp_path):
    """Connecting writes presence; with the lock held that write fails. The socket used
    to close with 1011 then, the widget reconnected into the same wait, and its message
    never got the ``unavailable`` answer it is resent on."""
    from meiqia.models import Visitor
    from tests.ws.conftest import Socket
    from tests.ws.conftest import cookie_of

    with served(tmp_path, DATABASE_BUSY_TIMEOUT=0.3) as (app, server):
        api, visitor, token, cid = open_chat(app)
        holder = sqlite_lock(app)
        agent = Socket(server.url("/ws/agent"), cookie=cookie_of(api))
        assert agent.expect("hello", timeout=30)["data"]["agent_id"] == api.agent["id"]
        socket = Socket(server.url(f"/ws/visitor?token={token}"))
        socket.expect("hello", timeout=30)
        socket.send("message", {"body": "连上时锁着", "client_msg_id": "c1"})
        assert socket.expect("error", timeout=30)["data"]["code"] == "unavailable"
        assert Visitor.select().get().online_until is None
        unlock_then_resend(holder, socket, api, cid, "连上时锁着", "c1")
        assert Visitor.select().get().online_until is not None


def _until_acked(socket, body, client_msg_id, timeout=30.0):
    """What docs/protocol.md asks of a client: send, and on ``unavailable`` send the
    same message again (same client_msg_id) until it is acknowledged."""
    import json
    import time

    deadline = time.monotonic() + timeout
    socket.send("message", {"body": body, "client_msg_id": client_msg_id})
    while time.monotonic() < deadline:
        raw = socket.ws.receive(timeout=max(0.01, deadline - time.monotonic()))
        if raw is None:
            continue
        frame = json.loads(raw)
        socket.seen.append(frame)
        data = frame["data"]
        if frame["type"] == "ack" and data["client_msg_id"] == client_msg_id:
            return data["message"]["id"]
        if frame["type"] == "error" and data.get("ref") == client_msg_id:
            assert data["code"] == "unavailable", data
            time.sleep(0.2)
            socket.send("message", {"body": body, "client_msg_id": client_msg_id})
    raise AssertionError(f"{client_msg_id} not acknowledged within {timeout} s")


def test_postgres_restart_mid_conversation_loses_and_doubles_nothing(tmp_path, own_postgres):
    """PostgreSQL restarts (``pg_ctl restart -m fast``, every connection cut) while a
    visitor keeps writing over his socket and an agent listens: frames that hit the
    restart are refused as ``unavailable`` and resent, both sockets stay open, and
    the agent ends with every stored message once, in order; each is stored once."""
    import threading

    from tests.ws.conftest import Socket
    from tests.ws.conftest import cookie_of

    with served(tmp_path, DATABASE_URL=own_postgres.url) as (app, server):
        api, _, token, cid = open_chat(app)
        agent = Socket(server.url("/ws/agent"), cookie=cookie_of(api))
        agent.expect("hello")
        visitor = Socket(server.url(f"/ws/visitor?token={token}"))
        visitor.expect("hello")
        acked = [_until_acked(visitor, "重启前", "p0")]
        restart = threading.Thread(target=own_postgres.restart)
        restart.start()
        n = 1
        while restart.is_alive() or n < 10:
            acked.append(_until_acked(visitor, f"重启中 {n}", f"p{n}"))
            n += 1
        restart.join()
        acked.append(_until_acked(visitor, "重启后", "p-end"))
        assert bodies(api, cid) == ["重启前", *(f"重启中 {i}" for i in range(1, n)), "重启后"]
        assert len(set(acked)) == len(acked)
        agent.expect("message", where=lambda d: d.get("id") == acked[-1], timeout=30)
        assert [f["id"] for f in agent.seen if f["type"] == "message"] == acked
        refused = [f for f in visitor.seen if f["type"] == "error"]
        # The restart was felt (the pool's connections died with it), and only so.
        assert refused and all(f["data"]["code"] == "unavailable" for f in refused)
        assert app.test_client().get("/healthz").status_code == 200


def test_a_database_outage_is_one_warning_in_the_socket_log_not_one_per_frame(
        tmp_path, own_postgres, caplog):
    """PostgreSQL stopped while a visitor keeps sending: each frame is refused as
    ``unavailable``, and the log says so once, on one line (psycopg2's text has
    ``\\n\\t`` in it), then once that frames go through again, with the count. It
    used to be a two-line warning per refused frame."""
    import logging

    from tests.ws.conftest import Socket

    with served(tmp_path, DATABASE_URL=own_postgres.url) as (app, server):
        api, _, token, cid = open_chat(app)
        visitor = Socket(server.url(f"/ws/visitor?token={token}"))
        visitor.expect("hello")
        caplog.set_level(logging.INFO, logger="meiqia.web.ws")
        own_postgres.halt()
        for n in range(6):
            visitor.send("message", {"body": f"停库时 {n}", "client_msg_id": f"d{n}"})
            assert visitor.expect("error", timeout=30)["data"]["code"] == "unavailable"
        own_postgres.start()
        _until_acked(visitor, "恢复后", "d-end")
        refused = [f for f in visitor.seen if f["type"] == "error"]

        def logged() -> list[str]:
            return [r.getMessage() for r in caplog.records if r.name == "meiqia.web.ws"]

        # Logged as the frame's handling ends, just after its ack went out.
        wait_until(lambda: any("works again" in line for line in logged()),
                   what="the line saying frames go through again")
        lines = logged()
        warned = [line for line in lines if "database unavailable for a message frame" in line]
        assert len(warned) == 1, lines
        assert "\n" not in warned[0], warned
        again = [line for line in lines if "works again" in line]
        assert len(again) == 1 and f"{len(refused)} failure(s)" in again[0], lines


def test_a_resend_of_a_message_stored_but_never_published_reaches_every_socket(tmp_path):
    """The connection drops during COMMIT: PostgreSQL stored the message, the client
    saw an error and resends it (same client_msg_id). The resend is acknowledged as a
    duplicate, and the conversation's other sockets, which never heard of it, get it
    from the database, once (a second tab of the sender too)."""
    from meiqia.models import Message
    from meiqia.models.base import utcnow
    from tests.ws.conftest import Socket
    from tests.ws.conftest import cookie_of

    with served(tmp_path) as (app, server):
        api, _, token, cid = open_chat(app)
        agent = Socket(server.url("/ws/agent"), cookie=cookie_of(api))
        agent.expect("hello")
        sender = Socket(server.url(f"/ws/visitor?token={token}"))
        sender.expect("hello")
        tab = Socket(server.url(f"/ws/visitor?token={token}"))
        tab.expect("hello")
        # What the lost COMMIT left: the row, and no event.
        # (The row as post_message writes it: with its seq, taken in the same
        # transaction, so the lost COMMIT leaves a positioned message.)
        from meiqia.db import database
        from meiqia.services import delivery

        with database.atomic():
            seq = delivery.next_position(cid)[0]
            stored = Message.create(conversation=cid, sender_kind="visitor", body="提交时断线",
                                    client_msg_id="lost-1", created_at=utcnow(), seq=seq)
        assert agent.quiet("message", 0.3)
        sender.send("message", {"body": "提交时断线", "client_msg_id": "lost-1"})
        # Acknowledged with the stored message. (The resync this resend starts can
        # reach the sender's own socket before its ack: then that catch-up is the
        # ack, marked duplicate false, and the duplicate ack that follows carries a
        # seq at or below its position, which moves nothing: docs/protocol.md.)
        ack = sender.expect("ack")["data"]
        assert ack["message"]["id"] == stored.id
        assert sender.quiet("message", 0.3, where=lambda d: d.get("id") == stored.id)
        for socket in (agent, tab):
            frame = socket.expect("message", where=lambda d: d.get("id") == stored.id)
            assert frame["data"]["body"] == "提交时断线"
        # Resent again: acknowledged again, and nobody gets it a second time.
        sender.send("message", {"body": "提交时断线", "client_msg_id": "lost-1"})
        assert sender.expect("ack")["data"]["duplicate"]
        sender.send("message", {"body": "下一句", "client_msg_id": "next-1"})
        sender.expect("ack")
        for socket in (agent, tab):
            socket.expect("message", where=lambda d: d.get("body") == "下一句")
            assert [f["id"] for f in socket.seen if f["type"] == "message"].count(stored.id) == 1
