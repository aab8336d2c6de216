"""Uploads on SQLite and PostgreSQL: who may upload and download, lying types,
oversized bodies, hostile names, and a client that goes away mid-upload.

Conversations are rows made with the models (the conversation service is not
needed to test who may see a file); visitors authenticate with their token.
"""

from __future__ import annotations

import hashlib
import io
import os
import socket
import threading
import tracemalloc
import uuid

import pytest
from werkzeug.serving import make_server

from meiqia.models import Attachment
from meiqia.models import Conversation
from meiqia.models import Visitor
from meiqia.services import uploads
from meiqia.services.errors import NotFound
from meiqia.services.errors import ValidationError
from meiqia.web.security import visitor_token
from tests.helpers import wait_until

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x01" * 64
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x02" * 64
GIF = b"GIF89a" + b"\x03" * 64
WEBP = b"RIFF\x24\x00\x00\x00WEBPVP8 " + b"\x04" * 64
BOUNDARY = "----meiqia-test-boundary"


def multipart(*parts: tuple[str, str | None, bytes]) -> bytes:
    """A multipart/form-data body with the parts in this order: (name, filename, data)."""
    out = b""
    for name, filename, data in parts:
        disposition = f'form-data; name="{name}"'
        if filename is not None:  # a quoted-string, escaped as clients do
            quoted = filename.replace("\\", "\\\\").replace('"', '\\"')
            disposition += f'; filename="{quoted}"'
        out += (f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n"
                "Content-Type: application/octet-stream\r\n\r\n").encode() + data + b"\r\n"
    return out + f"--{BOUNDARY}--\r\n".encode()


CONTENT_TYPE = f"multipart/form-data; boundary={BOUNDARY}"


def make_conversation(app, team_id, status="open", handler=None):
    with app.app_context():
        visitor = Visitor.create(team=team_id, uid=uuid.uuid4().hex, name="张三")
        conversation = Conversation.create(team=team_id, visitor=visitor, status=status,
                                           handler=handler)
        return conversation.id, visitor_token(visitor)


class World:
    """A team with an admin, two agents of scope self, two visitors' conversations."""

    def __init__(self, admin):
        self.admin = admin
        self.app = admin.app
        self.li = admin.new_agent(name="李客服", email="li@example.com", scope="self")
        self.wang = admin.new_agent(name="王客服", email="wang@example.com", scope="self")
        self.cid, self.token = make_conversation(self.app, admin.team["id"],
                                                 handler=self.li.agent["id"])
        self.other_cid, self.other_token = make_conversation(
            self.app, admin.team["id"], handler=self.wang.agent["id"])
        self.client = self.app.test_client()

    def visitor_upload(self, body, cid=None, token=None, query=""):
        cid = cid or self.cid
        return self.client.post(f"/api/v1/widget/conversations/{cid}/uploads{query}",
                                data=body, content_type=CONTENT_TYPE,
                                headers={"X-Visitor-Token": token or self.token})

    def agent_upload(self, agent, body, cid=None, query=""):
        return agent.post(f"/api/v1/conversations/{cid or self.cid}/uploads{query}",
                          data=body, content_type=CONTENT_TYPE)

    def stored(self):
        path = os.path.join(self.app.instance_path, "uploads")
        files = sorted(os.listdir(path)) if os.path.isdir(path) else []
        with self.app.app_context():
            return files, Attachment.select().count()


@pytest.fixture
def world(db_api):
    return World(db_api)


def fetch(client, url, **kw):
    """GET a file and close the response (it streams from disk)."""
    response = client.get(url, **kw)
    response.get_data()
    response.close()
    return response


def test_visitor_uploads_an_image_which_he_and_the_handler_see(world):
    up = world.visitor_upload(multipart(("kind", None, b"image"),
                                        ("file", "截图.png", PNG)))
    assert up.status_code == 201, up.get_json()
    data = up.get_json()
    assert data["is_image"] and data["content_type"] == "image/png"
    assert data["name"] == "截图.png" and data["size"] == len(PNG)
    assert data["url"] == f"/api/v1/attachments/{data['key']}"
    assert world.stored() == ([data["key"]], 1)  # under its random key, no .part left

    got = fetch(world.client, data["url"], headers={"X-Visitor-Token": world.token})
    assert got.status_code == 200 and got.data == PNG
    assert got.mimetype == "image/png"
    assert got.headers["Content-Disposition"].startswith("inline")
    assert got.headers["X-Content-Type-Options"] == "nosniff"
    assert got.headers["Content-Security-Policy"].startswith("default-src 'none'")
    # <img src> cannot send headers: the token may come in the query string.
    assert fetch(world.client, f"{data['url']}?token={world.token}").status_code == 200
    assert fetch(world.li.client, data["url"]).data == PNG
    assert fetch(world.admin.client, data["url"]).status_code == 200


