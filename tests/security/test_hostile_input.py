"""Hostile input the other suites do not already pin down.

Already covered elsewhere (not repeated here): CSV/XLSX formula injection in
exports (tests/api/test_exports.py), path traversal and control characters in
upload names, scriptable and lying images, oversized uploads
(tests/api/test_uploads.py), oversized and malformed websocket frames
(tests/ws/test_realtime.py), plain webhook URLs to private ranges
(tests/integration/test_ticket_sinks.py), the per-account login lockout
(tests/api/test_accounts.py), property tests of the bot normalisation and the
figures (tests/bot/test_normalize.py, tests/unit/test_figures.py), and bad input at every
route, page, form, upload and socket frame (lone surrogates, NUL, deep nesting, the
calendar's ends: tests/security/test_hostile_routes.py, tests/ws/test_hostile_frames.py,
tests/security/test_schemathesis.py; docs/security.md §10).
"""

from __future__ import annotations

import io

import pytest

from tests.api.test_conversations import start
from tests.helpers import ADMIN_PASSWORD
from tests.helpers import ApiClient

HUGE = 2**63


# --- numbers too big for a database column (found by schemathesis) -------------------


def test_ids_too_big_for_the_database_are_404_in_urls_and_422_in_bodies(api):
    for url in (f"/api/v1/agents/{HUGE}", f"/api/v1/tickets/{HUGE}",
                f"/api/v1/conversations/{2**31}/messages"):
        response = api.get(url)
        assert response.status_code == 404, url
        assert response.get_json()["error"]["code"] == "not_found"
    assert api.get(f"/api/v1/agents/{2**31 - 1}").status_code == 404  # largest id: looked up
    ticket = api.post("/api/v1/tickets", json={"content": "大数字", "phone": "13800138000"})
    assert ticket.status_code == 201, ticket.get_json()
    for body in ({"assignee_id": HUGE}, {"assignee_id": -HUGE}):
        response = api.patch(f"/api/v1/tickets/{ticket.get_json()['id']}", json=body)
        assert response.status_code == 422, body
        assert response.get_json()["error"]["field"] == "assignee_id"
    response = api.post("/api/v1/bot/unrecognised/dismiss", json={"ids": [HUGE]})
    assert response.status_code in {404, 422}, response.get_json()


def test_knowledge_with_control_characters_still_exports_as_xlsx(api):
    from openpyxl import load_workbook

    created = api.post("/api/v1/knowledge", json={
        "questions": ["退货\x05运费"], "answer": "我们\x1b承担"})
    assert created.status_code == 201, created.get_json()
    response = api.get("/api/v1/knowledge/export?format=xlsx")
    assert response.status_code == 200
    rows = list(load_workbook(io.BytesIO(response.get_data())).worksheets[0].values)
    response.close()
    assert any("退货运费" in row and "我们承担" in row for row in rows[1:]), rows


# --- SVG: never shown inline ---------------------------------------------------------


def test_svg_uploaded_as_a_file_downloads_as_an_inert_attachment(api):
    api.patch("/api/v1/team", json={"settings": {"bot_enabled": False}})
    api.go_online()
    client, token, cid, _ = start(api.app, api.team["id"])
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(document.cookie)</script></svg>'
    up = client.post(f"/api/v1/widget/conversations/{cid}/uploads?kind=file",
                     headers={"X-Visitor-Token": token},
                     data={"file": (io.BytesIO(svg), "logo.svg")},
                     content_type="multipart/form-data")
    assert up.status_code == 201, up.get_json()
    assert up.get_json()["is_image"] is False
    got = api.get(up.get_json()["url"])
    assert got.status_code == 200
    assert got.headers["Content-Disposition"].startswith("attachment")
    assert got.headers["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in got.headers["Content-Security-Policy"]
    assert "default-src 'none'" in got.headers["Content-Security-Policy"]
    got.close()


# --- webhook URLs that hide a private address -----------------------------------------


@pytest.mark.parametrize("url", [
    "http://0x7f000001/hook", "http://2130706433/hook", "http://127.1/hook",
    "http://0.0.0.0/hook", "http://[::1]/hook", "http://[::ffff:127.0.0.1]/hook",
    "http://[::ffff:a00:5]/hook", "http://100.64.0.1/hook", "http://[fd00::1]/hook",
    "http://user:pw@10.0.0.5/hook", "http://10.0.0.5:80@example.com@10.0.0.6/hook",
])
def test_webhook_urls_hiding_a_private_address_are_refused(api, url):
    """Only resolved, never connected to: nothing is sent to these addresses."""
    response = api.post("/api/v1/ticket-sinks", json={
        "type": "webhook", "name": "hook", "config": {"url": url, "secret": "s" * 16}})
    assert response.status_code == 422, (url, response.get_json())
    assert api.get("/api/v1/ticket-sinks").get_json() == []


# --- login brute force ------------------------------------------------------------------


def test_lockout_holds_across_the_api_the_form_and_email_spellings(api):
    app = api.app
    attacker = ApiClient(app)
    spellings = ["admin@example.com", "ADMIN@example.com", " Admin@Example.com "]
    for n in range(app.config["LOGIN_MAX_FAILURES"]):
        attacker.login(spellings[n % len(spellings)], f"guess-{n}")
    # Locked: the right password is refused too, through the API and the form.
    assert attacker.login("admin@example.com", ADMIN_PASSWORD).status_code == 429
    form = app.test_client()
    form.get("/login")
    with form.session_transaction() as session:
        csrf = session["csrf"]
    page = form.post("/login", data={"email": "admin@example.com",
                                     "password": ADMIN_PASSWORD, "csrf_token": csrf})
    assert page.status_code == 429 and "/workspace" not in page.headers.get("Location", "")
    assert int(page.headers["Retry-After"]) > 0
    assert form.get("/api/v1/me").status_code == 401
    # the session already open is not thrown out by someone else's guessing
    assert api.get("/api/v1/me").status_code == 200
