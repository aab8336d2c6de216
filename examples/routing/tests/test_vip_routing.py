"""VIP routing in a running meiqia, through meiqia.testing's fixtures only."""

import pytest

from meiqia.testing import VisitorClient
from meiqia.testing import wait_until

PLUGIN = "example_vip_routing"  # the entry point: the package must be installed
SENIOR = "senior@example.com"


def _handler(admin, visitor):
    def assigned():
        got = admin.get(f"/api/v1/conversations/{visitor.conversation_id}").json()
        return got["handler_id"]
    return wait_until(assigned, 10, "the conversation's handler")


def _visitor(server, admin, vip):
    visitor = VisitorClient(server, admin.team["id"]).start(name="VIP 客户" if vip else "客户")
    if vip:
        card = admin.get(f"/api/v1/conversations/{visitor.conversation_id}").json()["visitor"]
        assert admin.patch(f"/api/v1/visitors/{card['id']}", json={"tags": ["VIP"]}).status == 200
    visitor.ask_for_human()  # the widget's 转人工 button: routing starts
    return visitor


@pytest.mark.meiqia(plugins=[PLUGIN], config={"VIP_AGENT_EMAILS": [SENIOR]})
def test_vips_go_to_the_senior_agent_and_others_to_the_least_loaded(meiqia_server,
                                                                     meiqia_admin):
    junior = meiqia_admin.new_agent(name="李客服", max_concurrent=5).go_online()
    senior = meiqia_admin.new_agent(name="王主管", email=SENIOR, max_concurrent=5).go_online()
    # The default routing would give the second VIP to the junior (then less loaded).
    for _ in range(2):
        assert _handler(meiqia_admin, _visitor(meiqia_server, meiqia_admin, True)) == \
            senior.agent["id"]
    assert _handler(meiqia_admin, _visitor(meiqia_server, meiqia_admin, False)) == \
        junior.agent["id"]


@pytest.mark.meiqia(plugins=[PLUGIN], config={"VIP_AGENT_EMAILS": [SENIOR]})
def test_a_vip_gets_whoever_is_free_when_no_senior_is(meiqia_server, meiqia_admin):
    junior = meiqia_admin.new_agent(name="李客服", max_concurrent=5).go_online()
    assert _handler(meiqia_admin, _visitor(meiqia_server, meiqia_admin, True)) == \
        junior.agent["id"]
