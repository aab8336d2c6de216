"""docs/security.md §6 and §10, as a docs-only check against ``meiqia run`` found them.

- An IPv6 literal in brackets (``[::1]``, as URLs and SMTP write it) passed the check
  when an admin saved an e-mail sink or the e-mail channel (201/200): the resolver
  cannot read brackets, and a name that does not resolve is let through at save time.
  The brackets are taken off, then the address is checked (422).
- A delivery the gate refused was retried on a timer as if the receiver were down;
  the same destination is refused on every attempt, so it fails at once.
- The deliveries list showed ``SinkFailed: raised OutboundRefused: cannot resolve
  [::1]: no such host``: class names in an error field. It shows the reason only, in
  the reader's language.
"""

from __future__ import annotations

import pytest

from meiqia.models import SinkDelivery
from meiqia.models import Ticket
from meiqia.models import TicketSink
from meiqia.services import outbound

REFUSAL = ("{h} resolves to {a}, a private address (loopback): the server does not "
           "connect there (the operator may allow private networks for the whole instance "
           "with OUTBOUND_ALLOWED_NETWORKS)")


EN = {"X-Meiqia-Lang": "en"}
ZH = {"X-Meiqia-Lang": "zh-CN"}


def smtp_sink(api, host: str, port: int = 25, headers=EN):
    return api.post("/api/v1/ticket-sinks", headers=headers, json={
        "type": "email", "name": "邮件", "config": {
            "host": host, "port": port, "from": "bot@shop.example", "to": "team@shop.example"}})


def email_channel(api, **hosts):
    config = {"imap_host": "imap.shop.example", "imap_user": "support@shop.example",
              "imap_password": "mailbox-pass-1", "smtp_host": "smtp.shop.example",
              "from_address": "support@shop.example", **hosts}
    return api.put("/api/v1/channels/email", headers=EN,
                   json={"enabled": True, "config": config})


@pytest.mark.parametrize("host", ["[::1]", "[::ffff:127.0.0.1]", "[fd00::1]",
                                  "[::ffff:a00:5]", "[fe80::1%eth0]", "fe80::1%nosuchif0", "[fe80::1%nosuchif0]"])
def test_a_bracketed_private_ipv6_literal_is_refused_when_saved(api, host):
    response = smtp_sink(api, host)
    assert response.status_code == 422, (host, response.get_json())
    error = response.get_json()["error"]
    assert error["field"] == "config.host" and "a private address" in error["message"], error
    for field in ("imap_host", "smtp_host"):
        saved = email_channel(api, **{field: host})
        assert saved.status_code == 422, (field, host, saved.get_json())
        assert saved.get_json()["error"]["field"] == f"config.{field}"
    assert api.get("/api/v1/ticket-sinks").get_json() == []
    assert not api.get("/api/v1/channels/email").get_json()["enabled"]


def test_brackets_around_anything_but_an_address_are_refused_in_the_admins_words(api):
    response = smtp_sink(api, "[smtp.shop.example]", headers=ZH)
    assert response.status_code == 422
    assert response.get_json()["error"]["message"] == "SMTP 服务器：主机名或 IP 地址无效"
    zh = smtp_sink(api, "[::1]", headers=ZH).get_json()["error"]
    assert zh["message"].startswith("SMTP 服务器：[::1] 解析为 ::1，是内网地址（loopback）")
    with pytest.raises(outbound.OutboundRefused):
        outbound.connect("[::1]", 25)  # and at every connection


def test_a_name_that_does_not_resolve_is_saved_and_its_deliveries_retried(api):
    """The documented rule: DNS may be down, or the name not yet published. Every
    delivery resolves it again; it is retried, and shown without class names."""
    host = "mail.shop.invalid"  # RFC 6761: never resolves
    assert smtp_sink(api, host).status_code == 201
    assert email_channel(api, imap_host=host, smtp_host=host).status_code == 200
    assert api.post("/api/v1/tickets", json={"content": "订单 A1001"}).status_code == 201
    (delivery,) = api.get("/api/v1/ticket-sinks/deliveries", headers=EN).get_json()
    assert delivery["status"] == "failed" and delivery["attempts"] == 5  # every retry ran
    assert delivery["last_error"] == f"cannot resolve {host}: no such host"
    assert "last_error_en" not in delivery


