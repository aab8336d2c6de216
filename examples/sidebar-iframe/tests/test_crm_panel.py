"""The panel in a running meiqia, through meiqia.testing's fixtures only."""

from urllib.parse import parse_qs
from urllib.parse import urlsplit

import pytest
from itsdangerous import BadSignature
from meiqia_example_crm_panel import verify

PLUGIN = "example_crm_panel"  # the entry point: the package must be installed
CONFIG = {"CRM_PANEL_URL": "https://crm.example.com/meiqia-panel",
          "CRM_PANEL_SECRET": "crm-shared-secret"}


def _panels(agent, conversation_id):
    response = agent.get(f"/api/v1/conversations/{conversation_id}/sidebar-panels")
    assert response.status == 200, response
    return response.json()


@pytest.mark.meiqia(plugins=[PLUGIN], config=CONFIG)
def test_the_agent_sees_the_panel_and_the_crm_can_trust_its_token(
        meiqia_admin, meiqia_agent, meiqia_visitor):
    meiqia_admin.set_team_settings(bot_enabled=False)  # straight to the agent
    meiqia_visitor.send("你好，我想查一下会员积分")
    meiqia_agent.expect("message", where=lambda d: d.get("body") == "你好，我想查一下会员积分")
    panels = _panels(meiqia_agent, meiqia_visitor.conversation_id)
    panel = next(p for p in panels if p["name"] == "CRM · 张三")
    assert panel["height"] == 320
    url = urlsplit(panel["url"])
    assert f"{url.scheme}://{url.netloc}{url.path}" == CONFIG["CRM_PANEL_URL"]
    token = parse_qs(url.query)["token"][0]
    data = verify(token, CONFIG["CRM_PANEL_SECRET"])
    assert data["conversation_id"] == meiqia_visitor.conversation_id
    assert data["agent_id"] == meiqia_agent.agent["id"]
    assert data["customer"]["name"] == "张三"
    with pytest.raises(BadSignature):
        verify(token, "not the secret")
    assert "crm-shared-secret" not in str(panels)  # the secret never reaches the browser


@pytest.mark.meiqia(plugins=[PLUGIN])
def test_without_a_url_it_shows_nothing(meiqia_admin, meiqia_visitor):
    assert _panels(meiqia_admin, meiqia_visitor.conversation_id) == []
