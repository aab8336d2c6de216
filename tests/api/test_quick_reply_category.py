"""Quick replies carry an optional category (the admin page groups by it), and an
older database gains the column without losing replies."""

from __future__ import annotations

from meiqia.db import database
from meiqia.migrations import _migrator
from meiqia.migrations import m0005_quick_reply_category
from meiqia.models import QuickReply

URL = "/api/v1/quick-replies"


def test_category_is_stored_listed_changed_and_checked(api):
    created = api.post(URL, json={"keyword": "运费", "body": "满 99 元包邮", "category": " 物流 ",
                                  "team": True})
    assert created.status_code == 201, created.get_json()
    reply = created.get_json()
    assert reply["category"] == "物流"
    assert api.get(URL).get_json()[0]["category"] == "物流"
    changed = api.patch(f"{URL}/{reply['id']}", json={"category": "售后"})
    assert changed.status_code == 200 and changed.get_json()["category"] == "售后"
    too_long = api.post(URL, json={"keyword": "x", "body": "y", "category": "长" * 41})
    assert too_long.status_code == 422 and too_long.get_json()["error"]["field"] == "category"
    plain = api.post(URL, json={"keyword": "你好", "body": "您好！"}).get_json()
    assert plain["category"] == ""


def test_the_migration_adds_the_column_and_keeps_replies(api):
    api.post(URL, json={"keyword": "发货", "body": "48 小时内发货", "team": True})
    db = database.obj
    migrator = _migrator(db)
    migrator.migrate(migrator.drop_column("quick_reply", "category"))
    assert "category" not in {c.name for c in db.get_columns("quick_reply")}
    m0005_quick_reply_category.up(migrator, db)
    assert "category" in {c.name for c in db.get_columns("quick_reply")}
    assert [(r.keyword, r.category) for r in QuickReply.select()] == [("发货", "")]