@pytest.mark.parametrize(("content", "content_type"),
                         [(PNG, "image/png"), (JPEG, "image/jpeg"), (GIF, "image/gif"),
                          (WEBP, "image/webp")])
def test_each_image_type_is_known_by_its_content_not_its_name(world, content, content_type):
    up = world.visitor_upload(multipart(("file", "图片.bmp", content)), query="?kind=image")
    assert up.status_code == 201, up.get_json()
    assert up.get_json()["content_type"] == content_type


def test_agent_uploads_a_file_that_downloads_as_an_attachment(world):
    html = "<script>alert(1)</script>发票".encode()
    up = world.agent_upload(world.li, multipart(("kind", None, b"file"),
                                                ("file", "发票.html", html)))
    assert up.status_code == 201, up.get_json()
    data = up.get_json()
    assert data["content_type"] == "application/octet-stream" and not data["is_image"]
    got = fetch(world.client, data["url"], headers={"X-Visitor-Token": world.token})
    assert got.status_code == 200 and got.data == html
    assert got.mimetype == "application/octet-stream"
    disposition = got.headers["Content-Disposition"]
    assert disposition.startswith("attachment") and "%E5%8F%91%E7%A5%A8.html" in disposition
    assert got.headers["X-Content-Type-Options"] == "nosniff"


def test_a_png_sent_as_a_file_is_not_shown_inline(world):
    up = world.visitor_upload(multipart(("kind", None, b"file"), ("file", "a.png", PNG)))
    data = up.get_json()
    assert not data["is_image"] and data["content_type"] == "application/octet-stream"
    got = fetch(world.client, data["url"], headers={"X-Visitor-Token": world.token})
    assert got.headers["Content-Disposition"].startswith("attachment")


def test_others_get_404_for_uploads_and_downloads(world):
    up = world.visitor_upload(multipart(("kind", None, b"image"), ("file", "a.png", PNG)))
    url = up.get_json()["url"]
    # Another visitor: neither this conversation nor its files exist for him.
    assert world.visitor_upload(multipart(("file", "x.txt", b"x")),
                                token=world.other_token).status_code == 404
    assert world.client.get(url, headers={"X-Visitor-Token": world.other_token}).status_code == 404
    # An agent whose scope (self) does not hold the conversation.
    assert world.agent_upload(world.wang, multipart(("file", "x.txt", b"x"))).status_code == 404
    assert world.wang.get(url).status_code == 404
    # Nobody at all, a forged token, a key that does not exist.
    assert world.client.get(url).status_code == 401
    assert world.client.get(url, headers={"X-Visitor-Token": "forged"}).status_code == 401
    assert world.li.get("/api/v1/attachments/" + "A" * 32).status_code == 404
    assert world.li.get("/api/v1/attachments/" + "A" * 300).status_code == 404
    assert world.stored()[1] == 1


def test_another_teams_admin_gets_404(world):
    world.app.config["OPEN_REGISTRATION"] = True
    other = world.app.test_client()
    response = other.post("/api/v1/auth/register", json={
        "team_name": "别的团队", "name": "赵管理", "email": "zhao@example.com",
        "password": "another-pass-1"})
    assert response.status_code == 201
    headers = {"X-CSRF-Token": response.get_json()["csrf_token"]}
    up = world.visitor_upload(multipart(("kind", None, b"image"), ("file", "a.png", PNG)))
    assert other.get(up.get_json()["url"]).status_code == 404
    refused = other.post(f"/api/v1/conversations/{world.cid}/uploads", headers=headers,
                         data=multipart(("file", "x.txt", b"x")), content_type=CONTENT_TYPE)
    assert refused.status_code == 404


