"""What the visitor writes with his rating reaches the agents (outside tester, Shanghai):
the widget stored "服务很好，谢谢小明" but no page, answer or file showed it. And the
history's device column said `pc` to Chinese readers where the sidebar says 电脑.

The conversation is held for real through the widget API (a session with an iPhone's
user agent, an agent's invitation, the visitor's rating with a comment, the end); then
every place an agent reads the rating is asked: the history list (and its filter), the
conversation itself (the transcript panel's and the workspace's source), the sidebar's
recent conversations, and the CSV and XLSX exports, in Chinese and in English.
"""

from __future__ import annotations

import pytest

from tests.api.test_conversations import start
from tests.api.test_conversations import vpost
from tests.api.test_exports import read_export

COMMENT = "服务很好，谢谢小明"


@pytest.fixture
def rated(db_api):
    """An ended conversation the visitor rated 满意 with a comment: (admin, its id)."""
    team = db_api.without_bot()
    li = team.new_agent(max_concurrent=2, name="李小明")
    li.go_online()
    client, token, cid, _ = start(team.app, team.team["id"])
    assert vpost(client, token, f"/api/v1/widget/conversations/{cid}/messages",
                 json={"body": "我想改一下收货地址", "client_msg_id": "m1"}).status_code == 201
    assert li.post(f"/api/v1/conversations/{cid}/rating-invite").status_code == 201
    rating = vpost(client, token, f"/api/v1/widget/conversations/{cid}/rating",
                   json={"rating": "good", "comment": f"  {COMMENT} "})
    assert rating.status_code == 200, rating.get_json()
    assert li.post(f"/api/v1/conversations/{cid}/end").status_code == 200
    return team, cid


def test_the_comment_is_in_every_answer_an_agent_reads(rated):
    admin, cid = rated
    row = admin.get("/api/v1/history").get_json()["items"][0]
    assert row["id"] == cid
    assert (row["rating"], row["rating_comment"]) == ("good", COMMENT)
    assert "rating_comment" in admin.get("/api/v1/history").get_json()["columns"]
    # Filterable like the summary: a part of it finds it, another text does not.
    assert [r["id"] for r in admin.get("/api/v1/history?rating_comment=谢谢").get_json()[
        "items"]] == [cid]
    assert admin.get("/api/v1/history?rating_comment=太慢").get_json()["total"] == 0

    # The conversation (the transcript panel's and the workspace's view of it).
    one = admin.get(f"/api/v1/conversations/{cid}").get_json()
    assert (one["rating"], one["rating_comment"]) == ("good", COMMENT)

    # The workspace sidebar's recent conversations of this customer.
    visitor_id = one["customer"]["id"]
    recent = admin.get(f"/api/v1/visitors/{visitor_id}/conversations").get_json()
    assert [(c["id"], c["rating"], c["rating_comment"]) for c in recent] == [
        (cid, "good", COMMENT)]


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_the_comment_and_the_device_kind_in_the_export_in_the_readers_language(rated, fmt):
    admin, cid = rated
    started = admin.post("/api/v1/history/exports", json={"format": fmt})
    assert started.status_code == 202, started.get_json()
    rows = read_export(admin, started.get_json()["id"], fmt)
    header, line = rows[0], rows[1]
    assert header[10:12] == ["满意度", "评价内容"]
    cells = dict(zip(header, line, strict=True))
    assert cells["编号"] == str(cid)
    assert (cells["满意度"], cells["评价内容"]) == ("满意", COMMENT)
    # The iPhone of the session: "mobile (iPhone) / iOS 17.2 / WeChat 8.0" as the
    # workspace sidebar says it (device.mobile: 手机), never the code.
    assert cells["设备"].startswith("手机 (iPhone) / iOS"), cells["设备"]

    assert admin.get("/lang/en").status_code == 302  # his setting: English
    started = admin.post("/api/v1/history/exports", json={"format": fmt})
    rows = read_export(admin, started.get_json()["id"], fmt)
    cells = dict(zip(rows[0], rows[1], strict=True))
    assert (cells["Rating"], cells["Rating comment"]) == ("Good", COMMENT)
    assert cells["Device"].startswith("Phone (iPhone) / iOS"), cells["Device"]
