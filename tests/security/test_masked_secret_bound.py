"""A secret sent back masked (``********``) keeps the stored one only for the server
it was saved for (docs/security.md, "Other doors"; services/validation.merge_secrets).

An attacker with an admin token saved the e-mail channel's IMAP password, then
"tested" the settings with ``imap_host``/``imap_port`` pointing at his own server and
``imap_password: "********"``: his server received ``LOGIN kefu@a.cn "MAILBOX-SECRET-777"``.
A ticket sink's SMTP password went the same way on a PATCH of its host. Now a mask
with a changed host, port, URL, TLS mode or user name is a 422 naming the secret,
and nothing connects; a mask with an unrelated change still keeps the secret, and a
new server with the password typed again works.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from meiqia.models import ChannelConfig
from meiqia.models import TicketSink
from tests.conftest import close_app
from tests.conftest import make_app
from tests.conftest import truncate_all
from tests.helpers import ApiClient

SECRET = "MAILBOX-SECRET-777"


class Listener:
    """The attacker's server: a TCP port on 127.0.0.1 that counts who connects
    (each is greeted with an IMAP BYE and closed)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.connected = threading.Event()
        self.count = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.count += 1
            self.connected.set()
            try:
                conn.sendall(b"* BYE go away\r\n")
            finally:
                conn.close()

    def close(self) -> None:
        self.sock.close()
        self.thread.join(timeout=5)


@pytest.fixture
def listener() -> Iterator[Listener]:
    found = Listener()
    yield found
    found.close()


@pytest.fixture(params=["sqlite", "postgres"])
def app(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Any]:
    config: dict[str, Any] = {"OUTBOUND_ALLOWED_NETWORKS": ["127.0.0.0/8"]}
    if request.param == "postgres":
        url = request.getfixturevalue("pg_database_url")
        truncate_all(url)
        config["DATABASE_URL"] = url
    made = make_app(tmp_path, **config)
    with made.app_context():
        yield made
    close_app(made)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


MAILBOX = {"imap_host": "127.0.0.1", "imap_security": "none", "imap_user": "kefu@a.cn",
           "imap_password": SECRET, "smtp_host": "127.0.0.1", "smtp_security": "none",
           "smtp_user": "", "from_address": "kefu@a.cn", "poll_interval": 60}


def test_a_masked_channel_secret_never_goes_to_another_server(app, listener):
    api = ApiClient.registered(app)
    saved = api.put("/api/v1/channels/email", json={"enabled": False, "config": {
        **MAILBOX, "imap_port": _closed_port(), "smtp_port": _closed_port()}})
    assert saved.status_code == 200, saved.get_json()
    stored = dict(ChannelConfig.get(ChannelConfig.channel == "email").config)
    shown = saved.get_json()["config"]
    assert shown["imap_password"] == "********" and SECRET not in saved.get_data(as_text=True)

    attack = {**shown, "imap_host": "127.0.0.1", "imap_port": listener.port,
              "imap_security": "none", "imap_password": "********"}
    for lang, message in (
            ("en", "config.imap_password: config.imap_port changed: enter the secret again "
                   "(a saved secret is only sent to the server it was saved for)"),
            ("zh-CN", "IMAP 密码：IMAP 端口已更改，请重新输入（已保存的密钥只发往保存时的服务器）")):
        tested = api.post("/api/v1/channels/email/test", json={"config": attack},
                          headers={"X-Meiqia-Lang": lang})
        assert tested.status_code == 422, tested.get_json()
        assert tested.get_json()["error"]["field"] == "config.imap_password"
        assert tested.get_json()["error"]["message"] == message
    # Saving it is refused the same way; so is a new user name or TLS mode.
    for change in ({"imap_port": listener.port}, {"imap_user": "attacker@evil.test"},
                   {"smtp_host": "localhost"}, {"imap_security": "starttls"}):
        refused = api.put("/api/v1/channels/email", json={"config": {**shown, **change}})
        assert refused.status_code == 422, (change, refused.get_json())
        assert refused.get_json()["error"]["field"] == "config.imap_password"
    assert not listener.connected.is_set() and listener.count == 0  # nothing connected
    assert ChannelConfig.get(ChannelConfig.channel == "email").config == stored

    # An unrelated change with the mask keeps the secret.
    kept = api.put("/api/v1/channels/email", json={"config": {**shown, "poll_interval": 30}})
    assert kept.status_code == 200, kept.get_json()
    row = ChannelConfig.get(ChannelConfig.channel == "email")
    assert row.config["imap_password"] == SECRET and row.config["poll_interval"] == 30

    # The new server with the password typed again: tested, and saved.
    retyped = {**attack, "imap_password": "typed-again-1"}
    tested = api.post("/api/v1/channels/email/test", json={"config": retyped})
    assert tested.status_code == 200 and tested.get_json()["ok"] is False, tested.get_json()
    assert listener.connected.wait(10) and listener.count == 1
    moved = api.put("/api/v1/channels/email", json={"config": retyped})
    assert moved.status_code == 200, moved.get_json()
    row = ChannelConfig.get(ChannelConfig.channel == "email")
    assert row.config["imap_port"] == listener.port
    assert row.config["imap_password"] == "typed-again-1"


