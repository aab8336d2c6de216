"""The observer in a running meiqia, through meiqia.testing's fixtures only."""

import json

import pytest

from meiqia.testing import wait_until

PLUGIN = "example_event_log"  # the entry point: the package must be installed


def _events(path):
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture
def log_path(tmp_path):
    return tmp_path / "events.jsonl"


def test_message_events_are_written_as_json_lines(make_meiqia_app, log_path):
    from meiqia.testing import AgentClient
    from meiqia.testing import LiveServer
    from meiqia.testing import VisitorClient

    # The config depends on tmp_path: the factory rather than the marker.
    app = make_meiqia_app(plugins=[PLUGIN], config={"EVENT_LOG_PATH": str(log_path)})
    server = LiveServer(app)
    try:
        team = AgentClient(server).register().team
        visitor = VisitorClient(server, team["id"]).start()
        stored = visitor.send("你好")

        def created():
            return [e for e in _events(log_path) if e["name"] == "message.created"
                    and e["message_id"] == stored["id"]]

        event = wait_until(created, 10, "the message.created line")[0]
        assert event["conversation_id"] == visitor.conversation_id
        assert event["team_id"] == team["id"] and event["at"].endswith("Z")
        assert "你好" not in log_path.read_text(encoding="utf-8")  # ids only, no text
        visitor.close()
    finally:
        server.stop()


@pytest.mark.meiqia(plugins=[PLUGIN])
def test_without_a_path_nothing_is_written(meiqia_visitor, meiqia_app, tmp_path):
    meiqia_visitor.send("你好")
    meiqia_visitor.bot_reply()
    assert not list(tmp_path.rglob("*.jsonl"))


def test_the_filter_keeps_only_the_named_events(make_meiqia_app, log_path, meiqia_clock):
    from meiqia.services import inactivity
    from meiqia.testing import ApiClient

    app = make_meiqia_app(plugins=[PLUGIN], config={
        "EVENT_LOG_PATH": str(log_path), "EVENT_LOG_NAMES": ["conversation.ended"]})
    with app.app_context():
        api = ApiClient.registered(app)
        visitor = app.test_client()
        session = visitor.post("/api/v1/widget/session", json={"team_id": api.team["id"]})
        cid = session.get_json()["conversation"]["conversation_id"]
        # An idle bot chat ends after 30 minutes: move the clock, run the sweep.
        meiqia_clock.advance(minutes=31)
        assert inactivity.sweep() == 1
        ended = wait_until(lambda: _events(log_path), 10, "the conversation.ended line")
        assert [e["name"] for e in ended] == ["conversation.ended"]
        assert ended[0]["conversation_id"] == cid