def test_a_refused_destination_fails_at_once_with_the_reason_alone(api):
    """Saved while the operator allowed loopback, refused once he no longer does: the
    first attempt fails the delivery (no retries on a timer), and the admin reads the
    gate's reason, in his language, with no exception's name."""
    api.app.config["OUTBOUND_ALLOWED_NETWORKS"] = ["::1/128"]
    assert smtp_sink(api, "[::1]", 2525).status_code == 201
    api.app.config["OUTBOUND_ALLOWED_NETWORKS"] = []
    assert api.post("/api/v1/tickets", json={"content": "订单 A1001"}).status_code == 201
    (row,) = SinkDelivery.select()
    assert row.status == "failed" and row.attempts == 1, (row.status, row.attempts)
    english = REFUSAL.format(h="[::1]", a="::1")
    (shown,) = api.get("/api/v1/ticket-sinks/deliveries?status=failed", headers=EN).get_json()
    assert shown["last_error"] == english and "last_error_en" not in shown
    (zh,) = api.get("/api/v1/ticket-sinks/deliveries", headers=ZH).get_json()
    assert zh["last_error"].startswith("[::1] 解析为 ::1，是内网地址（loopback）")
    assert zh["last_error_en"] == english


def test_stored_errors_are_read_without_class_names(api):
    """Rows stored before this release keep their text; the list reads them so."""
    sink = TicketSink.create(team=api.team["id"], type="email", name="邮件",
                             config={"host": "smtp.shop.example", "port": 25})
    ticket = Ticket.create(team=api.team["id"], source="agent_created", content="hello")
    SinkDelivery.create(sink=sink, ticket=ticket, event="created", status="failed", attempts=4,
                        last_error="SinkFailed: raised OutboundRefused: cannot resolve [::1]: "
                                   "no such host")
    for lang, expected in (("en", "cannot resolve [::1]: no such host"),
                           ("zh-CN", "无法解析 [::1]：没有这个主机")):
        (row,) = api.get("/api/v1/ticket-sinks/deliveries",
                         headers={"X-Meiqia-Lang": lang}).get_json()
        assert row["last_error"] == expected, row
        assert "Refused" not in str(row) and "SinkFailed" not in str(row)


def test_a_channels_private_api_address_is_refused_when_saved(api):
    """WeChat's API address (a setting for a proxy or a test stand-in) is where the
    server sends every answer: the gate checks it when saved, as on every call."""
    refused = api.put("/api/v1/channels/wechat", headers=ZH, json={
        "enabled": True, "config": {"app_id": "wx1234", "app_secret": "app-secret-1",
                                    "token": "tok123", "encryption_mode": "plain",
                                    "api_base_url": "http://[::1]:8080/"}})
    assert refused.status_code == 422, refused.get_json()
    error = refused.get_json()["error"]
    assert error["field"] == "config.api_base_url"
    assert error["message"].startswith("接口地址：::1 解析为 ::1，是内网地址（loopback）"), error


@pytest.mark.parametrize("host", ["127.0.0.1 ", "\t127.0.0.1", "smtp.shop .example",
                                  "smtp.shop.example\n", "smtp.shop.example\x7f"])
def test_a_host_with_spaces_or_control_characters_is_refused_like_a_url(api, host):
    """Found from outside: an SMTP host "127.0.0.1 " was saved (201) and every delivery
    then failed "cannot resolve 127.0.0.1 : no such host"; a webhook URL with a space
    was a 422. The hosts of the e-mail sink and the e-mail channel (IMAP, SMTP) now
    take the URL's host check, with its words."""
    response = smtp_sink(api, host)
    assert response.status_code == 422, (host, response.get_json())
    assert response.get_json()["error"] == {
        **response.get_json()["error"], "field": "config.host",
        "message": "config.host: must not contain spaces or control characters"}
    zh = smtp_sink(api, host, headers=ZH).get_json()["error"]
    assert zh["message"] == "SMTP 服务器：不能包含空格或控制字符"
    for field, label in (("imap_host", "IMAP 服务器"), ("smtp_host", "SMTP 服务器")):
        saved = email_channel(api, **{field: host})
        assert saved.status_code == 422, (field, host, saved.get_json())
        assert saved.get_json()["error"]["field"] == f"config.{field}"
        zh = api.put("/api/v1/channels/email", headers=ZH, json={"enabled": True, "config": {
            "imap_host": "imap.shop.example", "imap_user": "support@shop.example",
            "imap_password": "mailbox-pass-1", "smtp_host": "smtp.shop.example",
            "from_address": "support@shop.example", field: host}}).get_json()["error"]
        assert zh["message"] == f"{label}：不能包含空格或控制字符"
    assert api.get("/api/v1/ticket-sinks").get_json() == []
    # Not a host at all: the URL check's other words.
    bad = smtp_sink(api, "smtp_shop!example").get_json()["error"]
    assert bad["message"] == "config.host: the host name or IP address is not valid"
    # Host names and addresses as they are written still pass.
    for good in ("smtp.shop.invalid", "例子.invalid"):
        assert smtp_sink(api, good).status_code == 201, good
    loopback = smtp_sink(api, "127.0.0.1").get_json()["error"]  # checked further, as before
    assert "a private address" in loopback["message"], loopback
