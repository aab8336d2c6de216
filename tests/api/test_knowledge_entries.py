"""Knowledge-base entries through the API: admins edit, agents read, bad input refused."""

from __future__ import annotations

from meiqia.models import KnowledgeEntry


def test_admin_creates_lists_updates_deletes(db_api):
    created = db_api.post(
        "/api/v1/knowledge",
        json={"key": "refund-time", "questions": ["退款多久到账？", " 退款多久到账？ ", "钱什么时候退回来"],
              "answer": "仓库收货后 1-3 个工作日原路退回。", "category": "售后"},
    )
    assert created.status_code == 201, created.get_json()
    entry = created.get_json()
    assert entry["questions"] == ["退款多久到账？", "钱什么时候退回来"]  # repeats dropped
    assert entry["standard_question"] == "退款多久到账？"

    listed = db_api.get("/api/v1/knowledge?q=退款").get_json()
    assert listed["total"] == 1 and listed["categories"] == ["售后"]

    changed = db_api.patch(f"/api/v1/knowledge/{entry['id']}", json={"enabled": False})
    assert changed.get_json()["enabled"] is False
    assert db_api.delete(f"/api/v1/knowledge/{entry['id']}").status_code == 200
    assert KnowledgeEntry.select().count() == 0


def test_bad_entries_are_refused_and_nothing_is_written(db_api):
    cases = [
        ({"questions": [], "answer": "x"}, "questions"),
        ({"questions": ["   "], "answer": "x"}, "questions"),
        ({"questions": ["q"], "answer": ""}, "answer"),
        ({"questions": ["q"], "answer": "a", "key": "有 空格"}, "key"),
        ({"questions": ["q" * 501], "answer": "a"}, "questions[0]"),
        ({"questions": ["q"], "answer": "a", "extra": 1}, "extra"),
    ]
    for body, field in cases:
        response = db_api.post("/api/v1/knowledge", json=body)
        assert response.status_code == 422, body
        assert response.get_json()["error"]["field"] == field
    empty = db_api.post("/api/v1/knowledge", json={"questions": [], "answer": "x"})
    assert empty.get_json()["error"]["message"] == "questions: at least 1 item"
    db_api.post("/api/v1/knowledge", json={"key": "k1", "questions": ["q"], "answer": "a"})
    dup = db_api.post("/api/v1/knowledge", json={"key": "k1", "questions": ["q2"], "answer": "b"})
    assert dup.status_code == 409
    assert KnowledgeEntry.select().count() == 1


def test_agents_read_but_do_not_edit(db_api):
    db_api.post("/api/v1/knowledge", json={"key": "k1", "questions": ["发货时间"], "answer": "48 小时内"})
    agent = db_api.new_agent()
    assert agent.get("/api/v1/knowledge").get_json()["total"] == 1
    response = agent.post("/api/v1/knowledge", json={"questions": ["x"], "answer": "y"})
    assert response.status_code == 403
    assert KnowledgeEntry.select().count() == 1