@pytest.mark.parametrize(
    ("content", "name"),
    [(b"just text, not a picture", "cat.png"),  # a .png that is not a PNG
     (b"GIF8<script>alert(1)</script>", "cat.gif"),  # almost a GIF
     (b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>', "logo.svg"),
     (b'<?xml version="1.0"?><svg onload="alert(1)"/>', "logo.png")],
)
def test_lying_or_scriptable_images_are_refused_and_leave_nothing(world, content, name):
    response = world.visitor_upload(multipart(("kind", None, b"image"),
                                              ("file", name, content)))
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["field"] == "file" and "not a PNG, JPEG, GIF or WebP" in error["message"]
    assert name in error["message"]
    assert world.stored() == ([], 0)


def test_empty_file_is_refused(world):
    response = world.visitor_upload(multipart(("file", "空.txt", b"")))
    assert response.status_code == 422
    assert response.get_json()["error"]["message"] == "file: the file is empty"
    assert world.stored() == ([], 0)


@pytest.mark.parametrize(
    ("raw", "shown"),
    [("../../etc/passwd", "passwd"),
     ("..\\..\\windows\\win.ini", "win.ini"),
     ("<img src=x onerror=alert(1)>.png", "<img src=x onerror=alert(1)>.png"),
     ("报价\x00单\x1b.txt", "报价单.txt"),
     ("....", "file")],
)
def test_hostile_names_are_kept_only_as_data(world, raw, shown):
    up = world.visitor_upload(multipart(("file", raw, b"data")))
    assert up.status_code == 201, up.get_json()
    data = up.get_json()
    assert data["name"] == shown
    files, rows = world.stored()
    assert files == [data["key"]] and rows == 1  # stored under the key, inside uploads/
    assert not os.path.exists(os.path.join(world.app.instance_path, "etc"))
    got = fetch(world.client, data["url"], headers={"X-Visitor-Token": world.token})
    assert "\n" not in got.headers["Content-Disposition"]
    assert got.headers["Content-Disposition"].startswith("attachment")


def test_oversized_declared_body_is_413_before_reading(world):
    world.app.config["MAX_IMAGE_BYTES"] = 4096
    body = multipart(("kind", None, b"image"), ("file", "big.png", PNG + b"\x00" * 100_000))
    response = world.visitor_upload(body, query="?kind=image")
    assert response.status_code == 413
    error = response.get_json()["error"]
    assert error == {"code": "too_large", "field": "file",
                     "message": "file: an image may be at most 4 KB"}
    assert world.stored() == ([], 0)


def test_oversized_image_is_cut_while_streaming(world):
    world.app.config["MAX_IMAGE_BYTES"] = 4096  # under the envelope: passes the declared check
    body = multipart(("kind", None, b"image"), ("file", "big.png", PNG + b"\x00" * 8000))
    response = world.visitor_upload(body)
    assert response.status_code == 413
    assert response.get_json()["error"]["message"] == "file: an image may be at most 4 KB"
    assert world.stored() == ([], 0)


def test_kind_after_the_file_still_applies_the_image_limit(world):
    world.app.config["MAX_IMAGE_BYTES"] = 4096
    body = multipart(("file", "big.png", PNG + b"\x00" * 8000), ("kind", None, b"image"))
    response = world.visitor_upload(body)
    assert response.status_code == 413
    assert world.stored() == ([], 0)


def test_oversized_file_is_413_with_the_limit(world):
    world.app.config["MAX_FILE_BYTES"] = 3 * 1024 * 1024
    body = multipart(("file", "录像.mp4", b"\x00" * (3 * 1024 * 1024 + 1)))
    response = world.agent_upload(world.li, body)
    assert response.status_code == 413
    assert response.get_json()["error"]["message"] == "file: a file may be at most 3 MB"
    assert world.stored() == ([], 0)


@pytest.mark.parametrize(
    ("body", "content_type", "status", "message"),
    [(b'{"file": "x"}', "application/json", 400, "send multipart/form-data"),
     (multipart(("kind", None, b"file")), CONTENT_TYPE, 422, "attach the file"),
     (multipart(("kind", None, b"video"), ("file", "a.txt", b"x")), CONTENT_TYPE, 422,
      "kind: image or file"),
     (multipart(("file", "a.txt", b"x"), ("file", "b.txt", b"y")), CONTENT_TYPE, 422,
      "send one file"),
     (multipart(("avatar", "a.txt", b"x")), CONTENT_TYPE, 422, "in the field 'file'"),
     (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\n\r\n"
      "cut short".encode(), CONTENT_TYPE, 400, "")],
)
def test_malformed_uploads_say_what_is_wrong(world, body, content_type, status, message):
    response = world.client.post(f"/api/v1/widget/conversations/{world.cid}/uploads",
                                 data=body, content_type=content_type,
                                 headers={"X-Visitor-Token": world.token})
    assert response.status_code == status, response.get_json()
    error = response.get_json()["error"]
    assert message in error["message"] and error["message"]
    assert world.stored() == ([], 0)


def test_no_uploads_into_an_ended_conversation(world):
    with world.app.app_context():
        Conversation.update(status="ended").where(Conversation.id == world.cid).execute()
    response = world.visitor_upload(multipart(("file", "a.txt", b"x")))
    assert response.status_code == 422 and "ended" in response.get_json()["error"]["message"]


def test_attachment_for_and_for_message(world):
    png = world.visitor_upload(multipart(("kind", None, b"image"),
                                         ("file", "a.png", PNG))).get_json()
    txt = world.visitor_upload(multipart(("file", "a.txt", b"x"))).get_json()
    with world.app.app_context():
        visitor = Conversation.get_by_id(world.cid).visitor
        other = Conversation.get_by_id(world.other_cid).visitor
        assert uploads.attachment_for(visitor, png["key"]).key == png["key"]
        with pytest.raises(NotFound):
            uploads.attachment_for(other, png["key"])
        conversation = Conversation.get_by_id(world.cid)
        assert uploads.for_message(conversation, png["key"], "image").is_image
        assert uploads.for_message(conversation, txt["key"], "file").key == txt["key"]
        with pytest.raises(ValidationError, match="not an image"):
            uploads.for_message(conversation, txt["key"], "image")
        with pytest.raises(ValidationError, match="no such upload"):
            uploads.for_message(Conversation.get_by_id(world.other_cid), png["key"], "image")
        assert uploads.public_dict(uploads.attachment_for(visitor, txt["key"]))["name"] == "a.txt"


BLOCK = bytes((i * 7) % 251 for i in range(65536))


class LazyBody(io.RawIOBase):
    """A multipart body made as it is read: the test itself holds no big buffer."""

    def __init__(self, size: int) -> None:
        self.head = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; "
                     "filename=\"备份.bin\"\r\n\r\n").encode()
        self.tail = f"\r\n--{BOUNDARY}--\r\n".encode()
        self.size = size
        self.length = len(self.head) + size + len(self.tail)
        self.pos = 0
        self.digest = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:  # the test client measures the body by seeking
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = 0) -> int:
        self.pos = offset if whence == 0 else self.length + offset if whence == 2 \
            else self.pos + offset
        return self.pos

    def readinto(self, buffer) -> int:
        n = 0
        while n < len(buffer) and self.pos < self.length:
            if self.pos < len(self.head):
                piece = self.head[self.pos:self.pos + len(buffer) - n]
            elif self.pos < len(self.head) + self.size:
                offset = self.pos - len(self.head)
                at = offset % len(BLOCK)
                piece = BLOCK[at:at + min(len(buffer) - n, self.size - offset)]
                self.digest.update(piece)
            else:
                start = self.pos - len(self.head) - self.size
                piece = self.tail[start:start + len(buffer) - n]
            buffer[n:n + len(piece)] = piece
            n += len(piece)
            self.pos += len(piece)
        return n


