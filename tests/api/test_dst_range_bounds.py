"""Range filters on the team's clock across daylight-saving changes (America/New_York).

2026-11-01: the clock shows 01:00-01:59 twice (EDT, UTC-4, then EST, UTC-5); the
day is 25 hours. 2026-03-08: it jumps from 01:59:59 EST to 03:00 EDT; the day is
23 hours. A start takes the earliest instant a time can mean, an end the latest; a
time the clock skips (02:30 on 8 March) is the instant of the jump. Taking the
first meaning alone (``fold=0``) made "to 01:59" on 1 November miss the second
01:xx hour, and "from 02:30" on 8 March miss 03:00-03:29 EDT.
Asia/Shanghai (UTC+8, no daylight saving) reads the same times as before.
"""

from __future__ import annotations

import datetime

import pytest

from meiqia.models import Ticket
from meiqia.services import dates
from tests.factories import make_conversation
from tests.factories import make_visitor

UTC = datetime.datetime

#: Ended conversations, by name: their UTC end and (comment) New York clock.
FALL = {
    "oct31_2359": UTC(2026, 11, 1, 3, 59),  # 10-31 23:59 EDT
    "0030": UTC(2026, 11, 1, 4, 30),  # 00:30 EDT
    "0130_edt": UTC(2026, 11, 1, 5, 30),  # 01:30 EDT, the first 01:30
    "0130_est": UTC(2026, 11, 1, 6, 30),  # 01:30 EST, the second 01:30
    "0230": UTC(2026, 11, 1, 7, 30),  # 02:30 EST
    "2359": UTC(2026, 11, 2, 4, 59),  # 23:59 EST
    "nov2_0000": UTC(2026, 11, 2, 5, 0),  # 11-02 00:00 EST
}
SPRING = {
    "mar7_2359": UTC(2026, 3, 8, 4, 59),  # 03-07 23:59 EST
    "0000": UTC(2026, 3, 8, 5, 0),  # 00:00 EST
    "0159": UTC(2026, 3, 8, 6, 59),  # 01:59 EST, the last minute before the jump
    "0300": UTC(2026, 3, 8, 7, 0),  # 03:00 EDT, the first instant after it
    "0330": UTC(2026, 3, 8, 7, 30),  # 03:30 EDT
    "2359": UTC(2026, 3, 9, 3, 59),  # 23:59 EDT
    "mar9_0000": UTC(2026, 3, 9, 4, 0),  # 03-09 00:00 EDT
}


def team_in(api, zone, ends):
    """The team on ``zone``'s clock with one ended conversation per UTC end: their ids."""
    assert api.patch("/api/v1/team", json={"timezone": zone}).status_code == 200
    team, admin = api.team["id"], api.agent["id"]
    return {name: make_conversation(team, make_visitor(team, name=name), handler=admin,
                                    ended_at=at, messages=[("visitor", "在吗", 0)]).id
            for name, at in ends.items()}


def found(api, query):
    response = api.get(f"/api/v1/history?{query}&per_page=100")
    assert response.status_code == 200, (query, response.get_json())
    data = response.get_json()
    got = {row["id"] for row in data["items"]}
    assert data["total"] == len(got), query
    return got


def test_the_repeated_hour_counts_whole_at_both_ends(api):
    conv = team_in(api, "America/New_York", FALL)

    def names(query):
        return {n for n, i in conv.items() if i in found(api, query)}

    # The defect as reported: the second 01:30 (EST) was in no team-clock range.
    assert names("ended_from=2026-11-01T01:30&ended_to=2026-11-01T01:31") \
        == {"0130_edt", "0130_est"}
    assert names("ended_from=2026-11-01T00:00&ended_to=2026-11-01T01:59") \
        == {"0030", "0130_edt", "0130_est"}
    assert names("ended_to=2026-11-01T01:59") == {"oct31_2359", "0030", "0130_edt",
                                                  "0130_est"}
    assert names("ended_from=2026-11-01T01:30") == {"0130_edt", "0130_est", "0230", "2359",
                                                    "nov2_0000"}
    assert names("ended_from=2026-11-01T02:00") == {"0230", "2359", "nov2_0000"}
    # With an offset it is one instant, as written.
    assert names("ended_from=2026-11-01T01:30-05:00&ended_to=2026-11-01T01:31-05:00") \
        == {"0130_est"}
    assert names("ended_from=2026-11-01T01:30-04:00&ended_to=2026-11-01T01:31-04:00") \
        == {"0130_edt"}
    # The whole day: 25 hours, its first and last minute, not the neighbours'.
    assert names("ended_from=2026-11-01&ended_to=2026-11-01") \
        == {"0030", "0130_edt", "0130_est", "0230", "2359"}

    # The export counts with the same bounds.
    started = api.post("/api/v1/history/exports", json={
        "filters": {"ended_from": "2026-11-01T01:30", "ended_to": "2026-11-01T01:31"},
        "format": "csv"})
    assert started.status_code == 202, started.get_json()
    export = api.get(f"/api/v1/history/exports/{started.get_json()['id']}").get_json()
    assert export["total"] == 2

    # The dashboard's day is the same 25 hours.
    day = api.get("/api/v1/dashboard?from=2026-11-01&to=2026-11-01").get_json()["range"]
    assert day["ended"] == 5 and day["by_day"] == [{"day": "2026-11-01", "ended": 5}]
    hours = {h["hour"]: h["ended"] for h in day["by_hour"] if h["ended"]}
    assert hours == {0: 1, 1: 2, 2: 1, 23: 1}


