"""Migrations m0007 (history covering index) and m0008 (gram search index) on a
database as the release before them left it: trigram search objects, no covering
index, messages already stored. Nothing is lost, every message is searchable
(two characters too), the old objects are gone, and big databases get progress.
"""

from __future__ import annotations

import datetime

import peewee

from meiqia import migrations
from meiqia.db import database
from meiqia.db import is_postgres
from meiqia.migrations import m0002_message_search
from meiqia.migrations.m0007_history_indexes import COLUMNS
from meiqia.migrations.m0008_message_grams import QUIET_BELOW
from meiqia.models import Conversation
from meiqia.models import Message
from meiqia.models import SchemaMigration
from meiqia.services import history
from tests.factories import make_agent
from tests.factories import make_team
from tests.factories import make_visitor

NEW = ["m0007_history_indexes", "m0008_message_grams"]
T0 = datetime.datetime(2026, 11, 20, 4, 0, 0)
#: Bodies of the "old" messages; the rest of the QUIET_BELOW messages repeat the first.
BODIES = ["你好", "我想退款", "退款还没到账", "Refund please", "订单号 20261124", "发票抬头写错了"]


def _covering(db: peewee.Database) -> list[str]:
    return [i.name for i in db.get_indexes("conversation") if tuple(i.columns) == COLUMNS]


def _as_before(db: peewee.Database) -> None:
    """Put the schema back as it was before m0007 and m0008 (m0002's trigram objects)."""
    for name in _covering(db):
        db.execute_sql(f'DROP INDEX "{name}"')
    if is_postgres():
        db.execute_sql("DROP INDEX IF EXISTS message_grams")
        db.execute_sql("DROP FUNCTION IF EXISTS meiqia_grams(text)")
        db.execute_sql("DROP FUNCTION IF EXISTS meiqia_query_grams(text)")
    else:
        for trigger in ("insert", "delete", "update"):
            db.execute_sql(f"DROP TRIGGER IF EXISTS message_gram_{trigger}")
        db.execute_sql("DROP TABLE IF EXISTS message_gram")
        db.execute_sql("DROP TABLE IF EXISTS message_gram_seq")
    m0002_message_search.up(None, db)
    SchemaMigration.delete().where(SchemaMigration.name.in_(NEW)).execute()


def _old_data() -> dict[str, int]:
    """QUIET_BELOW messages in 500 conversations, stored through the old triggers."""
    team = make_team()
    agent = make_agent(team)
    visitor = make_visitor(team)
    with database.atomic():
        Conversation.insert_many([
            {"team": team.id, "visitor": visitor.id, "handler": agent.id, "status": "ended",
             "created_at": T0, "ended_at": T0 - datetime.timedelta(minutes=n)}
            for n in range(500)]).execute()
        convs = [c.id for c in Conversation.select(Conversation.id).order_by(Conversation.id)]
        rows = ({"conversation": convs[n % 500], "sender_kind": "visitor",
                 "body": BODIES[n] if n < len(BODIES) else BODIES[0], "created_at": T0}
                for n in range(QUIET_BELOW))
        for chunk in peewee.chunked(rows, 2000):
            Message.insert_many(chunk).execute()
    return {body: convs[n] for n, body in enumerate(BODIES)}


def test_an_older_database_is_upgraded_with_its_messages_searchable(db_app):
    db = database.obj
    _as_before(db)
    try:
        by_body = _old_data()
        before = db.execute_sql("SELECT count(*), sum(length(body)) FROM message").fetchone()
        said: list[str] = []

        assert migrations.upgrade(db, echo=said.append) == NEW

        assert db.execute_sql("SELECT count(*), sum(length(body)) FROM message"
                              ).fetchone() == before  # every message, unchanged
        assert f"message search index: building over {QUIET_BELOW:,} messages" in said
        if not is_postgres():
            assert f"message search index: {QUIET_BELOW:,} / {QUIET_BELOW:,} messages" in said
            assert "message_fts" not in db.get_tables()
            assert "message_gram" in db.get_tables()
            triggers = {r[0] for r in db.execute_sql(
                "SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall()}
            assert {"message_gram_insert", "message_gram_delete",
                    "message_gram_update"} <= triggers
            assert not any(t.startswith("message_fts") for t in triggers)
        else:
            names = {i.name for i in db.get_indexes("message")}
            assert "message_grams" in names and "message_body_trgm" not in names
        assert len(_covering(db)) == 1

        # The old messages are in the index: two characters, one, and longer terms.
        assert set(history.matching_conversations("退款")) == {by_body["我想退款"],
                                                             by_body["退款还没到账"]}
        assert set(history.matching_conversations("账")) == {by_body["退款还没到账"]}
        assert set(history.matching_conversations("refund")) == {by_body["Refund please"]}
        assert set(history.matching_conversations("抬头写错")) == {by_body["发票抬头写错了"]}
        assert len(history.matching_conversations("你好")) == 500
        # And the new ones, through the new triggers (SQLite) or the index (PostgreSQL).
        Message.create(conversation=by_body["你好"], sender_kind="visitor", body="换货流程")
        assert history.matching_conversations("换货") == [by_body["你好"]]
        assert migrations.upgrade(db) == []
    finally:
        if migrations.pending(db):  # leave the shared PostgreSQL database usable
            migrations.upgrade(db)


def test_a_small_database_is_upgraded_quietly(db_app):
    db = database.obj
    _as_before(db)
    try:
        team = make_team()
        conv = Conversation.create(team=team, visitor=make_visitor(team), status="ended",
                                   ended_at=T0)
        Message.create(conversation=conv, sender_kind="visitor", body="退款")
        said: list[str] = []
        assert migrations.upgrade(db, echo=said.append) == NEW
        assert said == [f"applied {name}" for name in NEW]  # no progress lines
        assert history.matching_conversations("退款") == [conv.id]
    finally:
        if migrations.pending(db):
            migrations.upgrade(db)
