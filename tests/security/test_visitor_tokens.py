"""Issue 15, item 11: visitor tokens expire, renew silently, and no token reaches a log.

The attacks: read ``?token=`` (visitor) or ``?api_token=`` (agent) in an access
log and use it; use a visitor token from a log months later.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import socket
import subprocess
import sys
import time
from http.client import HTTPConnection
from pathlib import Path
from typing import Any

import pytest
import requests
from itsdangerous import TimestampSigner
from itsdangerous import URLSafeSerializer
from itsdangerous import URLSafeTimedSerializer

from meiqia.models import Visitor
from meiqia.web.security import VISITOR_TOKEN_SALT
from tests.api.test_conversations import start
from tests.conftest import close_app
from tests.conftest import make_app
from tests.helpers import ApiClient
from tests.helpers import wait_until
from tests.ws.conftest import Client
from tests.ws.conftest import LiveServer
from tests.ws.conftest import Socket

ROOT = Path(__file__).resolve().parents[2]


def aged_token(app: Any, token: str, days: float) -> str:
    """The same visitor's token as if issued ``days`` ago (a stand-in clock for
    itsdangerous' signer only; our code reads the token as it would any)."""
    data = URLSafeTimedSerializer(app.config["SECRET_KEY"], salt=VISITOR_TOKEN_SALT).loads(token)
    issued = int(time.time() - days * 86400)

    class Then(TimestampSigner):
        def get_timestamp(self) -> int:
            return issued

    return URLSafeTimedSerializer(app.config["SECRET_KEY"], salt=VISITOR_TOKEN_SALT,
                                  signer=Then).dumps(data)


def test_a_session_says_when_its_token_expires(api):
    _, _, _, session = start(api.app, api.team["id"])
    expires = datetime.datetime.fromisoformat(session["token_expires_at"].rstrip("Z"))
    left = expires - datetime.datetime.utcnow()
    assert datetime.timedelta(days=29, hours=23) < left <= datetime.timedelta(days=30)
    assert session["renew_key"] and session["renew_key"] not in session["token"]


def test_an_expired_token_is_refused_with_its_own_code(api):
    client, token, cid, _ = start(api.app, api.team["id"])
    old = aged_token(api.app, token, days=31)
    response = client.get(f"/api/v1/widget/conversations/{cid}/messages",
                          headers={"X-Visitor-Token": old})
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "token_expired"
    zh = client.get(f"/api/v1/widget/conversations/{cid}/messages?lang=zh-CN",
                    headers={"X-Visitor-Token": old})
    assert zh.get_json()["error"]["message"] == "访客令牌已过期：请续期或重新开始会话"
    # 29 days old: still good.
    fine = aged_token(api.app, token, days=29)
    assert client.get(f"/api/v1/widget/conversations/{cid}/messages",
                      headers={"X-Visitor-Token": fine}).status_code == 200


def test_renewal_needs_the_renewal_key_which_no_url_carries(api):
    client, token, cid, session = start(api.app, api.team["id"])
    old = aged_token(api.app, token, days=45)
    # Whoever read the token in a log has no renewal key.
    for key in (None, "", "0" * 43, session["renew_key"][:-1] + "x"):
        body = {"token": old, "renew_key": key} if key is not None else {"token": old}
        assert client.post("/api/v1/widget/token", json=body).status_code in {401, 422}
    renewed = client.post("/api/v1/widget/token",
                          json={"token": old, "renew_key": session["renew_key"]})
    assert renewed.status_code == 200, renewed.get_json()
    fresh = renewed.get_json()["token"]
    mine = client.get(f"/api/v1/widget/conversations/{cid}/messages",
                      headers={"X-Visitor-Token": fresh})
    assert mine.status_code == 200
    # A forged token is no token, renewal key or not.
    assert client.post("/api/v1/widget/token", json={
        "token": old[:-2] + "xx", "renew_key": session["renew_key"]}).status_code == 401


