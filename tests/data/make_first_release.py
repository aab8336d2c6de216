"""Make the first release's databases for tests/unit/test_migrations.py.

The files beside this script are databases as meiqia's first commit (8e48454,
migrations m0001-m0003) created them, with a little data written by that
release's own code. The migration test upgrades copies of them with today's
runner. To regenerate (only ever needed if the files are lost):

    git worktree add /tmp/old 8e48454
    cd /tmp && PYTHONPATH=/tmp/old python make_first_release.py \
        sqlite:////tmp/first.sqlite3 /tmp/first-instance
    (VACUUM it in rollback-journal mode, gzip -9 it: first_release.sqlite3.gz)
    createdb meiqia_first && PYTHONPATH=/tmp/old python make_first_release.py \
        postgresql://postgres@127.0.0.1/meiqia_first /tmp/first-instance-pg
    pg_dump --no-owner --no-privileges --inserts meiqia_first | grep -v "^\\\\" \\
        > first_release.postgresql.sql   (without psql-only lines such as \\restrict)
"""

# ruff: noqa: E402, I001 - the imports follow the entry-point patch on purpose
import sys

import meiqia
assert meiqia.__file__.startswith("/tmp/old/"), meiqia.__file__
url, instance = sys.argv[1], sys.argv[2]
import importlib.metadata as _md
_real = _md.entry_points
_md.entry_points = lambda **kw: [] if kw.get("group") == "meiqia" else _real(**kw)
from meiqia import create_app
app = create_app({"DATABASE_URL": url, "SECRET_KEY": "old", "JOBS_INLINE": True},
                 instance_path=instance)
with app.app_context():
    from meiqia import migrations
    from meiqia.db import database
    migrations.upgrade(database.obj)
c = app.test_client()
r = c.post("/api/v1/auth/register", json={"team_name": "老版本团队", "name": "管理员",
           "email": "admin@example.com", "password": "old-release-1"})
assert r.status_code == 201, r.get_json()
csrf = {"X-CSRF-Token": r.get_json()["csrf_token"]}
me = r.get_json()["agent"]["id"]
assert c.patch("/api/v1/team", json={"settings": {"bot_enabled": False}}, headers=csrf).status_code == 200
assert c.patch(f"/api/v1/agents/{me}", json={"status": "online", "max_concurrent": 5}, headers=csrf).status_code == 200
r = c.post("/api/v1/agents", json={"name": "小李", "email": "li@example.com", "password": "old-release-2"}, headers=csrf)
assert r.status_code == 201, r.get_json()
with app.app_context():
    import datetime
    from meiqia.db import database
    from meiqia.models import (Conversation, KnowledgeEntry, Message, QuickReply, Ticket,
                               TicketComment, Visit, Visitor)
    database.connect(reuse_if_open=True)
    t0 = datetime.datetime(2026, 11, 20, 8, 0, 0)
    visitor = Visitor.create(team=1, uid="old-visitor-1", name="张三")
    visit = Visit.create(visitor=visitor, team=1, ip="114.114.114.114",
                         landing_page="https://shop.example.com/退款")
    conv = Conversation.create(team=1, visitor=visitor, visit=visit, status="ended",
                               handler=me, started_at=t0, ended_at=t0 + datetime.timedelta(minutes=5))
    for n, (kind, body) in enumerate([("visitor", "你好，我想退款"),
                                       ("agent", "好的，马上为您处理退款"),
                                       ("visitor", "订单号 20261203001，电话 131-2113-2323")]):
        Message.create(conversation=conv, sender_kind=kind, body=body,
                       agent=me if kind == "agent" else None,
                       shown_agent=me if kind == "agent" else None,
                       client_msg_id=f"old{n}", created_at=t0 + datetime.timedelta(minutes=n))
    QuickReply.create(team=1, keyword="退款", body="退款会在 3 个工作日内原路退回。")
    KnowledgeEntry.create(team=1, key="ship-time", questions=["多久发货？", "什么时候发货"],
                          answer="下单后 48 小时内发货。")
    ticket = Ticket.create(team=1, visitor=visitor, conversation=conv, source="no_agent",
                           content="周末能发货吗？", contact_name="张三", contact_phone="13121132323")
    TicketComment.create(ticket=ticket, agent=me, body="已回复客户", visibility="internal")
    database.close()
print("ok")
