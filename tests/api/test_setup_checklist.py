"""The first run (issue 17, item 1): checklist ticks from real state, the built-in
greeting in the visitor's language, working hours, where agents land."""

from __future__ import annotations

import datetime

from meiqia.services.working_hours import is_open
from tests.helpers import ApiClient


def _steps(api):
    response = api.get("/api/v1/setup")
    assert response.status_code == 200, response.get_json()
    data = response.get_json()
    return {s["key"]: s["done"] for s in data["steps"]}, data


def _session(app, team_id, landing, lang=None):
    headers = {"X-Meiqia-Lang": lang} if lang else {}
    response = app.test_client().post("/api/v1/widget/session", headers=headers,
                                      json={"team_id": team_id, "landing_page": landing})
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_every_step_ticks_from_what_the_team_did(app, api):
    steps, data = _steps(api)
    assert steps == dict.fromkeys(("widget", "agent", "kb", "welcome", "hours"), False)
    assert data["done"] == 0 and data["total"] == 5 and not data["all_done"]
    assert f'data-team="{api.team["id"]}"' in data["snippet"] and "/widget.js" in data["snippet"]
    assert data["demo_url"].endswith(f"/demo?team={api.team['id']}")
    # Only admins see it; nothing hides it before every step is done.
    li = api.new_agent()
    assert li.get("/api/v1/setup").status_code == 403
    refused = api.post("/api/v1/setup/dismiss", headers={"X-Meiqia-Lang": "zh-CN"})
    assert refused.status_code == 422 and "所有步骤完成后" in refused.get_json()["error"]["message"]

    # The demo page does not count as an installed widget; the team's own site does.
    _session(app, api.team["id"], data["demo_url"])
    _session(app, api.team["id"], "http://localhost:5000/demo")
    steps, _ = _steps(api)
    assert steps["agent"] is True and steps["widget"] is False
    _session(app, api.team["id"], "https://shop.example.com/cart")
    assert _steps(api)[0]["widget"] is True

    entry = api.post("/api/v1/knowledge", json={
        "questions": ["发票怎么开"], "answer": "在订单页申请电子发票。"})
    assert entry.status_code == 201, entry.get_json()
    assert _steps(api)[0]["kb"] is True

    assert api.patch("/api/v1/team", json={"settings": {"welcome_message": "  "}}).status_code == 200
    assert _steps(api)[0]["welcome"] is False  # blank is not a welcome of its own
    api.patch("/api/v1/team", json={"settings": {"welcome_message": "欢迎来到小店"}})
    api.patch("/api/v1/team", json={"settings": {"working_hours": {"mode": "always"}}})
    steps, data = _steps(api)
    assert all(steps.values()) and data["all_done"] and not data["dismissed"]
    hidden = api.post("/api/v1/setup/dismiss")
    assert hidden.status_code == 200 and hidden.get_json()["dismissed"] is True
    assert _steps(api)[1]["dismissed"] is True


def test_the_built_in_greeting_follows_the_visitor_until_the_team_writes_its_own(app, api):
    zh = _session(app, api.team["id"], "https://shop.example.com/", "zh-CN")
    en = _session(app, api.team["id"], "https://shop.example.com/", "en-US")
    assert zh["greeting"].startswith("您好，欢迎光临")
    assert en["greeting"].startswith("Hello and welcome")
    assert "Talk to a human" in en["greeting"]  # the widget's own button, by its name
    # Not a stored message: transcripts hold what people and the bot said.
    assert not [m for m in en["messages"] if m["kind"] == "text"]
    api.patch("/api/v1/team", json={"settings": {"welcome_message": "欢迎来到小店"}})
    own = _session(app, api.team["id"], "https://shop.example.com/", "en")
    assert own["greeting"] is None
    assert [m["body"] for m in own["messages"] if m["kind"] == "text"] == ["欢迎来到小店"]


def test_working_hours_on_the_team_clock():
    hours = {"mode": "hours", "days": [1, 2, 3, 4, 5], "start": "09:00", "end": "18:00"}
    utc = datetime.datetime  # naive UTC, as stored
    # Friday 2026-12-04 01:30 UTC is 09:30 in Shanghai: open; 10:30 UTC is 18:30: closed.
    assert is_open(hours, "Asia/Shanghai", utc(2026, 12, 4, 1, 30))
    assert not is_open(hours, "Asia/Shanghai", utc(2026, 12, 4, 10, 30))
    # Saturday 10:00 in Shanghai: closed; "always" and "not chosen" are open.
    assert not is_open(hours, "Asia/Shanghai", utc(2026, 12, 5, 2, 0))
    assert is_open({**hours, "mode": "always"}, "Asia/Shanghai", utc(2026, 12, 5, 2, 0))
    assert is_open({**hours, "mode": ""}, "Asia/Shanghai", utc(2026, 12, 5, 2, 0))
    # A night shift past midnight belongs to the day it started.
    night = {"mode": "hours", "days": [5], "start": "22:00", "end": "06:00"}
    assert is_open(night, "UTC", utc(2026, 12, 4, 23, 0))   # Friday 23:00
    assert is_open(night, "UTC", utc(2026, 12, 5, 5, 0))    # Saturday 05:00: Friday's shift
    assert not is_open(night, "UTC", utc(2026, 12, 6, 5, 0))  # Sunday 05:00: no Saturday shift


def test_outside_working_hours_a_visitor_is_offered_a_message(app, api):
    api.without_bot()
    li = api.online_agent()
    assert li.agent
    # Closed every day of the week at every hour but one minute: closed now.
    now = datetime.datetime.now(datetime.UTC)
    start = (now + datetime.timedelta(hours=2)).strftime("%H:%M")
    end = (now + datetime.timedelta(hours=2, minutes=1)).strftime("%H:%M")
    closed = {"mode": "hours", "days": [1, 2, 3, 4, 5, 6, 7], "start": start, "end": end}
    assert api.patch("/api/v1/team", json={"timezone": "UTC",
                                           "settings": {"working_hours": closed}}).status_code == 200
    data = _session(app, api.team["id"], "https://shop.example.com/")
    assert data["conversation"]["availability"] == "nobody_online"
    bad = api.patch("/api/v1/team", json={"settings": {"working_hours": {"start": "25:00"}}})
    assert bad.status_code == 422
    api.patch("/api/v1/team", json={"settings": {"working_hours": {"mode": "always"}}})
    again = _session(app, api.team["id"], "https://shop.example.com/x")
    assert again["conversation"]["availability"] == "available"


def test_agents_land_on_the_workspace_and_admins_on_the_dashboard(app, api):
    li = api.new_agent()
    assert li.get("/").headers["Location"].endswith("/workspace")
    assert api.get("/").headers["Location"].endswith("/dashboard")
    assert ApiClient(app).get("/").headers["Location"].endswith("/login")