def test_a_non_ascii_renewal_key_or_token_is_refused_not_a_crash(api):
    """hmac.compare_digest refuses str with non-ASCII (TypeError, a 500): a renewal
    key or token holding Chinese is a wrong one, 401 as docs/protocol.md says."""
    client, token, cid, session = start(api.app, api.team["id"])
    for body in ({"token": token, "renew_key": "错误"},
                 {"token": aged_token(api.app, token, days=45), "renew_key": "é" * 43},
                 {"token": "令牌", "renew_key": "错误"}):
        response = client.post("/api/v1/widget/token", json=body)
        assert response.status_code == 401, (body, response.get_json())
        assert response.get_json()["error"]["code"] == "unauthorized"
    wrong = client.post("/api/v1/widget/token?lang=zh-CN",
                        json={"token": token, "renew_key": "错误"}).get_json()["error"]
    assert wrong["field"] == "renew_key" and wrong["message"] == "续期密钥：续期密钥不正确"
    # The session's resume path takes the same check.
    resumed = client.post("/api/v1/widget/session", json={
        "team_id": api.team["id"], "token": aged_token(api.app, token, days=45),
        "renew_key": "错误"})
    assert resumed.status_code == 200
    assert resumed.get_json()["conversation"]["conversation_id"] != cid


def test_a_renewal_names_the_field_it_refuses(api):
    """Found from docs/protocol.md: a forged token answered 401 with ``"field": null``
    while a wrong key named ``renew_key``. The client is told which of the two it sent
    is wrong: a token that is not genuine names ``token``, in both languages."""
    client, token, cid, session = start(api.app, api.team["id"])
    key = session["renew_key"]
    foreign = URLSafeTimedSerializer("another secret", salt=VISITOR_TOKEN_SALT).dumps(
        URLSafeTimedSerializer(api.app.config["SECRET_KEY"], salt=VISITOR_TOKEN_SALT).loads(token))
    nobody = URLSafeTimedSerializer(api.app.config["SECRET_KEY"], salt=VISITOR_TOKEN_SALT).dumps(
        {"v": "no-such-visitor", "t": api.team["id"]})
    for forged in (token[:-2] + ("xx" if not token.endswith("xx") else "yy"),
                   aged_token(api.app, token, days=45)[:-3] + "abc", token + "令牌",
                   foreign, nobody, "令牌"):
        for lang, message in (("en", "invalid visitor token"), ("zh-CN", "访客令牌无效")):
            response = client.post(f"/api/v1/widget/token?lang={lang}",
                                   json={"token": forged, "renew_key": key})
            assert response.status_code == 401, (forged, response.get_json())
            error = response.get_json()["error"]
            assert (error["code"], error["field"], error["message"]) == (
                "unauthorized", "token", message), (forged, error)
    # A forged token and a wrong key: the token is named, it is checked first.
    error = client.post("/api/v1/widget/token", json={"token": foreign,
                                                      "renew_key": "x" * 43}).get_json()["error"]
    assert error["field"] == "token"
    # An empty token names it too.
    error = client.post("/api/v1/widget/token", json={"token": "",
                                                      "renew_key": key}).get_json()["error"]
    assert (error["code"], error["field"]) == ("unauthorized", "token")
    # A genuine token with a wrong key names the key, as before.
    error = client.post("/api/v1/widget/token", json={"token": token,
                                                      "renew_key": "x" * 43}).get_json()["error"]
    assert (error["code"], error["field"]) == ("unauthorized", "renew_key")


def test_a_token_is_exact_or_refused(api):
    """Found from outside: itsdangerous drops non-ASCII characters before it decodes a
    signature, so a genuine token with "令牌" appended was taken (200)."""
    client, token, cid, session = start(api.app, api.team["id"])
    path = f"/api/v1/widget/conversations/{cid}/messages"
    assert client.get(path, headers={"X-Visitor-Token": token}).status_code == 200
    for spoiled in (token + "令牌", "令" + token, token.replace(".", "。", 1), token + " "):
        response = client.get(path, headers={"X-Visitor-Token": spoiled})
        assert response.status_code == 401, (spoiled, response.get_json())
        renewed = client.post("/api/v1/widget/token", json={
            "token": spoiled, "renew_key": session["renew_key"]})
        assert renewed.status_code == 401, (spoiled, renewed.get_json())
    assert client.post("/api/v1/widget/token", json={
        "token": token, "renew_key": session["renew_key"]}).status_code == 200