def test_a_skipped_time_is_the_instant_of_the_jump(api):
    conv = team_in(api, "America/New_York", SPRING)

    def names(query):
        return {n for n, i in conv.items() if i in found(api, query)}

    # 02:30 never shows: "from 02:30" starts at 03:00 EDT, "to 02:30" ends there.
    assert names("ended_from=2026-03-08T02:30&ended_to=2026-03-08T04:00") == {"0300", "0330"}
    assert names("ended_from=2026-03-08T01:00&ended_to=2026-03-08T02:30") == {"0159"}
    assert names("ended_from=2026-03-08T02:00&ended_to=2026-03-08T03:01") == {"0300"}
    assert names("ended_from=2026-03-08T01:59&ended_to=2026-03-08T02:00") == {"0159"}
    # The whole day: 23 hours.
    assert names("ended_from=2026-03-08&ended_to=2026-03-08") \
        == {"0000", "0159", "0300", "0330", "2359"}
    day = api.get("/api/v1/dashboard?from=2026-03-08&to=2026-03-08").get_json()["range"]
    assert day["ended"] == 5 and day["by_day"] == [{"day": "2026-03-08", "ended": 5}]


def test_ticket_filters_read_the_clock_the_same_way(api):
    assert api.patch("/api/v1/team", json={"timezone": "America/New_York"}).status_code == 200
    made = {}
    for name, at in {"0130_edt": FALL["0130_edt"], "0130_est": FALL["0130_est"],
                     "0159": SPRING["0159"], "0300": SPRING["0300"]}.items():
        response = api.post("/api/v1/tickets", json={"content": f"工单 {name}"})
        assert response.status_code == 201, response.get_json()
        made[name] = response.get_json()["id"]
        Ticket.update(created_at=at).where(Ticket.id == made[name]).execute()

    def names(query):
        response = api.get(f"/api/v1/tickets?{query}")
        assert response.status_code == 200, response.get_json()
        got = {t["id"] for t in response.get_json()["items"]}
        return {n for n, i in made.items() if i in got}

    assert names("since=2026-11-01T01:30&until=2026-11-01T01:31") == {"0130_edt", "0130_est"}
    assert names("since=2026-11-01&until=2026-11-01") == {"0130_edt", "0130_est"}
    assert names("since=2026-03-08T02:30&until=2026-03-08T04:00") == {"0300"}
    assert names("since=2026-03-08T00:00&until=2026-03-08T02:30") == {"0159"}


def test_a_zone_without_daylight_saving_reads_as_before(api):
    """Shanghai is UTC+8 all year: the same wall times are one instant each."""
    conv = team_in(api, "Asia/Shanghai", {
        "0130": UTC(2026, 10, 31, 17, 30),  # 11-01 01:30
        "0230": UTC(2026, 3, 7, 18, 30),  # 03-08 02:30
        "0300": UTC(2026, 3, 7, 19, 0),  # 03-08 03:00
        "nov2_0000": UTC(2026, 11, 1, 16, 0),  # 11-02 00:00
    })

    def names(query):
        return {n for n, i in conv.items() if i in found(api, query)}

    assert names("ended_from=2026-11-01T01:30&ended_to=2026-11-01T01:31") == {"0130"}
    assert names("ended_from=2026-11-01T00:00&ended_to=2026-11-01T01:30") == set()
    assert names("ended_from=2026-03-08T02:30&ended_to=2026-03-08T03:00") == {"0230"}
    assert names("ended_from=2026-11-01&ended_to=2026-11-01") == {"0130"}
    assert names("ended_from=2026-11-02&ended_to=2026-11-02") == {"nov2_0000"}


@pytest.mark.parametrize(("zone", "day", "hours"), [
    ("America/New_York", "2026-11-01", 25), ("America/New_York", "2026-03-08", 23),
    ("America/New_York", "2026-07-01", 24), ("Asia/Shanghai", "2026-11-01", 24),
    ("Australia/Lord_Howe", "2026-10-04", 23.5),  # a half-hour jump
    ("America/Santiago", "2026-09-06", 23),  # midnight itself is skipped
])
def test_a_whole_day_is_as_long_as_the_teams_day(zone, day, hours):
    tz = dates.ZoneInfo(zone)
    start = dates.utc_bound(day, "d", tz, False, "")
    end = dates.utc_bound(day, "d", tz, True, "")
    assert (end - start) == datetime.timedelta(hours=hours)
    local = start.replace(tzinfo=datetime.UTC).astimezone(tz)
    assert local.isoformat()[:10] == day and (local.hour, local.minute) in {(0, 0), (1, 0)}


