"""One clock outside the pages: transcripts (webhooks, e-mails, ticket prefill) and the
e-mail sink's ticket text show times in the team's zone, not UTC (stored UTC)."""

from __future__ import annotations

import datetime

from meiqia.models import Ticket
from meiqia.plugins.email_sink import render
from meiqia.services.dates import team_clock
from meiqia.services.ticket_payload import payload_for
from tests.factories import make_conversation
from tests.factories import make_visitor

T0 = datetime.datetime(2026, 7, 1, 12, 0, 0)  # UTC; 08:00 in New York (summer), 20:00 in Shanghai


def test_team_clock_reads_stored_utc_and_iso_strings():
    assert team_clock(T0, "Asia/Shanghai") == "2026-07-01 20:00"
    assert team_clock("2026-07-01T12:00:00Z", "America/New_York") == "2026-07-01 08:00"
    assert team_clock(None, "Asia/Shanghai") == ""


def test_transcript_and_email_are_on_the_teams_clock(api):
    assert api.patch("/api/v1/team", json={"timezone": "America/New_York"}).status_code == 200
    team = api.team["id"]
    convo = make_conversation(team, make_visitor(team), handler=api.agent["id"],
                              started_at=T0, ended_at=T0 + datetime.timedelta(minutes=5),
                              messages=[("visitor", "退款", 0), ("agent", "好的", 60)])
    ticket = Ticket.create(team=team, conversation=convo.id, source="after_end",
                           content="请回电", created_at=T0)
    payload = payload_for(ticket, "created", {})
    assert payload["ticket"]["created_at"] == "2026-07-01T12:00:00Z"  # the wire stays UTC
    assert "[2026-07-01 08:00] 访客: 退款" in payload["ticket"]["transcript"]
    assert "[2026-07-01 08:01] 客服: 好的" in payload["ticket"]["transcript"]
    _subject, body = render(payload, "created")
    assert "2026-07-01 08:00 (America/New_York)" in body
    assert "20:00" not in body and "12:00" not in body


def test_an_english_teams_transcript_names_senders_in_english(api):
    assert api.patch("/api/v1/team", json={"language": "en"}).status_code == 200
    team = api.team["id"]
    convo = make_conversation(team, make_visitor(team), handler=api.agent["id"],
                              started_at=T0, ended_at=T0 + datetime.timedelta(minutes=5),
                              messages=[("visitor", "refund", 0), ("bot", "Did you mean:", 5)])
    ticket = Ticket.create(team=team, conversation=convo.id, source="after_end",
                           content="call me", created_at=T0)
    transcript = payload_for(ticket, "created", {})["ticket"]["transcript"]
    assert transcript == ("[2026-07-01 20:00] Visitor: refund\n"
                          "[2026-07-01 20:00] Bot: Did you mean:")
