"""Uploads (checked by content, streamed, served only to those allowed) and quick replies."""

from __future__ import annotations

import io
import os

import pytest

from meiqia.models import Attachment
from tests.api.test_conversations import start
from tests.helpers import new_client_id

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x01" * 64  # signature, IHDR


@pytest.fixture
def chat(db_api):
    db_api.patch("/api/v1/team", json={"settings": {"bot_enabled": False}})
    li = db_api.new_agent(max_concurrent=3)
    li.go_online()
    client, token, cid, _ = start(db_api.app, db_api.team["id"])
    return db_api, li, client, token, cid


def upload(client, url, data, name, kind, headers=None):
    return client.post(url, data={"file": (io.BytesIO(data), name), "kind": kind},
                       content_type="multipart/form-data", headers=headers or {})


def fetch(client, url, **kw):
    """GET a file and close the response (it streams from disk)."""
    response = client.get(url, **kw)
    response.get_data()
    response.close()
    return response


def uploads_dir(app):
    path = os.path.join(app.instance_path, "uploads")
    return sorted(os.listdir(path)) if os.path.isdir(path) else []


def test_visitor_uploads_an_image_and_the_agent_sees_it(chat):
    admin, li, client, token, cid = chat
    headers = {"X-Visitor-Token": token}
    up = upload(client, f"/api/v1/widget/conversations/{cid}/uploads", PNG,
                "../../etc/<img src=x onerror=alert(1)>.png", "image", headers)
    assert up.status_code == 201, up.get_json()
    data = up.get_json()
    assert data["is_image"] and data["content_type"] == "image/png"
    assert data["name"] == "<img src=x onerror=alert(1)>.png"  # no folders; shown escaped
    assert data["key"] in uploads_dir(admin.app)
    sent = client.post(f"/api/v1/widget/conversations/{cid}/messages", headers=headers,
                       json={"client_msg_id": new_client_id(), "body": "截图", "kind": "image", "attachment": data["key"]})
    assert sent.status_code == 201
    got = fetch(li.client, data["url"])
    assert got.status_code == 200 and got.data == PNG
    assert got.headers["X-Content-Type-Options"] == "nosniff"
    assert "default-src 'none'" in got.headers["Content-Security-Policy"]
    assert fetch(client, data["url"], headers=headers).status_code == 200

    other_client, other_token, _, _ = start(admin.app, admin.team["id"])
    assert other_client.get(data["url"], headers={"X-Visitor-Token": other_token}).status_code == 404
    outsider = admin.new_agent(email="out@example.com", name="外人", scope="self")
    assert outsider.get(data["url"]).status_code == 404


def test_files_download_as_attachments(chat):
    admin, li, client, token, cid = chat
    up = li.post(f"/api/v1/conversations/{cid}/uploads",
                 data={"file": (io.BytesIO(b"<script>alert(1)</script>"), "发票.html"),
                       "kind": "file"}, content_type="multipart/form-data")
    assert up.status_code == 201
    data = up.get_json()
    assert data["content_type"] == "application/octet-stream" and not data["is_image"]
    got = fetch(client, data["url"], headers={"X-Visitor-Token": token})
    assert "attachment" in got.headers["Content-Disposition"]


@pytest.mark.parametrize(
    ("data", "name", "status"),
    [(b"GIF8 not really", "cat.png", 422),  # lies about its type
     (b"<svg onload='alert(1)'/>", "x.svg", 422),  # SVG is not an image here
     (b"", "empty.png", 422)],
)
def test_bad_images_are_refused_and_leave_nothing(chat, data, name, status):
    admin, li, client, token, cid = chat
    before = uploads_dir(admin.app)
    response = upload(client, f"/api/v1/widget/conversations/{cid}/uploads", data, name,
                      "image", {"X-Visitor-Token": token})
    assert response.status_code == status
    assert uploads_dir(admin.app) == before and Attachment.select().count() == 0


def test_oversized_image_is_413_and_leaves_nothing(chat):
    admin, li, client, token, cid = chat
    admin.app.config["MAX_IMAGE_BYTES"] = 1024
    big = PNG + b"\x00" * 2048
    response = upload(client, f"/api/v1/widget/conversations/{cid}/uploads", big, "big.png",
                      "image", {"X-Visitor-Token": token})
    assert response.status_code == 413 and "1024" not in response.get_json()["error"]["message"]
    assert uploads_dir(admin.app) == [] and Attachment.select().count() == 0


def test_message_cannot_point_at_someone_elses_upload(chat):
    admin, li, client, token, cid = chat
    other_client, other_token, other_cid, _ = start(admin.app, admin.team["id"])
    up = upload(other_client, f"/api/v1/widget/conversations/{other_cid}/uploads", PNG, "a.png",
                "image", {"X-Visitor-Token": other_token}).get_json()
    sent = client.post(f"/api/v1/widget/conversations/{cid}/messages",
                       headers={"X-Visitor-Token": token},
                       json={"client_msg_id": new_client_id(), "body": "x", "kind": "image", "attachment": up["key"]})
    assert sent.status_code == 422 and sent.get_json()["error"]["field"] == "attachment"


def test_quick_replies_team_and_personal_with_chinese_search(db_api):
    li = db_api.new_agent()
    for keyword, body in (("退款", "退款 1-3 个工作日到账"), ("退货流程", "在订单页申请售后"),
                          ("发货", "48 小时内发货")):
        assert db_api.post("/api/v1/quick-replies",
                           json={"keyword": keyword, "body": body, "team": True}).status_code == 201
    mine = li.post("/api/v1/quick-replies", json={"keyword": "问候", "body": "您好，我是小李"})
    assert mine.status_code == 201
    assert li.post("/api/v1/quick-replies",
                   json={"keyword": "x", "body": "y", "team": True}).status_code == 403
    dup = db_api.post("/api/v1/quick-replies", json={"keyword": "退款", "body": "z", "team": True})
    assert dup.status_code == 409
    bad = li.post("/api/v1/quick-replies", json={"keyword": "有 空格", "body": "y"})
    assert bad.status_code == 422

    found = [r["keyword"] for r in li.get("/api/v1/quick-replies/search?q=%23退").get_json()]
    assert found[:2] == ["退款", "退货流程"]
    assert [r["keyword"] for r in li.get("/api/v1/quick-replies/search?q=問候").get_json()] == ["问候"]
    assert "问候" not in [r["keyword"] for r in db_api.get("/api/v1/quick-replies").get_json()]
    team_reply = li.get("/api/v1/quick-replies").get_json()[0]
    assert li.patch(f"/api/v1/quick-replies/{team_reply['id']}",
                    json={"body": "改"}).status_code in (403, 404)