def test_the_widget_resumes_its_conversation_with_an_expired_token_and_its_key(api):
    app = api.app
    client, token, cid, session = start(app, api.team["id"])
    old = aged_token(app, token, days=60)
    body = {"team_id": api.team["id"], "token": old, "renew_key": session["renew_key"]}
    resumed = client.post("/api/v1/widget/session", json=body).get_json()
    assert resumed["conversation"]["conversation_id"] == cid
    # Without the key, the expired token is worth nothing: a new visitor.
    stranger = client.post("/api/v1/widget/session",
                           json={"team_id": api.team["id"], "token": old}).get_json()
    assert stranger["conversation"]["conversation_id"] != cid
    assert Visitor.select().count() == 2


def issued_at(app: Any, token: str) -> datetime.datetime:
    """When the token was signed (UTC, naive)."""
    _, when = URLSafeTimedSerializer(app.config["SECRET_KEY"], salt=VISITOR_TOKEN_SALT).loads(
        token, return_timestamp=True)
    return when.replace(tzinfo=None)


def test_a_token_alone_gets_neither_the_renewal_key_nor_a_longer_life(api):
    """Found from outside: the session route, given a live token and nothing else
    (what an access log shows), answered the visitor's renew_key and a fresh 30-day
    token, so a token read from a log could be renewed for ever."""
    app = api.app
    client, token, cid, session = start(app, api.team["id"])
    leaked = aged_token(app, token, days=10)
    for key in (None, "", "0" * 43):
        body = {"team_id": api.team["id"], "token": leaked}
        if key is not None:
            body["renew_key"] = key
        answer = client.post("/api/v1/widget/session", json=body)
        assert answer.status_code == 200, answer.get_json()
        data = answer.get_json()
        # The same visitor and conversation: a token is worth its remaining lifetime...
        assert data["conversation"]["conversation_id"] == cid
        # ...and no more: no key, the same token, its own expiry (20 days left).
        assert data["renew_key"] is None, key
        assert data["token"] == leaked
        expires = datetime.datetime.fromisoformat(data["token_expires_at"].rstrip("Z"))
        assert abs(expires - (issued_at(app, leaked) + datetime.timedelta(days=30))) \
            <= datetime.timedelta(seconds=1)
        assert session["renew_key"] not in answer.get_data(as_text=True)
    # Nothing he got renews the token.
    assert client.post("/api/v1/widget/token", json={
        "token": leaked, "renew_key": ""}).status_code in {401, 422}
    assert Visitor.select().count() == 1

    # The widget, which sends the key it stored, gets a fresh token and the key back.
    reload = client.post("/api/v1/widget/session", json={
        "team_id": api.team["id"], "token": leaked, "renew_key": session["renew_key"]})
    data = reload.get_json()
    assert data["renew_key"] == session["renew_key"]
    assert data["conversation"]["conversation_id"] == cid
    assert issued_at(app, data["token"]) > issued_at(app, leaked) + datetime.timedelta(days=9)
    left = datetime.datetime.fromisoformat(data["token_expires_at"].rstrip("Z")) \
        - datetime.datetime.utcnow()
    assert left > datetime.timedelta(days=29, hours=23)


