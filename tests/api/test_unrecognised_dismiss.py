"""Dismissing a group of unrecognised questions: gone from the list, other teams untouched."""

from __future__ import annotations

from meiqia.models import Team
from meiqia.models import UnrecognisedQuestion


def test_dismiss_removes_the_group_and_only_this_teams_open_questions(api):
    team_id = api.team["id"]
    for text in ["你们卖汽车吗", "你们卖不卖汽车", "卖汽车吗", "周末发货吗"]:
        UnrecognisedQuestion.create(team=team_id, question=text)
    other_team = Team.create(name="别的团队")
    foreign = UnrecognisedQuestion.create(team=other_team.id, question="你们卖汽车吗")
    groups = api.get("/api/v1/bot/unrecognised").get_json()["groups"]
    cars = groups[0]
    assert cars["count"] == 3

    response = api.post("/api/v1/bot/unrecognised/dismiss",
                        json={"question_ids": [*cars["question_ids"], foreign.id]})
    assert response.status_code == 200
    assert response.get_json() == {"dismissed": 3}
    after = api.get("/api/v1/bot/unrecognised").get_json()["groups"]
    assert [g["questions"] for g in after] == [["周末发货吗"]]
    assert UnrecognisedQuestion.get_or_none(UnrecognisedQuestion.id == foreign.id) is not None


def test_dismiss_is_admin_only_and_validated(api):
    agent = api.new_agent()
    assert agent.post("/api/v1/bot/unrecognised/dismiss",
                      json={"question_ids": [1]}).status_code == 403
    bad = api.post("/api/v1/bot/unrecognised/dismiss", json={"question_ids": []})
    assert bad.status_code == 422 and bad.get_json()["error"]["field"] == "question_ids"
