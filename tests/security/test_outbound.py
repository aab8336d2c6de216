"""Issue 15 §6: every outbound connection passes one SSRF gate (``services.outbound``).

The attacks: a team admin points the email ticket sink at loopback or private
SMTP hosts (and learns from the delivery errors which ports are open); a team
admin switches on "allow private addresses" for his webhook. Now the email sink
is refused like the webhook, at configuration and again at every delivery; its
errors read the same whatever the port did; the switch is gone, private
networks are the operator's instance setting.
"""

from __future__ import annotations

import socket
import threading

import pytest

from meiqia.config import ConfigError
from meiqia.plugins import email_sink
from meiqia.services import outbound
from tests.conftest import make_app
from tests.integration.test_two_processes import free_port

LOCAL = ["127.0.0.0/8"]


def smtp_sink(api, host: str, port: int):
    return api.post("/api/v1/ticket-sinks", json={"type": "email", "name": "邮件", "config": {
        "host": host, "port": port, "from": "bot@shop.example", "to": "team@shop.example"}})


def a_ticket(api) -> None:
    made = api.post("/api/v1/tickets", json={"content": "订单 A1001 没收到"})
    assert made.status_code == 201, made.get_json()


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "10.0.0.5", "192.168.1.1",
                                  "169.254.169.254", "::1", "0x7f000001", "2130706433",
                                  "127.1", "0.0.0.0", "::ffff:127.0.0.1", "100.64.0.1",
                                  "fd00::1"])
def test_the_email_sink_refuses_private_smtp_hosts(api, host):
    response = smtp_sink(api, host, 25)
    assert response.status_code == 422, (host, response.get_json())
    error = response.get_json()["error"]
    assert error["field"] == "config.host" and "private" in error["message"], error
    assert api.get("/api/v1/ticket-sinks").get_json() == []