def test_a_large_file_is_streamed_not_held_in_memory(world):
    body = LazyBody(8 * 1024 * 1024)
    tracemalloc.start()
    try:
        response = world.li.post(f"/api/v1/conversations/{world.cid}/uploads",
                                 input_stream=body, content_length=body.length,
                                 content_type=CONTENT_TYPE)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert response.status_code == 201, response.get_json()
    data = response.get_json()
    assert data["size"] == 8 * 1024 * 1024
    assert peak < 2 * 1024 * 1024  # a few chunks, not the 8 MB file
    with open(os.path.join(world.app.instance_path, "uploads", data["key"]), "rb") as f:
        assert hashlib.sha256(f.read()).hexdigest() == body.digest.hexdigest()


@pytest.fixture
def live_world(world):
    server = make_server("127.0.0.1", 0, world.app, threaded=True)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    world.port = server.server_port
    yield world
    server.shutdown()
    thread.join(timeout=5)


def test_client_going_away_mid_upload_leaves_nothing(live_world):
    world = live_world
    head = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; "
            "filename=\"半截.bin\"\r\n\r\n").encode()
    declared = len(head) + 4 * 1024 * 1024
    request = (f"POST /api/v1/widget/conversations/{world.cid}/uploads HTTP/1.1\r\n"
               f"Host: 127.0.0.1\r\nX-Visitor-Token: {world.token}\r\n"
               f"Content-Type: {CONTENT_TYPE}\r\nContent-Length: {declared}\r\n\r\n").encode()
    folder = os.path.join(world.app.instance_path, "uploads")

    def parts() -> list[str]:
        return os.listdir(folder) if os.path.isdir(folder) else []

    with socket.create_connection(("127.0.0.1", world.port)) as sock:
        sock.sendall(request + head + b"\x05" * (512 * 1024))
        wait_until(lambda: any(n.endswith(".part") for n in parts()), 10, "the upload to start")
    wait_until(lambda: parts() == [], 10, "the partial file to be removed")
    assert world.stored() == ([], 0)


def test_openapi_documents_the_multipart_body(world):
    doc = world.client.get("/api/v1/openapi.json").get_json()
    for path in ("/api/v1/widget/conversations/{conversation_id}/uploads",
                 "/api/v1/conversations/{conversation_id}/uploads"):
        body = doc["paths"][path]["post"]["requestBody"]["content"]
        schema = body["multipart/form-data"]["schema"]
        assert schema["required"] == ["file"] and schema["properties"]["file"]["format"] == "binary"
