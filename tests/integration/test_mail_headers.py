"""Every mail the product sends has a Date, a Message-ID on the sending domain and
the team's name as its sender (``services.mail``): the email ticket sink's
notifications to the team, public replies on tickets to the customer (threaded on
the earlier ones) and the e-mail channel's answers. A real SMTP server (aiosmtpd)
keeps the raw bytes of each mail, which the stdlib parses as a mail client would.
"""

from __future__ import annotations

import email
import email.policy
import re
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from email.header import decode_header
from email.header import make_header
from email.utils import getaddresses
from email.utils import parsedate_to_datetime
from typing import Any

import pytest

from meiqia.channels import registry
from meiqia.channels.base import ChannelConversation
from meiqia.channels.base import ChannelMessage
from meiqia.channels.email.channel import EmailChannel
from tests import mail_servers
from tests.api.test_conversations import start
from tests.integration.test_ticket_sink_updates import english_ticket_answered

smtp = mail_servers.smtp  # a real SMTP server per test (tests/mail_servers.py)

TEAM = "小美商城"
LOCAL = ["127.0.0.0/8"]


def mails(server: mail_servers.SmtpServer) -> list[tuple[bytes, Any]]:
    with server.lock:
        raws = list(server.messages)
    return [(raw, email.message_from_bytes(raw, policy=email.policy.default)) for raw in raws]


def header_of(raw: bytes, name: str) -> str:
    """The header as it went over the wire (folded lines joined), not decoded."""
    head = raw.split(b"\r\n\r\n", 1)[0].replace(b"\r\n ", b" ").replace(b"\r\n\t", b" ")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(name.lower().encode() + b":"):
            return line.split(b":", 1)[1].strip().decode("ascii")
    return ""


def sender(raw: bytes) -> tuple[str, str]:
    """Display name (RFC 2047 decoded, as a client shows it) and address of From."""
    [(name, address)] = getaddresses([header_of(raw, "From")])
    return str(make_header(decode_header(name))), address


def assert_well_formed(raw: bytes, domain: str, when: datetime | None = None) -> str:
    """Date (RFC 5322, within a minute of ``when`` or now) and a Message-ID on
    ``domain``; the From name is the team's, one language, encoded for 7-bit headers.
    Returns the Message-ID."""
    date = header_of(raw, "Date")
    assert date, raw[:600]
    sent = parsedate_to_datetime(date)
    assert sent.tzinfo is not None
    assert abs(sent - (when or datetime.now(UTC))) < timedelta(minutes=1), date
    message_id = header_of(raw, "Message-ID")
    assert re.fullmatch(r"<[!-;=?-~]+@" + re.escape(domain) + ">", message_id), message_id
    from_header = header_of(raw, "From")
    assert from_header.isascii() and "=?utf-8?" in from_header.lower(), from_header
    return message_id


def named_team(api) -> None:
    response = api.patch("/api/v1/team", json={"name": TEAM})
    assert response.status_code == 200, response.get_json()


def email_sink(api, port: int) -> None:
    api.app.config["OUTBOUND_ALLOWED_NETWORKS"] = LOCAL
    response = api.post("/api/v1/ticket-sinks", json={"type": "email", "name": "客服邮箱", "config": {
        "host": "127.0.0.1", "port": port, "from": "bot@shop.example", "to": "team@shop.example"}})
    assert response.status_code == 201, response.get_json()


def test_ticket_mails_have_date_message_id_the_teams_name_and_replies_thread(db_api, smtp):
    named_team(db_api)
    email_sink(db_api, smtp.port)
    client, token, cid, _ = start(db_api.app, db_api.team["id"])
    created = client.post("/api/v1/widget/tickets", headers={"X-Visitor-Token": token},
                          json={"content": "发票抬头开错了", "email": "kehu@example.com",
                                "conversation_id": cid})
    url = f"/api/v1/tickets/{created.get_json()['id']}"
    for body in ("已重新开具", "快递单号 SF1234"):
        sent = db_api.post(f"{url}/comments", json={"body": body, "visibility": "public"})
        assert sent.get_json()["email"]["will_email"] is True

    got = mails(smtp)
    to_team = [raw for raw, m in got if m["To"] == "team@shop.example"]
    to_customer = [raw for raw, m in got if m["To"] == "kehu@example.com"]
    assert len(to_team) == 3 and len(to_customer) == 2
    ids = [assert_well_formed(raw, "shop.example") for raw in to_team + to_customer]
    assert len(set(ids)) == len(ids)
    for raw in to_team + to_customer:
        assert sender(raw) == (TEAM, "bot@shop.example")
    # The team's notifications keep the delivery's key as the Message-ID (a repeat is
    # dropped by the receiving mail system).
    assert all(i.startswith("<meiqia-delivery-") for i in ids[:3])
    first, second = (email.message_from_bytes(r, policy=email.policy.default)
                     for r in to_customer)
    assert first["In-Reply-To"] is None and first["References"] is None
    assert second["In-Reply-To"] == first["Message-ID"]
    assert second["References"] == first["Message-ID"]
    assert "快递单号 SF1234" in second.get_content()


def test_an_english_customer_gets_the_teams_name_not_two_languages(db_api, smtp):
    named_team(db_api)
    email_sink(db_api, smtp.port)
    english_ticket_answered(db_api)
    [raw] = [raw for raw, m in mails(smtp) if m["To"] == "customer@example.com"]
    assert_well_formed(raw, "shop.example")
    assert sender(raw) == (TEAM, "bot@shop.example")
    assert "Support" not in sender(raw)[0]


@pytest.mark.parametrize("from_name", [None, "客服 Support", "小美售后"])
def test_the_email_channels_answers_are_from_the_team_with_date_and_message_id(
        api, smtp, from_name):
    """The channel's own ``from_name`` wins; unset (or the old two-language default)
    it is the team's name."""
    named_team(api)
    api.app.config["OUTBOUND_ALLOWED_NETWORKS"] = LOCAL
    config = {"imap_host": "127.0.0.1", "imap_user": "support@shop.test",
              "imap_password": "x", "smtp_host": "127.0.0.1", "smtp_port": smtp.port,
              "smtp_security": "none", "from_address": "support@shop.test"}
    if from_name is not None:
        config["from_name"] = from_name
    team_id = api.team["id"]
    channel = EmailChannel(config, registry.make_host(team_id, "email", config, app=api.app))
    conversation = ChannelConversation(id=1, team_id=team_id, channel="email",
                                       visitor_external_id="zhang@customer.test",
                                       visitor_name="张三", status="open", subject="发票",
                                       language="en")
    written = datetime.now(UTC).replace(tzinfo=None) - timedelta(minutes=5)
    for kind, name in (("bot", ""), ("agent", "Bob")):
        channel.deliver(conversation, ChannelMessage(
            id=1, conversation_id=1, kind=kind, body="您好", sender_name=name,
            created_at=written, in_reply_to_external_id="<a1@customer.test>",
            references=["<a1@customer.test>"]))
    team = from_name if from_name == "小美售后" else TEAM
    (bot_raw, bot), (agent_raw, agent) = mails(smtp)
    for raw in (bot_raw, agent_raw):
        assert_well_formed(raw, "shop.test", when=written.replace(tzinfo=UTC))
    assert sender(bot_raw) == (team, "support@shop.test")
    assert sender(agent_raw) == (f"Bob · {team}", "support@shop.test")
    assert bot["In-Reply-To"] == agent["In-Reply-To"] == "<a1@customer.test>"
