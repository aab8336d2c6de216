"""The sink in a running meiqia, against a local stand-in for the WeCom robot
(it follows the robot's documented wire format), through meiqia.testing only."""

import json
import threading
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer

import pytest

from meiqia.testing import wait_until

PLUGIN = "example_wecom_sink"  # the entry point: the package must be installed
# The stand-in listens on 127.0.0.1: the operator's setting that lets outbound
# requests reach a private address (docs/security.md §6).
CONFIG = {"OUTBOUND_ALLOW_PRIVATE": True}


@pytest.fixture
def robot():
    """A WeCom group robot on a free port: records each message, answers errcode 0
    (or ``refuse`` codes while set)."""
    received, state = [], {"errcode": 0}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            received.append(body)
            answer = json.dumps({"errcode": state["errcode"], "errmsg": "ok"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield {"url": f"http://127.0.0.1:{server.server_port}/cgi-bin/webhook/send?key=k1",
           "received": received, "state": state}
    server.shutdown()
    server.server_close()


@pytest.mark.meiqia(plugins=[PLUGIN], config=CONFIG)
def test_new_and_changed_tickets_reach_the_group(meiqia_admin, robot):
    sink = meiqia_admin.post("/api/v1/ticket-sinks", json={
        "type": "wecom_robot", "name": "售后群", "config": {"url": robot["url"]}})
    assert sink.status == 201, sink
    assert "k1" not in json.dumps(sink.json())  # the key is a secret: masked
    ticket = meiqia_admin.post("/api/v1/tickets", json={
        "subject": "订单 A1001 没收到", "content": "订单 A1001 没收到", "name": "张三",
        "phone": "13800138000"})
    assert ticket.status == 201, ticket
    tid = ticket.json()["id"]
    wait_until(lambda: robot["received"], 10, "the robot's first message")
    assert robot["received"][0]["msgtype"] == "text"
    assert robot["received"][0]["text"]["content"].startswith(f"新工单 #{tid}（normal）：订单 A1001")
    meiqia_admin.patch(f"/api/v1/tickets/{tid}", json={"status": "pending"})
    wait_until(lambda: len(robot["received"]) == 2, 10, "the update")
    assert "status: open → pending" in robot["received"][1]["text"]["content"]


@pytest.mark.meiqia(plugins=[PLUGIN], config=CONFIG)
def test_a_refused_delivery_is_recorded_with_the_reason(meiqia_admin, robot):
    robot["state"]["errcode"] = 93000  # WeCom: invalid webhook key
    meiqia_admin.post("/api/v1/ticket-sinks", json={
        "type": "wecom_robot", "name": "售后群", "config": {"url": robot["url"]}})
    meiqia_admin.post("/api/v1/tickets", json={"subject": "发票", "content": "要发票",
                                               "name": "李四", "phone": "13900139000"})

    def failed():
        deliveries = meiqia_admin.get("/api/v1/ticket-sinks/deliveries").json()
        return [d for d in deliveries if "errcode 93000" in (d["last_error"] or "")]

    # Recorded with the reason and retried later with backoff (then "failed").
    delivery = wait_until(failed, 10, "the refused delivery")[0]
    assert delivery["sink_type"] == "wecom_robot" and delivery["status"] != "delivered"


@pytest.mark.meiqia(plugins=[PLUGIN])
def test_a_private_address_is_refused_when_the_server_does_not_allow_it(meiqia_admin, robot):
    refused = meiqia_admin.post("/api/v1/ticket-sinks", json={
        "type": "wecom_robot", "name": "售后群", "config": {"url": robot["url"]}})
    assert refused.status == 422, refused


@pytest.mark.meiqia(plugins=[PLUGIN])
def test_the_admin_reads_the_sink_type_in_his_own_language(meiqia_admin):
    """The class gives one name per language; the admin's page shows only his (a
    Chinese admin read "企业微信群机器人 / WeCom group robot")."""
    for lang, name in (("zh-CN", "企业微信群机器人"), ("en", "WeCom group robot")):
        types = meiqia_admin.get("/api/v1/ticket-sinks/types", headers={"X-Meiqia-Lang": lang})
        assert types.status == 200, types
        assert {t["type"]: t["name"] for t in types.json()}["wecom_robot"] == name, types.json()
