"""m0014: the team switch ``allow_private_addresses`` leaves every stored webhook sink
(the indexes it adds are checked by the migration tests that compare schemas)."""

from __future__ import annotations

from meiqia.db import database
from meiqia.migrations import m0014_security_audit as m0014
from meiqia.models import Team
from meiqia.models import TicketSink


def test_the_team_switch_is_removed_and_the_operator_told(db_app):
    team = Team.create(name="老团队")
    on = TicketSink.create(team=team, type="webhook", name="内网 CRM", config={
        "url": "http://10.0.0.5/hook", "secret": "s" * 16, "allow_private_addresses": True})
    off = TicketSink.create(team=team, type="webhook", name="公网", config={
        "url": "https://crm.example.com/hook", "secret": "s" * 16,
        "allow_private_addresses": False})
    mail = TicketSink.create(team=team, type="email", name="邮件", config={
        "host": "smtp.example.com", "port": 25, "from": "a@b.cn", "to": "c@d.cn"})
    said: list[str] = []
    m0014._drop_private_switch(database.obj, said.append)
    assert TicketSink.get_by_id(on.id).config == {"url": "http://10.0.0.5/hook",
                                                  "secret": "s" * 16}
    assert "allow_private_addresses" not in TicketSink.get_by_id(off.id).config
    assert TicketSink.get_by_id(mail.id).config == mail.config
    assert len(said) == 1 and f"ticket sink {on.id}" in said[0]
    assert "OUTBOUND_ALLOWED_NETWORKS" in said[0]
    said.clear()
    m0014._drop_private_switch(database.obj, said.append)
    assert said == []  # a second run finds nothing
