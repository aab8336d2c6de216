"""Ticket sinks against real servers: a local HTTP server, a local SMTP server, rq."""

from __future__ import annotations

import hashlib
import hmac
import http.server
import json
import threading

import pytest

from meiqia.models import SinkDelivery
from tests.api.test_conversations import start
from tests.conftest import close_app
from tests.conftest import make_app
from tests.helpers import ApiClient

SECRET = "0123456789abcdef-secret"


class Receiver:
    """A local HTTP server that records requests and answers a chosen status."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.requests: list[dict] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.requests.append({"headers": dict(self.headers), "body": body})
                self.send_response(outer.status)
                if outer.status == 302:
                    self.send_header("Location", "http://127.0.0.1:1/elsewhere")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/tickets"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def visitor_ticket(api):
    client, token, cid, _ = start(api.app, api.team["id"])
    response = client.post("/api/v1/widget/tickets", headers={"X-Visitor-Token": token},
                           json={"content": "订单 A1001 没收到", "phone": "13800138000",
                                 "conversation_id": cid})
    assert response.status_code == 201
    return response


#: The local test servers' network, allowed as an operator would (instance setting).
LOCAL = ["127.0.0.0/8"]


def test_webhook_delivers_a_signed_body_that_verifies(db_api, receiver):
    db_api.app.config["OUTBOUND_ALLOWED_NETWORKS"] = LOCAL
    sink = db_api.post("/api/v1/ticket-sinks", json={"type": "webhook", "name": "CRM", "config": {
        "url": receiver.url, "secret": SECRET}})
    assert sink.status_code == 201, sink.get_json()
    assert sink.get_json()["config"]["secret"] == "********"  # never shown again
    visitor_ticket(db_api)
    assert len(receiver.requests) == 1
    request = receiver.requests[0]
    timestamp = request["headers"]["X-Meiqia-Timestamp"]
    expected = hmac.new(SECRET.encode(), timestamp.encode() + b"." + request["body"],
                        hashlib.sha256).hexdigest()
    assert request["headers"]["X-Meiqia-Signature"] == f"sha256={expected}"
    payload = json.loads(request["body"])
    assert payload["event"] == "ticket.created"
    assert payload["ticket"]["content"] == "订单 A1001 没收到"
    assert SinkDelivery.get().status == "delivered"


def test_private_addresses_are_refused_unless_allowed(db_api, receiver):
    refused = db_api.post("/api/v1/ticket-sinks", json={"type": "webhook", "name": "x",
                                                        "config": {"url": receiver.url,
                                                                   "secret": SECRET}})
    assert refused.status_code == 422
    assert "private address" in refused.get_json()["error"]["message"]
    # a team admin cannot switch it on for his sink any more (the operator can)
    switched = db_api.post("/api/v1/ticket-sinks", json={"type": "webhook", "name": "x",
                                                         "config": {"url": receiver.url,
                                                                    "secret": SECRET,
                                                                    "allow_private_addresses": True}})
    assert switched.status_code == 422
    assert switched.get_json()["error"]["field"] == "config.allow_private_addresses"
    for url in ("http://10.0.0.5/x", "http://169.254.169.254/latest", "ftp://example.com/"):
        response = db_api.post("/api/v1/ticket-sinks", json={
            "type": "webhook", "name": "x", "config": {"url": url, "secret": SECRET}})
        assert response.status_code == 422, url
    assert db_api.get("/api/v1/ticket-sinks").get_json() == []


def test_failures_and_redirects_are_retried_then_shown_and_retryable(db_api):
    db_api.app.config["OUTBOUND_ALLOWED_NETWORKS"] = LOCAL
    receiver = Receiver(status=302)  # a redirect is not followed: a failure
    try:
        db_api.post("/api/v1/ticket-sinks", json={"type": "webhook", "name": "CRM", "config": {
            "url": receiver.url, "secret": SECRET}})
        visitor_ticket(db_api)
        assert len(receiver.requests) == 5  # first try plus four retries (inline in tests)
        failed = db_api.get("/api/v1/ticket-sinks/deliveries?status=failed").get_json()
        assert len(failed) == 1 and "HTTP 302" in failed[0]["last_error"]
        assert db_api.get("/api/v1/ticket-sinks").get_json()[0]["failed_deliveries"] == 1
        receiver.status = 200
        db_api.post(f"/api/v1/ticket-sinks/deliveries/{failed[0]['id']}/retry")
        assert SinkDelivery.get_by_id(failed[0]["id"]).status == "delivered"
    finally:
        receiver.close()


def test_a_pending_delivery_is_retried_by_hand_with_the_same_key(tmp_path):
    """Not only failed ones: a delivery waiting (here 10 min) for its next try is
    sent now; its waiting job is replaced, so it runs once more, not twice."""
    from meiqia.models import JobRecord
    from tests.conftest import close_app
    from tests.conftest import make_app
    from tests.helpers import ApiClient
    from tests.helpers import wait_until

    receiver = Receiver(status=503)
    app = make_app(tmp_path, JOBS_INLINE=False, OUTBOUND_ALLOWED_NETWORKS=LOCAL,
                   SINK_RETRY_SECONDS=[600])
    try:
        with app.app_context():
            api = ApiClient.registered(app)
            api.post("/api/v1/ticket-sinks", json={"type": "webhook", "name": "CRM", "config": {
                "url": receiver.url, "secret": SECRET}})
            visitor_ticket(api)
            first = wait_until(lambda: (j := JobRecord.get_or_none(JobRecord.run_at.is_null(False)))
                               and j, what="the delivery waiting to retry")
            delivery = SinkDelivery.get()
            assert delivery.status == "pending" and delivery.job_id == first.id
            receiver.status = 200
            retried = api.post(f"/api/v1/ticket-sinks/deliveries/{delivery.id}/retry")
            assert retried.status_code == 200, retried.get_json()
            wait_until(lambda: SinkDelivery.get().status == "delivered", what="the retry")
            replaced = JobRecord.get_by_id(first.id)
            assert replaced.status == "failed" and replaced.error == "replaced by a manual retry"
            keys = [r["headers"]["Idempotency-Key"] for r in receiver.requests]
            assert len(keys) == 2 and len(set(keys)) == 1
            assert keys[0].startswith(f"meiqia-delivery-{delivery.id}-")
            assert json.loads(receiver.requests[1]["body"])["idempotency_key"] == keys[0]
            again = api.post(f"/api/v1/ticket-sinks/deliveries/{delivery.id}/retry")
            assert again.status_code == 409
            assert "delivered" in again.get_json()["error"]["message"]
    finally:
        receiver.close()
        close_app(app)


def test_email_sink_sends_through_a_real_smtp_server(db_api):
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Message

    received = []

    class Collect(Message):
        def handle_message(self, message):
            received.append(message)

    from tests.integration.test_two_processes import free_port

    port = free_port()
    db_api.app.config["OUTBOUND_ALLOWED_NETWORKS"] = LOCAL
    controller = Controller(Collect(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        sink = db_api.post("/api/v1/ticket-sinks", json={"type": "email", "name": "客服邮箱",
                                                         "config": {"host": "127.0.0.1",
                                                                    "port": port,
                                                                    "from": "bot@shop.example",
                                                                    "to": "team@shop.example"}})
        assert sink.status_code == 201, sink.get_json()
        visitor_ticket(db_api)
        # A public reply is emailed to the customer who left an email.
        client, token, cid, _ = start(db_api.app, db_api.team["id"])
        client.post("/api/v1/widget/tickets", headers={"X-Visitor-Token": token},
                    json={"content": "发票", "email": "customer@example.com"})
        ticket_id = db_api.get("/api/v1/tickets?q=发票").get_json()["items"][0]["id"]
        db_api.post(f"/api/v1/tickets/{ticket_id}/comments",
                    json={"body": "已重新开具发票", "visibility": "public"})
        db_api.post(f"/api/v1/tickets/{ticket_id}/comments",
                    json={"body": "内部：财务已处理", "visibility": "internal"})
    finally:
        controller.stop()
    to_customer = [m for m in received if m["To"] == "customer@example.com"]
    assert len(to_customer) == 1
    reply = to_customer[0].get_payload(decode=True).decode()
    assert "已重新开具发票" in reply and "内部" not in reply
    assert all("内部" not in m.get_payload(decode=True).decode() for m in received)
    message = received[0]
    from email.header import decode_header
    from email.header import make_header

    subject = str(make_header(decode_header(message["Subject"])))
    assert message["To"] == "team@shop.example" and subject.startswith("[工单 #1]")
    body = message.get_payload(decode=True).decode()
    assert "订单 A1001 没收到" in body and "13800138000" in body


def test_sink_delivery_runs_on_an_rq_worker(tmp_path, redis_url, redis_prefix, receiver):
    import redis
    from rq import SimpleWorker

    app = make_app(tmp_path, REDIS_URL=redis_url, REDIS_PREFIX=redis_prefix, JOBS_INLINE=False,
                   OUTBOUND_ALLOWED_NETWORKS=LOCAL)
    try:
        with app.app_context():
            api = ApiClient.registered(app)
            api.post("/api/v1/ticket-sinks", json={"type": "webhook", "name": "CRM", "config": {
                "url": receiver.url, "secret": SECRET}})
            visitor_ticket(api)
            assert SinkDelivery.get().status == "pending" and receiver.requests == []
            queue = app.extensions["meiqia.jobs"]
            SimpleWorker([queue.name], connection=redis.Redis.from_url(redis_url)).work(burst=True)
            assert SinkDelivery.get().status == "delivered" and len(receiver.requests) == 1
    finally:
        close_app(app)