def test_renewal_keys_given_out_before_v2_are_void(api):
    """The key is an HMAC of the visitor: those the session route handed to a token
    alone could not be revoked one by one, so the version in it voided them all."""
    import hashlib
    import hmac

    app = api.app
    client, token, cid, session = start(app, api.team["id"])
    visitor = Visitor.get()
    before = hmac.new(app.config["SECRET_KEY"].encode(),
                      f"meiqia.visitor.renew:{visitor.team_id}:{visitor.uid}".encode(),
                      hashlib.sha256).hexdigest()[:43]
    assert before != session["renew_key"]
    old = aged_token(app, token, days=40)
    refused = client.post("/api/v1/widget/token", json={"token": old, "renew_key": before})
    assert refused.status_code == 401
    assert refused.get_json()["error"]["field"] == "renew_key"
    # Live token, old key: the visitor goes on, but gets no key; expired: a new visitor.
    live = client.post("/api/v1/widget/session", json={
        "team_id": api.team["id"], "token": token, "renew_key": before}).get_json()
    assert live["conversation"]["conversation_id"] == cid and live["renew_key"] is None
    dead = client.post("/api/v1/widget/session", json={
        "team_id": api.team["id"], "token": old, "renew_key": before}).get_json()
    assert dead["conversation"]["conversation_id"] != cid


def test_untimed_tokens_of_before_the_upgrade_are_refused(api):
    client, token, cid, _ = start(api.app, api.team["id"])
    visitor = Visitor.get()
    legacy = URLSafeSerializer(api.app.config["SECRET_KEY"], salt="meiqia.visitor").dumps(
        {"v": visitor.uid, "t": visitor.team_id})
    response = client.get(f"/api/v1/widget/conversations/{cid}/messages",
                          headers={"X-Visitor-Token": legacy})
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "unauthorized"


def test_the_socket_answers_an_expired_token_with_token_expired(app, tmp_path):
    api = ApiClient.registered(app)
    _, token, _, _ = start(app, api.team["id"])
    server = LiveServer(app)
    try:
        ws = Socket(server.url(f"/ws/visitor?token={aged_token(app, token, 31)}"))
        assert ws.expect("error")["data"]["code"] == "token_expired"
        fresh = Socket(server.url(f"/ws/visitor?token={aged_token(app, token, 29)}"))
        fresh.expect("hello")
    finally:
        Socket.close_all()
        server.stop()


def test_a_configured_lifetime_is_used(tmp_path):
    app = make_app(tmp_path, VISITOR_TOKEN_DAYS=2)
    try:
        with app.app_context():
            api = ApiClient.registered(app)
            client, token, cid, _ = start(app, api.team["id"])
            url = f"/api/v1/widget/conversations/{cid}/messages"
            for days, status in ((1.5, 200), (2.5, 401)):
                response = client.get(url, headers={"X-Visitor-Token": aged_token(app, token, days)})
                assert response.status_code == status, days
    finally:
        close_app(app)


# --- secrets out of logs ------------------------------------------------------------------


def test_no_token_reaches_the_werkzeug_access_log_or_our_own(app, caplog):
    api = ApiClient.registered(app)
    _, token, _, _ = start(app, api.team["id"])
    created = api.post("/api/v1/tokens", json={"name": "坐席", "scope": "conversations"}).get_json()
    api_token = created["token"]
    server = LiveServer(app)
    caplog.set_level(logging.INFO)
    try:
        for path in (f"/ws/visitor?token={token}&after=0", f"/ws/agent?api_token={api_token}"):
            ws = Client.connect(server.url(path))
            assert json.loads(ws.receive(timeout=5))["type"] == "hello"
            ws.close()
        http = f"http://127.0.0.1:{server.port}"
        requests.get(f"{http}/api/v1/attachments/nope?token={token}", timeout=5)
        requests.get(f"{http}/api/v1/me", headers={"Authorization": f"Bearer {api_token}"},
                     timeout=5)
        # Our own logging, e.g. a warning that quotes a URL.
        logging.getLogger("meiqia.web.ws").warning("odd request to %s",
                                                   f"/ws/agent?api_token={api_token}")
    finally:
        server.stop()
    text = caplog.text
    assert "/ws/visitor?token=[redacted]" in text and "api_token=[redacted]" in text
    assert token not in text and api_token not in text and api_token[3:20] not in text


