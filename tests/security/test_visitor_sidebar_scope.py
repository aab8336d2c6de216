"""Who may read a visitor's sidebar lists and edit his card (docs/security.md §1;
outside check hapi, defect 5).

An agent of scope ``custom`` who may see a ticket (assigned to a colleague he
was granted) and none of the visitor's conversations: the visitor's ticket list
shows him that ticket and no other (an agent working a ticket needs the
customer's other tickets he may see: they are his to see one by one anyway);
the conversation list and the card are the conversations' and stay 404 "no such
visitor". A visitor of whom he may see neither is a 404 in all three.
"""

from __future__ import annotations

from meiqia.models import Conversation
from tests.api.test_conversations import start

ZH = {"X-Meiqia-Lang": "zh-CN"}


def test_a_ticket_in_scope_opens_the_ticket_list_and_nothing_else(api):
    api.without_bot()
    zhang = api.new_agent(email="zhang@example.com", name="小张", scope="self")
    zhao = api.new_agent(email="zhao@example.com", name="小赵", scope="custom",
                         scope_agents=[zhang.agent["id"]])
    _, _, cid, _ = start(api.app, api.team["id"], name="范围外访客")
    visitor_id = Conversation.get_by_id(cid).visitor_id
    assert zhao.get(f"/api/v1/conversations/{cid}").status_code == 404
    theirs = api.post("/api/v1/tickets", json={"conversation_id": cid, "content": "给小张的工单",
                                               "assignee_id": zhang.agent["id"]}).get_json()
    admins = api.post("/api/v1/tickets", json={"conversation_id": cid,
                                               "content": "管理员自己的工单",
                                               "assignee_id": api.agent["id"]}).get_json()
    assert zhao.get(f"/api/v1/tickets/{theirs['id']}").status_code == 200
    assert zhao.get(f"/api/v1/tickets/{admins['id']}").status_code == 404

    listed = zhao.get(f"/api/v1/visitors/{visitor_id}/tickets")
    assert listed.status_code == 200, listed.get_json()
    assert [t["id"] for t in listed.get_json()] == [theirs["id"]]
    assert "管理员自己的工单" not in listed.get_data(as_text=True)
    for response in (zhao.get(f"/api/v1/visitors/{visitor_id}/conversations", headers=ZH),
                     zhao.patch(f"/api/v1/visitors/{visitor_id}", json={"note": "改备注"},
                                headers=ZH)):
        assert response.status_code == 404, response.get_json()
        assert response.get_json()["error"]["message"] == "没有这个访客"
    assert api.get(f"/api/v1/visitors/{visitor_id}/conversations").status_code == 200

    # His ticket reassigned to the admin: nothing of the visitor is his any more.
    assert api.patch(f"/api/v1/tickets/{theirs['id']}",
                     json={"assignee_id": api.agent["id"]}).status_code == 200
    gone = zhao.get(f"/api/v1/visitors/{visitor_id}/tickets", headers=ZH)
    assert gone.status_code == 404 and gone.get_json()["error"]["message"] == "没有这个访客"
    assert zhao.get(f"/api/v1/visitors/{2**31 - 1}/tickets").status_code == 404


def test_security_md_says_what_the_sidebar_does():
    from pathlib import Path

    text = " ".join((Path(__file__).parents[2] / "docs" / "security.md").read_text().split())
    assert ("`/visitors/<id>/tickets` lists the visitor's tickets the agent may see by this "
            "rule") in text
    assert ("a 404 \"no such visitor\" when he may see none of them and none of the "
            "visitor's conversations") in text
    assert ("`/visitors/<id>/conversations` and `PATCH /visitors/<id>` (the customer card) "
            "are the conversations': a 404 \"no such visitor\" when he may see none of the "
            "visitor's conversations, whatever tickets he sees") in text
