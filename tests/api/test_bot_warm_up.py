"""A server process builds the bot's indexes as it starts (``knowledge.warm_up``), so
the first visitor question after a restart does not wait for the build."""

from __future__ import annotations

from meiqia.models import Team
from meiqia.services import knowledge
from tests.api.test_bot import _import


def test_warm_up_builds_each_team_with_entries_and_the_first_ask_uses_it(api):
    assert _import(api).status_code == 200
    empty = Team.create(name="没有知识库的团队", timezone="Asia/Shanghai")
    knowledge.forget_indexes()  # as a process that just started
    store = api.app.extensions["meiqia.kb_indexes"]
    assert store.indexes == {}

    knowledge.warm_up(api.app).join(120)

    assert set(store.indexes) == {api.team["id"]}  # not the team without entries
    assert empty.id not in store.indexes
    built = store.indexes[api.team["id"]].index
    answer = api.post("/api/v1/bot/ask", json={"question": "請問退貨運費誰出？"})
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["decision"] == "answer"
    assert answer.get_json()["candidates"][0]["entry_id"] == "return-shipping-fee"
    assert store.indexes[api.team["id"]].index is built  # asked of the warm index


def test_warm_up_is_on_by_default_and_turned_off_by_the_environment(tmp_path, monkeypatch):
    from meiqia import create_app

    monkeypatch.delenv("MEIQIA_DATABASE_URL", raising=False)
    monkeypatch.delenv("MEIQIA_BOT_WARM_UP", raising=False)
    assert create_app(instance_path=str(tmp_path / "a")).config["BOT_WARM_UP"] is True
    monkeypatch.setenv("MEIQIA_BOT_WARM_UP", "false")
    assert create_app(instance_path=str(tmp_path / "b")).config["BOT_WARM_UP"] is False