def test_a_stored_private_sink_is_refused_at_delivery_and_nothing_connects(api):
    """A sink saved while the operator allowed the network (or before this check
    existed) cannot reach it once the setting is gone: checked on every send."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    connections = []
    listener.settimeout(0.2)

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            connections.append(conn)
            conn.close()

    stop = threading.Event()
    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        api.app.config["OUTBOUND_ALLOWED_NETWORKS"] = LOCAL
        assert smtp_sink(api, "127.0.0.1", port).status_code == 201
        api.app.config["OUTBOUND_ALLOWED_NETWORKS"] = []
        a_ticket(api)
        failed = api.get("/api/v1/ticket-sinks/deliveries?status=failed").get_json()
        assert len(failed) == 1, failed
        assert "private" in failed[0]["last_error"], failed
        assert connections == []  # not even a TCP handshake reached the port
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()


def test_delivery_errors_do_not_tell_which_ports_are_open(api, monkeypatch):
    """Even where the operator allowed the network: a closed port, an open port
    that is no SMTP server, and one that never answers fail with the same words."""
    monkeypatch.setattr(email_sink, "TIMEOUT", 0.5)  # the silent port's wait, shortened
    api.app.config["OUTBOUND_ALLOWED_NETWORKS"] = LOCAL
    closed = free_port()
    talker = socket.create_server(("127.0.0.1", 0))   # says something that is not SMTP
    silent = socket.create_server(("127.0.0.1", 0))   # accepts, says nothing
    stop = threading.Event()

    def serve(server: socket.socket, greeting: bytes | None) -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            if greeting is not None:
                conn.sendall(greeting)
                conn.close()
            else:
                threading.Timer(3, conn.close).start()

    threads = [threading.Thread(target=serve, args=(talker, b"HTTP/1.1 400 Bad Request\r\n\r\n"),
                                daemon=True),
               threading.Thread(target=serve, args=(silent, None), daemon=True)]
    for t in threads:
        t.start()
    try:
        ports = [closed, talker.getsockname()[1], silent.getsockname()[1]]
        for port in ports:
            assert smtp_sink(api, "127.0.0.1", port).status_code == 201
        a_ticket(api)
        failed = api.get("/api/v1/ticket-sinks/deliveries?status=failed").get_json()
        assert len(failed) == 3, failed
        by_port = {}
        sinks = {s["id"]: s["config"]["port"] for s in api.get("/api/v1/ticket-sinks").get_json()}
        for delivery in failed:
            port = sinks[delivery["sink_id"]]
            by_port[port] = delivery["last_error"].replace(str(port), "<port>")
        assert len(set(by_port.values())) == 1, by_port
        assert "could not reach an SMTP server" in next(iter(by_port.values()))
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=5)
        talker.close()
        silent.close()


def test_the_webhook_switch_is_no_team_setting_any_more(api):
    schema = next(t["schema"] for t in api.get("/api/v1/ticket-sinks/types").get_json()
                  if t["type"] == "webhook")
    assert "allow_private_addresses" not in schema["properties"]
    response = api.post("/api/v1/ticket-sinks", json={"type": "webhook", "name": "x", "config": {
        "url": "http://127.0.0.1:9/hook", "secret": "s" * 16, "allow_private_addresses": True}})
    assert response.status_code == 422
    assert response.get_json()["error"]["field"] == "config.allow_private_addresses"


def test_the_gate_for_plugins_http(app):
    """``outbound.http_request`` is what channels and plugins use: the same checks."""
    for url in ("http://127.0.0.1:9/", "http://169.254.169.254/latest/meta-data/",
                "http://[::1]/", "ftp://example.com/", "http://10.1.2.3/"):
        with pytest.raises(outbound.OutboundRefused):
            outbound.http_request("GET", url, timeout=1)
    app.config["OUTBOUND_ALLOWED_NETWORKS"] = ["10.1.2.0/24"]
    outbound.check_address("relay", "10.1.2.3")  # the operator's network: allowed
    with pytest.raises(outbound.OutboundRefused):
        outbound.check_address("relay", "10.1.3.3")
    with pytest.raises(outbound.OutboundRefused):
        outbound.check_address("metadata", "169.254.169.254")


METADATA_HOSTS = ("169.254.169.254", "169.254.0.1", "fe80::1", "[fe80::a9fe:a9fe]",
                  "100.100.100.200", "fd00:ec2::254", "::ffff:169.254.169.254")


def test_allow_private_opens_loopback_and_private_networks_not_link_local(app):
    """With OUTBOUND_ALLOW_PRIVATE a team admin saved a WeChat channel whose API
    address was http://169.254.169.254 and "test connection" reached it: the switch
    opened every non-public address. It opens loopback and private networks only;
    link-local and the cloud metadata endpoints stay refused unless the operator
    names their network."""
    app.config["OUTBOUND_ALLOW_PRIVATE"] = True
    for address in ("127.0.0.1", "::1", "10.1.2.3", "172.16.0.9", "192.168.1.1", "fd12::1"):
        outbound.check_address("intranet", address)
    for host in METADATA_HOSTS:
        with pytest.raises(outbound.OutboundRefused, match="link-local"):
            outbound.check_host(host, 80)
    for host in ("224.0.0.1", "0.0.0.0", "100.64.0.1"):  # multicast, unspecified, shared
        with pytest.raises(outbound.OutboundRefused):
            outbound.check_host(host, 80)
    app.config["OUTBOUND_ALLOWED_NETWORKS"] = ["169.254.169.254/32", "fe80::/10",
                                               "100.100.100.200/32"]
    for host in ("169.254.169.254", "fe80::1", "100.100.100.200"):  # named: opened
        outbound.check_host(host, 80)
    with pytest.raises(outbound.OutboundRefused):
        outbound.check_host("169.254.0.1", 80)


def test_allow_private_does_not_let_a_channel_reach_the_metadata_address(tmp_path):
    """The admin's way in: saving the WeChat channel, and "test connection" with an
    unsaved address, are refused on the field, before any connection."""
    from tests.conftest import close_app
    from tests.helpers import ApiClient

    app = make_app(tmp_path, OUTBOUND_ALLOW_PRIVATE=True)
    try:
        with app.app_context():
            api = ApiClient.registered(app)
            config = {"app_id": "wx1234567890abcdef", "app_secret": "s3cr3t",
                      "token": "meiqiaToken2026", "encryption_mode": "plain",
                      "api_base_url": "http://169.254.169.254"}
            saved = api.put("/api/v1/channels/wechat", json={"enabled": True,
                                                             "config": config})
            assert saved.status_code == 422, saved.get_json()
            assert saved.get_json()["error"]["field"] == "config.api_base_url"
            assert "link-local" in saved.get_json()["error"]["message"]
            tested = api.post("/api/v1/channels/wechat/test", json={"config": config})
            said = tested.get_json()
            assert tested.status_code == 422 or said.get("ok") is False, said
            assert "link-local" in str(said), said
    finally:
        close_app(app)


def test_a_redirect_is_returned_not_followed(app):
    app.config["OUTBOUND_ALLOWED_NETWORKS"] = LOCAL
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def answer() -> None:
        conn, _ = server.accept()
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 302 Found\r\nLocation: http://169.254.169.254/\r\n"
                     b"Content-Length: 0\r\n\r\n")
        conn.close()

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    status, headers, _ = outbound.http_request("GET", f"http://127.0.0.1:{port}/", timeout=2)
    thread.join(timeout=5)
    server.close()
    assert status == 302 and headers["location"] == "http://169.254.169.254/"


def test_private_networks_are_an_instance_setting(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="OUTBOUND_ALLOWED_NETWORKS"):
        make_app(tmp_path, OUTBOUND_ALLOWED_NETWORKS=["10.0.0.0/33"])
    app = make_app(tmp_path / "b", OUTBOUND_ALLOWED_NETWORKS="10.1.2.0/24, fd00::/8")
    try:
        assert app.config["OUTBOUND_ALLOWED_NETWORKS"] == ["10.1.2.0/24", "fd00::/8"]
        assert app.config["OUTBOUND_ALLOW_PRIVATE"] is False
    finally:
        from tests.conftest import close_app

        close_app(app)



def test_the_refusal_reads_in_the_admins_language(api):
    response = api.post("/api/v1/ticket-sinks", headers={"Accept-Language": "zh-CN"}, json={
        "type": "email", "name": "邮件", "config": {"host": "169.254.169.254", "port": 25,
                                                   "from": "a@shop.example",
                                                   "to": "b@shop.example"}})
    assert response.status_code == 422
    assert response.get_json()["error"]["message"] == (
        "SMTP 服务器：169.254.169.254 解析为 169.254.169.254，是内网地址（link-local）：服务器"
        "不会连接到那里（运维人员可以用实例配置 OUTBOUND_ALLOWED_NETWORKS 为整个实例放行内网）")


def test_a_malformed_sink_url_is_refused_in_our_words_not_urllibs(api):
    """The webhook sink checked its URL with urllib and showed its exception
    ("网址：Invalid IPv6 URL", "Port out of range 0-65535"); it uses the one URL
    check now (services/validation.http_url), and so does the gate for plugins."""
    cases = {
        "http://[::1": ("config.url: the host name or IP address is not valid",
                        "网址：主机名或 IP 地址无效"),
        "http://[中文]/": ("config.url: the host name or IP address is not valid",
                         "网址：主机名或 IP 地址无效"),
        "http://a.cn:99999/": ("config.url: the port must be a number from 1 to 65535",
                               "网址：端口必须是 1 到 65535 之间的数字"),
        "https://shop.example.cn:端口/": (
            "config.url: the port must be a number from 1 to 65535",
            "网址：端口必须是 1 到 65535 之间的数字"),
        "http://%zz/": ("config.url: the host name or IP address is not valid",
                        "网址：主机名或 IP 地址无效"),
    }
    for url, (english, chinese) in cases.items():
        body = {"type": "webhook", "name": "x", "config": {"url": url, "secret": "s" * 16}}
        response = api.post("/api/v1/ticket-sinks", json=body)
        assert response.status_code == 422, (url, response.get_json())
        assert response.get_json()["error"] == {
            "code": "invalid", "field": "config.url", "message": english}
        zh = api.post("/api/v1/ticket-sinks?lang=zh-CN", json=body).get_json()["error"]
        assert zh["message"] == chinese
        with pytest.raises(outbound.OutboundRefused) as refused:
            outbound.check_url(url)
        assert str(refused.value) == english.replace("config.url", "url")
    assert api.get("/api/v1/ticket-sinks").get_json() == []


def test_no_module_opens_a_connection_around_the_gate():
    """A new sink, channel or client that used a socket or HTTP library of its own
    would skip the address check; only ``services/outbound.py`` may."""
    import pathlib
    import re

    root = pathlib.Path(__file__).resolve().parents[2] / "meiqia"
    pattern = re.compile(r"smtplib\.SMTP(_SSL)?\(|http\.client\.HTTPS?Connection\(|urlopen\(|"
                         r"socket\.create_connection\(|\.connect\(\(|import requests|"
                         r"import httpx|import urllib3|import aiohttp")
    offenders = [f"{path.relative_to(root)}: {line.strip()}"
                 for path in sorted(root.rglob("*.py")) if path.name != "outbound.py"
                 for line in path.read_text(encoding="utf-8").splitlines()
                 if pattern.search(line)]
    assert not offenders, offenders