def test_a_secret_in_a_spelling_the_server_accepts_is_redacted_too(app, caplog):
    """Found from outside: ``/ws/visitor?%74oken=…`` opens the socket (the server
    decodes the name) but the log kept the token; and a password reset link's
    secret, in its path, was logged whole: a log reader could spend it."""
    api = ApiClient.registered(app)
    _, token, _, _ = start(app, api.team["id"])
    li = api.new_agent(name="李客服", email="li@example.com")
    made = api.post(f"/api/v1/agents/{li.agent['id']}/password-reset")
    assert made.status_code == 201, made.get_json()
    secret = made.get_json()["url"].rsplit("/", 1)[1]
    server = LiveServer(app)
    caplog.set_level(logging.INFO)
    try:
        for spelling in ("%74oken", "to%6Ben"):
            # Sent as written (a websocket or requests client would normalise it).
            raw = HTTPConnection("127.0.0.1", server.port, timeout=5)
            raw.request("GET", f"/api/v1/attachments/nope?{spelling}={token}")
            assert raw.getresponse().status == 404  # the token was taken: no such file
            raw.close()
        page = requests.get(f"http://127.0.0.1:{server.port}/reset-password/{secret}",
                            timeout=5)
        assert page.status_code == 200
    finally:
        server.stop()
    text = caplog.text  # werkzeug logs the path decoded; gunicorn's test has it raw
    assert "/reset-password/[redacted]" in text
    assert token not in text and secret not in text


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_no_token_reaches_gunicorns_access_log(tmp_path):
    """The production server with deploy/gunicorn.conf.py, its access log to a file."""
    port = _free_port()
    log_file = tmp_path / "access.log"
    env = {**os.environ, "MEIQIA_SECRET_KEY": "gunicorn-test-secret",
           "MEIQIA_DATABASE_URL": f"sqlite:///{tmp_path}/g.sqlite3", "MEIQIA_REDIS_URL": "",
           "MEIQIA_BOT_WARM_UP": "false", "MEIQIA_BIND": f"127.0.0.1:{port}",
           "MEIQIA_WORKERS": "1", "MEIQIA_WORKER_CLASS": "gthread", "MEIQIA_THREADS": "4",
           "MEIQIA_INSTANCE_PATH": str(tmp_path / "instance")}
    errors = tmp_path / "gunicorn.err"
    with errors.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "deploy" / "gunicorn.conf.py"),
             "--access-logfile", str(log_file), "meiqia.wsgi:app"],
            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
    secret = "mq_" + "S3cretToken" * 3
    visitor = "eyJ2IjoiYWJjIn0.ZZZZZZ.visitorsecretsignature"
    try:
        def answers() -> bool:
            if process.poll() is not None:
                pytest.fail(f"gunicorn did not start: {errors.read_text()[-2000:]}")
            try:
                requests.get(f"http://127.0.0.1:{port}/api/v1/openapi.json", timeout=10)
                return True
            except requests.RequestException:
                return False

        wait_until(answers, 60, f"gunicorn to answer: {errors}")
        base = f"http://127.0.0.1:{port}"
        requests.get(f"{base}/api/v1/attachments/k1?token={visitor}", timeout=5)
        requests.get(f"{base}/api/v1/me?api_token={secret}", timeout=5)
        # The name percent-encoded, as written (the server decodes it and takes it),
        # and a password reset link, whose secret is in its path.
        raw = HTTPConnection("127.0.0.1", port, timeout=5)
        raw.request("GET", f"/api/v1/attachments/k1?%74oken={visitor}")
        raw.getresponse().read()
        raw.request("GET", f"/reset-password/{secret}")
        raw.getresponse().read()
        raw.close()
    finally:
        process.terminate()
        process.wait(timeout=30)
    logged = log_file.read_text()
    assert secret not in errors.read_text() and visitor not in errors.read_text()
    assert "/api/v1/attachments/k1?token=[redacted]" in logged, logged
    assert "/api/v1/attachments/k1?%74oken=[redacted]" in logged, logged
    assert "/reset-password/[redacted]" in logged, logged
    assert secret not in logged and visitor not in logged and "S3cretToken" not in logged
