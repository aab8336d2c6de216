"""A ticket sink's failure is stored in English (for logs and support) and read on the
sinks page as its reason alone, in the admin's language, the English reason beside it."""

from __future__ import annotations

from meiqia.models import SinkDelivery
from meiqia.models import Ticket
from meiqia.models import TicketSink


def test_a_deliverys_last_error_is_read_in_the_pages_language(api):
    sink = TicketSink.create(team=api.team["id"], type="webhook", name="CRM",
                             config={"url": "https://crm.example.com/hook", "secret": "s" * 16})
    ticket = Ticket.create(team=api.team["id"], source="agent_created", content="hello")
    errors = ["RuntimeError: webhook answered HTTP 500",
              "RuntimeError: the SMTP server refused the user name or password",
              "ConnectionRefusedError: [Errno 111] Connection refused",
              "SinkFailed: raised OutboundRefused: cannot resolve crm.example.com: no such host"]
    for error in errors:
        SinkDelivery.create(sink=sink, ticket=ticket, event="created", status="failed",
                            attempts=4, last_error=error)

    def read(lang: str) -> list[dict]:
        response = api.get("/api/v1/ticket-sinks/deliveries", headers={"X-Meiqia-Lang": lang})
        assert response.status_code == 200
        return list(reversed(response.get_json()))  # oldest first, as created

    # The reason alone, never an exception's name (docs/security.md §10), in the
    # reader's language; the English reason beside a translated one.
    reasons = ["webhook answered HTTP 500", "the SMTP server refused the user name or password",
               "[Errno 111] Connection refused",  # the system's own words
               "cannot resolve crm.example.com: no such host"]  # through the plugin runtime
    zh = read("zh-CN")
    assert [d["last_error"] for d in zh] == [
        "Webhook 返回 HTTP 500", "SMTP 服务器拒绝了用户名或密码",
        "[Errno 111] Connection refused", "无法解析 crm.example.com：没有这个主机"]
    assert zh[0]["last_error_en"] == reasons[0] and "last_error_en" not in zh[2]
    assert zh[3]["last_error_en"] == reasons[3]
    assert [d["last_error"] for d in read("en")] == reasons


def test_the_sink_types_are_named_in_the_readers_language_only(api):
    """A sink class names itself per language (docs/plugins.md, "Tickets"); the admin
    reads his own (the WeCom example showed "企业微信群机器人 / WeCom group robot" to a
    Chinese admin; the built-in e-mail sink said "邮件 Email (SMTP)" to everyone)."""
    def names(lang: str) -> dict[str, str]:
        response = api.get("/api/v1/ticket-sinks/types", headers={"X-Meiqia-Lang": lang})
        assert response.status_code == 200, response.get_json()
        return {t["type"]: t["name"] for t in response.get_json()}

    assert names("zh-CN") == {"email": "邮件（SMTP）", "webhook": "Webhook（JSON，HMAC-SHA256 签名）"}
    assert names("en") == {"email": "Email (SMTP)", "webhook": "Webhook (JSON, HMAC-SHA256 signed)"}
