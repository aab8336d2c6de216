"""Issue 15 §9 across processes: two gunicorn servers on one PostgreSQL share the
upload quota (it is counted in the database, not in a process).

One visitor's twelve uploads, sent at once half to each server, limit four:
exactly four are stored, the rest are 429s with Retry-After, whichever process
took which.
"""

from __future__ import annotations

import json
import os
import threading
import urllib.error
import urllib.request
import uuid

import pytest

from meiqia.models import Attachment
from tests.conftest import close_app
from tests.conftest import make_app
from tests.conftest import truncate_all
from tests.integration.test_two_processes import Http
from tests.integration.test_two_processes import Server


@pytest.fixture
def servers(tmp_path, pg_database_url, redis_url, redis_prefix):
    app = make_app(tmp_path, DATABASE_URL=pg_database_url)  # creates the schema
    close_app(app)
    truncate_all(pg_database_url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEIQIA_")}
    env.update({
        "MEIQIA_DATABASE_URL": pg_database_url, "MEIQIA_REDIS_URL": redis_url,
        "MEIQIA_REDIS_PREFIX": redis_prefix, "MEIQIA_SECRET_KEY": "quota-secret",
        "MEIQIA_INSTANCE_PATH": str(tmp_path / "instance"), "PYTHONUNBUFFERED": "1",
        "MEIQIA_UPLOAD_QUOTA_VISITOR_COUNT": "4", "MEIQIA_BOT_WARM_UP": "false",
    })
    running = []
    try:
        for name in ("a", "b"):
            running.append(Server(env, tmp_path, name))
        yield running, pg_database_url
    finally:
        for server in running:
            server.stop()


def multipart(data: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"a.txt\"\r\nContent-Type: text/plain\r\n\r\n").encode() + data + \
        f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def test_two_processes_share_one_visitor_quota(servers, tmp_path):
    (a, b), url = servers
    admin = Http()
    data = admin.call("POST", a.url("/api/v1/auth/register"), {
        "team_name": "配额", "name": "管理员", "email": "admin@example.com",
        "password": "quota-pass-1"})
    session = Http().call("POST", b.url("/api/v1/widget/session"),
                          {"team_id": data["team"]["id"]})
    token, cid = session["token"], session["conversation"]["conversation_id"]
    results: list[tuple[int, str | None]] = []
    barrier = threading.Barrier(12)

    def one(server) -> None:
        body, content_type = multipart(b"hello")
        request = urllib.request.Request(
            server.url(f"/api/v1/widget/conversations/{cid}/uploads?kind=file"), data=body,
            method="POST", headers={"Content-Type": content_type, "X-Visitor-Token": token})
        barrier.wait()
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                results.append((response.status, None))
        except urllib.error.HTTPError as exc:
            results.append((exc.code, exc.headers.get("Retry-After")))
            json.loads(exc.read())  # an error body, not a crash page

    threads = [threading.Thread(target=one, args=((a, b)[i % 2],)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert sorted(code for code, _ in results) == [201] * 4 + [429] * 8, results
    assert all(int(after) > 0 for code, after in results if code == 429)
    app = make_app(tmp_path / "check", DATABASE_URL=url)
    try:
        with app.app_context():
            assert Attachment.select().where(Attachment.conversation == cid).count() == 4
    finally:
        close_app(app)

