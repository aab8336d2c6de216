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


def test_an_answer_is_at_most_what_a_chat_message_may_hold(db_api):
    """The bot sends an entry's answer as one chat message (at most
    ``messages.MAX_BODY`` characters): every way of writing an answer refuses a
    longer one, naming the limit, in the reader's language."""
    from meiqia.services.messages import MAX_BODY

    en = f"answer: at most {MAX_BODY} characters (the longest chat message)"
    zh = f"答案：最多 {MAX_BODY} 个字符（一条聊天消息的上限）"
    long = "答" * (MAX_BODY + 1)
    created = db_api.post("/api/v1/knowledge", json={"questions": ["q"], "answer": long},
                          headers={"X-Meiqia-Lang": "zh-CN"})
    assert created.status_code == 422
    error = created.get_json()["error"]
    assert (error["field"], error["message"], error["message_en"]) == ("answer", zh, en)
    fits = db_api.post("/api/v1/knowledge", json={"key": "k1", "questions": ["q"],
                                                   "answer": "答" * MAX_BODY})
    assert fits.status_code == 201, fits.get_json()
    changed = db_api.patch(f"/api/v1/knowledge/{fits.get_json()['id']}", json={"answer": long})
    assert changed.status_code == 422 and changed.get_json()["error"]["message"] == en
    assert KnowledgeEntry.get(KnowledgeEntry.key == "k1").answer == "答" * MAX_BODY
    # Answering an unrecognised question writes an entry too.
    resolved = db_api.post("/api/v1/bot/unrecognised/resolve",
                           json={"question_ids": [1], "answer": long})
    assert resolved.status_code == 422 and resolved.get_json()["error"]["message"] == en
    assert KnowledgeEntry.select().count() == 1
    # The OpenAPI document says the same limit.
    spec = db_api.get("/api/v1/openapi.json").get_json()
    for path in ("/api/v1/knowledge", "/api/v1/bot/unrecognised/resolve"):
        body = spec["paths"][path]["post"]["requestBody"]["content"]["application/json"]
        answer = body["schema"]["properties"]["answer"]
        assert (answer["maxLength"], answer["x-max-reason"]) == (MAX_BODY, "the longest chat message")
