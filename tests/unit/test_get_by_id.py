"""``db.get_by_id`` builds the same instance peewee's own ``Model.get_by_id`` does.

It fetches the row with a statement built once and turns it into an instance from a
plan made once per model (half the CPU of a conversation look-up, issue 19); every
field, foreign keys, JSON, times and booleans included, must come out as peewee makes
them, on SQLite and on PostgreSQL, and saving a changed field must still work.
"""

from __future__ import annotations

import datetime

import pytest

from meiqia.db import connection
from meiqia.db import find_by_id
from meiqia.db import get_by_id
from meiqia.models import Agent
from meiqia.models import Conversation
from meiqia.models import Team
from meiqia.models import Visitor
from tests.factories import make_agent
from tests.factories import make_conversation
from tests.factories import make_team
from tests.factories import make_visitor


def _same(ours, theirs) -> None:
    assert type(ours) is type(theirs)
    assert ours.__data__ == theirs.__data__
    assert {k: type(v) for k, v in ours.__data__.items()} == {
        k: type(v) for k, v in theirs.__data__.items()}
    assert ours._dirty == theirs._dirty == set()
    assert ours.__rel__ == theirs.__rel__ == {}


def test_the_instance_is_peewees_own(db_app):
    with connection():
        team = make_team(name="比对团队")
        agent = make_agent(team, name="李客服")
        visitor = make_visitor(team, name="张三", tags=["老客户", "VIP"], email="z@example.com")
        conversation = make_conversation(team, visitor, handler=agent)
        Conversation.update(tags=["退款", "加急"], rating="good",
                            ended_at=datetime.datetime(2026, 12, 5, 8, 30, 15, 123000)).where(
            Conversation.id == conversation.id).execute()
        for model, pk in ((Conversation, conversation.id), (Visitor, visitor.id),
                          (Agent, agent.id), (Team, team.id)):
            _same(get_by_id(model, pk), model.get_by_id(pk))
        found = get_by_id(Conversation, conversation.id)
        assert found.tags == ["退款", "加急"] and found.rating == "good"
        assert found.ended_at == datetime.datetime(2026, 12, 5, 8, 30, 15, 123000)
        assert found.handler_id == agent.id and found.handler.name == "李客服"
        assert found.visitor.name == "张三" and found.team_id == team.id
        # A changed field saves as on peewee's instance.
        found.rating = "bad"
        found.save()
        assert Conversation.get_by_id(conversation.id).rating == "bad"
        with pytest.raises(Conversation.DoesNotExist):
            get_by_id(Conversation, conversation.id + 1000)
        assert find_by_id(Conversation, conversation.id + 1000) is None
        assert find_by_id(Conversation, None) is None