def test_a_range_inside_the_skipped_hour_is_empty_not_reversed(api):
    """New York, 2026-03-08: 02:10 to 02:50 never shows on the clock, so both ends are
    the instant of the jump; history, exports and tickets answered 422 "from after
    to" (outside testers). From ≤ to on the clock the user reads: a range that holds
    no time, 200 and nothing, everywhere a range is taken. A start after the end on
    that clock stays a 422 in the user's language, even inside the gap."""
    conv = team_in(api, "America/New_York", SPRING)
    inside = "2026-03-08T02:10", "2026-03-08T02:50"
    assert found(api, f"ended_from={inside[0]}&ended_to={inside[1]}") == set()
    # From = to holds no time either (an offset's instant too); neighbours still count.
    assert found(api, "ended_from=2026-03-08T03:30&ended_to=2026-03-08T03:30") == set()
    assert found(api, "ended_from=2026-03-08T07:00Z&ended_to=2026-03-08T07:00Z") == set()
    assert found(api, f"ended_from={inside[0]}&ended_to=2026-03-08T03:01") == {conv["0300"]}

    # An export of nothing is refused as any filter matching nothing is, not as reversed;
    # one from inside the gap counts from the jump.
    empty = api.post("/api/v1/history/exports", headers={"X-Meiqia-Lang": "zh-CN"}, json={
        "filters": {"ended_from": inside[0], "ended_to": inside[1]}, "format": "csv"})
    assert empty.status_code == 422, empty.get_json()
    assert empty.get_json()["error"]["message"] == "没有符合这些筛选条件的对话", empty.get_json()
    started = api.post("/api/v1/history/exports", json={
        "filters": {"ended_from": inside[0], "ended_to": "2026-03-08T03:01"}, "format": "csv"})
    assert started.status_code == 202, started.get_json()
    export = api.get(f"/api/v1/history/exports/{started.get_json()['id']}").get_json()
    assert export["total"] == 1

    for name in ("0159", "0300"):
        response = api.post("/api/v1/tickets", json={"content": f"工单 {name}"})
        assert response.status_code == 201, response.get_json()
        Ticket.update(created_at=SPRING[name]).where(
            Ticket.id == response.get_json()["id"]).execute()
    tickets = api.get(f"/api/v1/tickets?since={inside[0]}&until={inside[1]}")
    assert tickets.status_code == 200, tickets.get_json()
    assert tickets.get_json()["items"] == []
    assert api.get("/api/v1/tickets?since=2026-03-08T03:30&until=2026-03-08T03:30"
                   ).get_json()["items"] == []

    # Reversed on the clock the user reads: 422, in his language.
    for lang, history_text, ticket_text in (
            ("zh-CN", "结束时间从：不能晚于结束时间至", "截止时间：不能早于开始时间"),
            ("en", "ended_from: must not be after ended_to", "until: must not be before since")):
        headers = {"X-Meiqia-Lang": lang}
        for query in (f"ended_from={inside[1]}&ended_to={inside[0]}",
                      "ended_from=2026-03-08T03:31&ended_to=2026-03-08T03:30"):
            refused = api.get(f"/api/v1/history?{query}", headers=headers)
            assert refused.status_code == 422, (query, refused.get_json())
            assert history_text in refused.get_json()["error"]["message"], refused.get_json()
        refused = api.post("/api/v1/history/exports", headers=headers, json={
            "filters": {"ended_from": inside[1], "ended_to": inside[0]}, "format": "csv"})
        assert refused.status_code == 422, refused.get_json()
        refused = api.get(f"/api/v1/tickets?since={inside[1]}&until={inside[0]}",
                          headers=headers)
        assert refused.status_code == 422, refused.get_json()
        assert ticket_text in refused.get_json()["error"]["message"], refused.get_json()


def test_a_team_day_the_clock_skips_whole_is_an_empty_day(api):
    """Pacific/Apia went from 2011-12-29 23:59:59 (UTC-10) to 2011-12-31 00:00 (UTC+14):
    its 30 December has no time. Asked for alone it is an empty range (200), on the
    dashboard, in history and tickets alike; with its neighbours it adds nothing."""
    before, after = UTC(2011, 12, 30, 9, 59), UTC(2011, 12, 30, 10, 0)  # 29th 23:59, 31st 00:00
    conv = team_in(api, "Pacific/Apia", {"before": before, "after": after})
    assert found(api, "ended_from=2011-12-30&ended_to=2011-12-30") == set()
    assert found(api, "ended_from=2011-12-29&ended_to=2011-12-31") == set(conv.values())
    tickets = api.get("/api/v1/tickets?since=2011-12-30&until=2011-12-30")
    assert tickets.status_code == 200 and tickets.get_json()["items"] == [], tickets.get_json()
    day = api.get("/api/v1/dashboard?from=2011-12-30&to=2011-12-30")
    assert day.status_code == 200, day.get_json()
    assert day.get_json()["range"]["ended"] == 0
