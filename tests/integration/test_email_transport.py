"""The e-mail channel's connections, against a real Dovecot (IMAP) and a real
aiosmtpd (SMTP) started by the tests: login, sending, failures and their
reasons, and the SSRF gate in front of both. Dovecot is required in CI and
skipped elsewhere with how to install it (tests/mail_servers.py)."""

from __future__ import annotations

import email
import email.policy

import pytest

from meiqia.channels.email import transport
from meiqia.channels.email.compose import build_reply
from tests import mail_servers
from tests.conftest import unavailable
from tests.mail_servers import HOW_TO_INSTALL
from tests.mail_servers import DovecotServer

smtp = mail_servers.smtp  # a real SMTP server per test (tests/mail_servers.py)

SUPPORT = "support@shop.test"
PASSWORD = "邮箱授权码-1"  # QQ/163 hand out "authorisation codes" instead of passwords


@pytest.fixture
def dovecot():
    try:
        server = DovecotServer({SUPPORT: PASSWORD, "zhang@customer.test": "pw-zhang"})
        server.start()
    except (FileNotFoundError, RuntimeError) as exc:
        unavailable("Dovecot", HOW_TO_INSTALL, exc)
    yield server
    server.stop()


@pytest.fixture
def allowed(app):
    """The servers are on 127.0.0.1: the operator allows loopback (the gate refuses
    private addresses otherwise, as the last test shows)."""
    app.config["OUTBOUND_ALLOWED_NETWORKS"] = ["127.0.0.0/8"]
    with app.app_context():
        yield app


def imap_server(dovecot, password=PASSWORD):
    return transport.Server("127.0.0.1", dovecot.port, "none", SUPPORT, password)


def test_imap_login_and_a_wrong_password(dovecot, allowed):
    client = transport.open_imap(imap_server(dovecot))
    assert client.select_folder("INBOX")[b"EXISTS"] == 0
    assert client.has_capability("IDLE")
    client.logout()
    with pytest.raises(transport.MailError) as refused:
        transport.open_imap(imap_server(dovecot, "wrong"))
    assert "refused the user name or password" in refused.value.reason
    assert not refused.value.retry and "wrong" not in refused.value.reason


def test_smtp_sends_a_threaded_reply(smtp, allowed):
    server = transport.Server("127.0.0.1", smtp.port, "none", "", "")
    transport.check_smtp(server)  # connects, greets, quits; sends nothing
    assert smtp.messages == []
    reply = build_reply(from_address=SUPPORT, from_name="客服", to_address="zhang@customer.test",
                        to_name="张三", subject="退货", body="已为您办理退货", kind="agent",
                        sender_name="李客服", in_reply_to="<m1@customer.test>",
                        thread=["<m1@customer.test>"], created_at=None)
    transport.send(server, reply)
    assert smtp.envelopes == [(SUPPORT, ["zhang@customer.test"])]
    got = email.message_from_bytes(smtp.messages[0], policy=email.policy.default)
    assert got["In-Reply-To"] == "<m1@customer.test>" and str(got["Subject"]) == "Re: 退货"
    assert got.get_content().strip() == "已为您办理退货"


def test_a_stopped_smtp_server_is_a_failure_worth_retrying(smtp, allowed):
    server = transport.Server("127.0.0.1", smtp.port, "none", "", "")
    smtp.stop()
    reply = build_reply(from_address=SUPPORT, from_name="客服", to_address="a@customer.test",
                        to_name=None, subject="x", body="y", kind="bot", sender_name=None,
                        in_reply_to=None, thread=[], created_at=None)
    with pytest.raises(transport.MailError) as failed:
        transport.send(server, reply)
    assert failed.value.retry and f"127.0.0.1:{smtp.port}" in failed.value.reason


def test_the_ssrf_gate_refuses_a_private_mail_server_unless_the_operator_allows_it(
        app, dovecot, smtp):
    with app.app_context():
        with pytest.raises(transport.MailError) as imap_refused:
            transport.open_imap(imap_server(dovecot))
        with pytest.raises(transport.MailError) as smtp_refused:
            transport.check_smtp(transport.Server("127.0.0.1", smtp.port, "none", "", ""))
    for refused in (imap_refused.value, smtp_refused.value):
        assert "private address (loopback)" in refused.reason and not refused.retry


def test_a_mail_arriving_during_the_first_look_is_not_skipped(dovecot, allowed):
    """The race of the poller's first look: the folder is selected, then a mail
    arrives before the poller decides where "new" starts. Replayed step by step
    on the real server: the mail lands between SELECT and the search."""
    import contextlib
    import logging

    from meiqia.channels import registry
    from meiqia.channels.email.poller import Poller
    from tests.helpers import ApiClient

    api = ApiClient.registered(allowed)
    host = registry.make_host(api.team["id"], "email", config={}, app=allowed)
    dovecot.append(SUPPORT, b"From: old@customer.test\r\nMessage-ID: <old@c>\r\n\r\nold\r\n")
    client = transport.open_imap(imap_server(dovecot))
    client.select_folder("INBOX")
    client.add_flags(client.search(["ALL"]), [b"\\Seen"])  # read by someone already
    handled: list[bytes] = []
    poller = Poller(imap_server(dovecot), "INBOX", 5, handled.append, host.state,
                    contextlib.nullcontext, logging.getLogger("test"))
    info = client.select_folder("INBOX")
    dovecot.append(SUPPORT, b"From: new@customer.test\r\nMessage-ID: <new@c>\r\n\r\nnew\r\n")
    assert poller.fetch_new(client, int(info[b"UIDVALIDITY"]), int(info[b"UIDNEXT"])) == 1
    assert [raw.split(b"\r\n")[1] for raw in handled] == [b"Message-ID: <new@c>"]
    # The read mail of before was left alone; the next look finds nothing new.
    assert poller.fetch_new(client, int(info[b"UIDVALIDITY"])) == 0
    assert host.state.get("imap")["last_uid"] == 2
    client.logout()
