"""The webhook channel in a running meiqia, through meiqia.testing only: signed
messages in, the bot's and an agent's answers out to a local receiver that
checks the signature, duplicates stored once, a failing receiver retried and
resent by hand, the secret never shown."""

import json
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer

import pytest
from meiqia_example_webhook_channel import sign
from meiqia_example_webhook_channel import signed_headers
from meiqia_example_webhook_channel import verify

from meiqia.testing import wait_until

PLUGIN = "example_webhook_channel"  # the entry point: the package must be installed
SECRET = "a-long-signing-secret-0123"
# The receiver listens on 127.0.0.1: the operator's setting that lets outbound requests
# reach a private address (docs/security.md §6). One retry, at once, keeps tests short.
CONFIG = {"OUTBOUND_ALLOW_PRIVATE": True, "CHANNEL_DELIVERY_RETRY": (1, (0,))}


@pytest.fixture
def receiver():
    """The system on the other side: records each signed POST (refuses bad
    signatures), answers ``state["status"]``."""
    received, state = [], {"status": 200}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            good = verify(SECRET, self.headers.get("X-Meiqia-Timestamp"),
                          self.headers.get("X-Meiqia-Signature"), body)
            status = state["status"] if good else 401
            if status == 200:
                received.append(json.loads(body))
            answer = json.dumps({"id": f"r-{len(received)}"}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield {"url": f"http://127.0.0.1:{server.server_port}/meiqia-replies",
           "received": received, "state": state}
    server.shutdown()
    server.server_close()


def enable(admin, receiver):
    answer = admin.request("PUT", "/api/v1/channels/webhook", json_body={
        "enabled": True, "config": {"outbound_url": receiver["url"], "secret": SECRET}})
    assert answer.status == 200, answer
    return answer.json()


def send_in(server, team_id, payload, secret=SECRET, now=None):
    """POST a message as the other system would, signed with ``secret``."""
    body = json.dumps(payload, ensure_ascii=False).encode()
    request = urllib.request.Request(server.http(f"/channels/webhook/{team_id}/inbound"),
                                     data=body, method="POST",
                                     headers=signed_headers(secret, body, now))
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.loads(error.read() or b"null")


@pytest.mark.meiqia(plugins=[PLUGIN], config=CONFIG)
def test_a_message_in_gets_the_bots_answer_out(meiqia_server, meiqia_admin, receiver):
    enable(meiqia_admin, receiver)
    status, result = send_in(meiqia_server, meiqia_admin.team["id"],
                             {"user_id": "crm-42", "text": "你们几点上班？", "message_id": "m-1",
                              "name": "王女士"})
    assert status == 200 and result["duplicate"] is False
    first = wait_until(lambda: receiver["received"], 10, "the first answer")[0]
    assert first["type"] == "message" and first["user_id"] == "crm-42"
    assert first["conversation_id"] == result["conversation_id"] and first["text"]
    assert first["in_reply_to"] == "m-1"
    # The same message again (the other system retried): stored once.
    again = send_in(meiqia_server, meiqia_admin.team["id"],
                    {"user_id": "crm-42", "text": "你们几点上班？", "message_id": "m-1"})
    assert again == (200, {**result, "duplicate": True})


@pytest.mark.meiqia(plugins=[PLUGIN], config=CONFIG)
def test_human_handover_and_the_agents_reply(meiqia_server, meiqia_admin, meiqia_agent,
                                             receiver):
    enable(meiqia_admin, receiver)
    team = meiqia_admin.team["id"]
    _, result = send_in(meiqia_server, team, {"user_id": "crm-7", "text": "人工",
                                              "message_id": "h-1"})
    cid = result["conversation_id"]
    meiqia_agent.expect("assigned", where=lambda d: d["conversation_id"] == cid)
    meiqia_agent.send(cid, "您好，我是李客服，请问有什么可以帮您？")
    reply = wait_until(lambda: [m for m in receiver["received"] if m["kind"] == "agent"],
                       10, "the agent's reply")[0]
    assert reply["text"] == "您好，我是李客服，请问有什么可以帮您？"
    assert reply["sender"] == "李客服" and reply["user_id"] == "crm-7"


@pytest.mark.meiqia(plugins=[PLUGIN], config=CONFIG)
def test_unsigned_forged_or_replayed_requests_are_refused(meiqia_server, meiqia_admin,
                                                          receiver):
    team = meiqia_admin.team["id"]
    payload = {"user_id": "x", "text": "hi"}
    assert send_in(meiqia_server, team, payload)[0] == 404  # not enabled yet
    enable(meiqia_admin, receiver)
    assert send_in(meiqia_server, team, payload, secret="not-the-secret-at-all")[0] == 401
    assert send_in(meiqia_server, team, payload, now=time.time() - 3600)[0] == 401
    assert send_in(meiqia_server, team + 1000, payload)[0] == 404
    assert send_in(meiqia_server, team, {"user_id": "x"})[0] == 400
    assert send_in(meiqia_server, team, {"user_id": "x", "text": "  "})[0] == 422
    history = meiqia_admin.get("/api/v1/conversations").json()
    assert not any(history[k] for k in ("mine", "colleagues", "queue"))
    assert sign("k", "1", b"{}") == sign("k", "1", b"{}") != sign("k", "2", b"{}")


@pytest.mark.meiqia(plugins=[PLUGIN], config=CONFIG)
def test_a_failing_receiver_is_retried_shown_and_resent_by_hand(meiqia_server, meiqia_admin,
                                                                meiqia_agent, receiver):
    enable(meiqia_admin, receiver)
    _, result = send_in(meiqia_server, meiqia_admin.team["id"],
                        {"user_id": "crm-9", "text": "人工", "message_id": "f-1"})
    cid = result["conversation_id"]
    meiqia_agent.expect("assigned", where=lambda d: d["conversation_id"] == cid)
    receiver["state"]["status"] = 503
    sent = meiqia_agent.send(cid, "稍等，我查一下")

    def failed():
        found = meiqia_agent.get(f"/api/v1/conversations/{cid}/deliveries").json()
        return [d for d in found["deliveries"]
                if d["message_id"] == sent["id"] and d["status"] == "failed"]

    delivery = wait_until(failed, 10, "the delivery to fail")[0]
    assert delivery["attempts"] == 2 and "HTTP 503" in delivery["reason"]
    receiver["state"]["status"] = 200
    again = meiqia_agent.post(f"/api/v1/channel-deliveries/{delivery['id']}/retry")
    assert again.status == 200 and again.json()["status"] == "sent"
    assert receiver["received"][-1]["text"] == "稍等，我查一下"


@pytest.mark.meiqia(plugins=[PLUGIN], config=CONFIG)
def test_the_secret_is_write_only_and_the_connection_can_be_tested(meiqia_admin, receiver):
    shown = enable(meiqia_admin, receiver)
    assert shown["config"]["secret"] == "********" and SECRET not in json.dumps(shown)
    assert SECRET not in json.dumps(meiqia_admin.get("/api/v1/channels").json())
    tested = meiqia_admin.post("/api/v1/channels/webhook/test", json={})
    assert tested.json() == {"ok": True, "message": "the receiver answered HTTP 200"}
    short = meiqia_admin.request("PUT", "/api/v1/channels/webhook", json_body={
        "config": {"outbound_url": receiver["url"], "secret": "short"}})
    assert short.status == 422 and short.json()["error"]["field"] == "config.secret"


@pytest.mark.meiqia(plugins=[PLUGIN], config={"CHANNEL_DELIVERY_RETRY": (3, (30, 30, 30))})
def test_a_private_reply_url_is_refused_when_saved_and_when_sending(
        meiqia_app, meiqia_server, meiqia_admin, meiqia_agent, receiver):
    """The reply URL goes through the SSRF guard when saved (the receiver here is on
    127.0.0.1, a private address: 422 on the field) and on every reply: one refused
    there fails at once (retrying the same URL cannot help), with the guard's reason."""
    refused = meiqia_admin.request("PUT", "/api/v1/channels/webhook?lang=zh-CN", json_body={
        "enabled": True, "config": {"outbound_url": receiver["url"], "secret": SECRET}})
    assert refused.status == 422, refused
    error = refused.json()["error"]
    assert error["field"] == "config.outbound_url"
    assert error["message"].startswith("回复网址：127.0.0.1 解析为 127.0.0.1，是内网地址"), error
    # Saved while the operator allowed private addresses; then he no longer does.
    meiqia_app.config["OUTBOUND_ALLOW_PRIVATE"] = True
    enable(meiqia_admin, receiver)
    _, result = send_in(meiqia_server, meiqia_admin.team["id"],
                        {"user_id": "crm-5", "text": "人工", "message_id": "p-1"})
    cid = result["conversation_id"]
    meiqia_agent.expect("assigned", where=lambda d: d["conversation_id"] == cid)
    meiqia_app.config["OUTBOUND_ALLOW_PRIVATE"] = False
    sent = meiqia_agent.send(cid, "这条不会发出")

    def settled():
        found = meiqia_agent.get(f"/api/v1/conversations/{cid}/deliveries").json()
        return [d for d in found["deliveries"]
                if d["message_id"] == sent["id"] and d["status"] in ("retrying", "failed")]

    delivery = wait_until(settled, 10, "the refused delivery")[0]
    assert delivery["status"] == "failed" and delivery["attempts"] == 1, delivery
    assert delivery["reason"].startswith("127.0.0.1 resolves to 127.0.0.1, a private "
                                         "address (loopback)"), delivery
    assert [m for m in receiver["received"] if m.get("text") == "这条不会发出"] == []