def test_a_masked_sink_secret_never_goes_to_another_server(app):
    api = ApiClient.registered(app)
    made = api.post("/api/v1/ticket-sinks", json={"type": "email", "name": "工单邮件", "config": {
        "host": "127.0.0.1", "port": 2525, "user": "kefu", "password": SECRET,
        "starttls": True, "from": "kefu@a.cn", "to": "boss@a.cn"}})
    assert made.status_code == 201, made.get_json()
    sink = made.get_json()
    assert sink["config"]["password"] == "********"
    stored = dict(TicketSink.get_by_id(sink["id"]).config)
    for change in ({"host": "localhost"}, {"port": 8926}, {"starttls": False},
                   {"user": "attacker"}):
        refused = api.patch(f"/api/v1/ticket-sinks/{sink['id']}", json={
            "config": {**sink["config"], **change}}, headers={"X-Meiqia-Lang": "zh-CN"})
        assert refused.status_code == 422, (change, refused.get_json())
        assert refused.get_json()["error"]["field"] == "config.password"
        assert refused.get_json()["error"]["message"].startswith("密码：")
        assert refused.get_json()["error"]["message"].endswith(
            "已更改，请重新输入（已保存的密钥只发往保存时的服务器）")
    assert TicketSink.get_by_id(sink["id"]).config == stored

    kept = api.patch(f"/api/v1/ticket-sinks/{sink['id']}", json={
        "config": {**sink["config"], "to": "team@a.cn"}})
    assert kept.status_code == 200, kept.get_json()
    row = TicketSink.get_by_id(sink["id"])
    assert row.config["password"] == SECRET and row.config["to"] == "team@a.cn"

    moved = api.patch(f"/api/v1/ticket-sinks/{sink['id']}", json={
        "config": {**sink["config"], "host": "localhost", "password": "typed-again-1"}})
    assert moved.status_code == 200, moved.get_json()
    row = TicketSink.get_by_id(sink["id"])
    assert row.config["host"] == "localhost" and row.config["password"] == "typed-again-1"

    # The webhook sink: its signing secret stays with its URL.
    hook = api.post("/api/v1/ticket-sinks", json={"type": "webhook", "name": "CRM", "config": {
        "url": "https://crm.example.com/hook", "secret": "s" * 16}}).get_json()
    refused = api.patch(f"/api/v1/ticket-sinks/{hook['id']}", json={"config": {
        "url": "https://evil.example.net/hook", "secret": "********"}})
    assert refused.status_code == 422 and \
        refused.get_json()["error"]["field"] == "config.secret", refused.get_json()
    assert TicketSink.get_by_id(hook["id"]).config["url"] == "https://crm.example.com/hook"
