"""Answers of answerers and routing plugins that meiqia cannot use.

Found by a plugin author working from docs/plugins.md alone:

* an answerer's candidate whose ``answer`` was not text (``{"text": "hi"}``, ``404``)
  was made into Python text and sent to the visitor ("{'text': 'hi'}", "404") and
  kept by ``POST /api/v1/bot/ask``, nothing logged. Every field's type is checked
  now; such a candidate is dropped, and the answer counts as a failure of its
  plugin (logged with its name, on the Plugins page, held against the breaker);
* an ``assign_agent`` answer that is not one of the candidates (the string
  "Senior", a copy of a candidate with an offline admin's id) was replaced by the
  default routing without a word. It is now a failure of the plugin too;
* ``register_answerers(app)``, documented as "called once at start-up", was called on
  the first question, given a proxy of the application rather than the Flask object
  ``startup`` and ``register_blueprints`` get.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from meiqia.hookspecs import hookimpl
from tests.conftest import close_app
from tests.conftest import make_app
from tests.helpers import ApiClient
from tests.reliability.test_database_faults import say


class Weather:
    name = "weather"
    priority = 1

    def answer(self, question: str, conversation: Any) -> list:
        if "字典答案" in question:
            return [{"entry_id": "bad:dict", "answer": {"text": "hi"}, "score": 0.99}]
        if "数字答案" in question:
            return [{"entry_id": "bad:int", "answer": 404, "score": 0.99}]
        if "混合" in question:
            return [{"entry_id": 7, "answer": "编号不是文字", "score": 0.99},
                    {"entry_id": "bad:inf", "answer": "无穷", "score": float("inf")},
                    {"entry_id": "bad:question", "answer": "问题", "score": 0.97,
                     "question": ["列表"]},
                    {"entry_id": "weather:today", "question": "今天天气",
                     "answer": "今天晴，25度", "score": 0.95}]
        return []


class WeatherPlugin:
    __name__ = "weather"

    def __init__(self) -> None:
        self.given: list[Any] = []

    @hookimpl
    def register_answerers(self, app: Any) -> list:
        self.given.append(app)
        return [Weather()]


def test_register_answerers_is_called_once_at_start_up_with_the_application(tmp_path):
    plugin = WeatherPlugin()
    app = make_app(tmp_path, plugins=(plugin,))
    try:
        assert len(plugin.given) == 1 and plugin.given[0] is app  # before any question
        with app.app_context():
            api = ApiClient.registered(app)
            for question in ("混合", "天气"):
                api.post("/api/v1/bot/ask", json={"question": question})
        assert len(plugin.given) == 1 and plugin.given[0] is app
    finally:
        close_app(app)


class SinkRegistrar:
    """Records the app ``register_ticket_sinks`` is given (no sink of its own)."""

    __name__ = "sink_registrar"

    def __init__(self) -> None:
        self.given: list[Any] = []

    @hookimpl
    def register_ticket_sinks(self, app: Any) -> list:
        self.given.append(app)
        return []


def test_register_ticket_sinks_is_called_once_at_start_up_with_the_application(tmp_path):
    """docs/plugins.md says so; it was asked on the first use of a sink, with a proxy
    of the app (found by a plugin author)."""
    plugin = SinkRegistrar()
    app = make_app(tmp_path, plugins=(plugin,))
    try:
        assert len(plugin.given) == 1 and plugin.given[0] is app  # before any request
        with app.app_context():
            api = ApiClient.registered(app)
            assert api.get("/api/v1/ticket-sinks/types").status_code == 200
            api.get("/api/v1/ticket-sinks")
        assert len(plugin.given) == 1 and plugin.given[0] is app
    finally:
        close_app(app)


def _plugin(api: ApiClient, name: str) -> dict:
    return next(row for row in api.get("/api/v1/plugins").get_json() if row["name"] == name)


def test_candidates_whose_fields_are_not_what_the_docs_say_are_dropped_and_counted(
        tmp_path, caplog):
    app = make_app(tmp_path, plugins=(WeatherPlugin(),), PLUGIN_BREAKER_FAILURES=100)
    try:
        with app.app_context(), caplog.at_level(logging.ERROR):
            api = ApiClient.registered(app)
            for question in ("字典答案", "数字答案"):
                asked = api.post("/api/v1/bot/ask", json={"question": question}).get_json()
                assert asked["decision"] != "answer", asked
                assert all(c["source"] != "weather" for c in asked["candidates"]), asked
            mixed = api.post("/api/v1/bot/ask", json={"question": "混合"}).get_json()
            assert mixed["decision"] == "answer"
            assert [c["entry_id"] for c in mixed["candidates"] if c["source"] == "weather"] \
                == ["weather:today"]
            assert ("plugin weather: hook answer returned an unusable result: 1 of 1 "
                    "candidates dropped: candidate 1: answer: expected text, got dict") \
                in caplog.text
            assert "candidate 1: answer: expected text, got int" in caplog.text
            assert ("3 of 4 candidates dropped: candidate 1: entry_id: expected text, got "
                    "int; candidate 2: score: not a finite number; candidate 3: question: "
                    "expected text, got list") in caplog.text
            row = _plugin(api, "weather")
            assert row["figures"]["answer"]["errors"] == 3, row
            assert [e["kind"] for e in row["recent_errors"]] == ["malformed"] * 3

            # A visitor asking gets no Python text for an answer.
            visitor = app.test_client()
            session = visitor.post("/api/v1/widget/session",
                                   json={"team_id": api.team["id"]}).get_json()
            cid = session["conversation"]["conversation_id"]
            for n, question in enumerate(("字典答案", "数字答案")):
                sent = say(visitor, session["token"], cid, question, f"q{n}")
                assert sent.status_code == 201, sent.get_json()
            listed = visitor.get(f"/api/v1/widget/conversations/{cid}/messages",
                                 headers={"X-Visitor-Token": session["token"]}).get_json()
            bodies = [m["body"] for m in listed["messages"]]
            assert [m for m in listed["messages"] if m["sender_kind"] == "bot"], bodies
            assert not any("{'text'" in body or body == "404" for body in bodies), bodies
            assert _plugin(api, "weather")["figures"]["answer"]["errors"] == 5
    finally:
        close_app(app)


class Picker:
    """Routing that answers what it should not: a name, or a copy of a candidate
    with another agent's id (an offline admin's)."""

    __name__ = "picker"

    def __init__(self) -> None:
        self.mode = "name"
        self.other_id = 0

    @hookimpl
    def assign_agent(self, conversation: Any, candidates: list) -> Any:
        if self.mode == "name":
            return "Senior"
        return dataclasses.replace(candidates[0], id=self.other_id)


def test_an_assign_agent_answer_that_is_no_candidate_is_a_failure_of_the_plugin(
        tmp_path, caplog):
    picker = Picker()
    app = make_app(tmp_path, plugins=(picker,), PLUGIN_BREAKER_FAILURES=100)
    try:
        with app.app_context(), caplog.at_level(logging.ERROR):
            api = ApiClient.registered(app)
            api.without_bot()
            agent = api.online_agent(limit=5)  # the admin is offline: not a candidate
            picker.other_id = api.agent["id"]
            for mode in ("name", "copy"):
                picker.mode = mode
                visitor = app.test_client()
                session = visitor.post("/api/v1/widget/session",
                                       json={"team_id": api.team["id"]}).get_json()
                cid = session["conversation"]["conversation_id"]
                conversation = agent.get(f"/api/v1/conversations/{cid}").get_json()
                # The default routing assigned it, as before…
                assert conversation["handler_id"] == agent.agent["id"], conversation
            # …but the plugin's answers are failures, logged, counted and listed.
            assert ("plugin picker: hook assign_agent returned an unusable result: "
                    "expected one of the candidates, got str") in caplog.text
            assert ("plugin picker: hook assign_agent returned an unusable result: the "
                    "agent returned is not one of the candidates") in caplog.text
            row = _plugin(api, "picker")
            assert row["figures"]["assign_agent"]["errors"] == 2, row
            assert [e["kind"] for e in row["recent_errors"]] == ["malformed", "malformed"]
    finally:
        close_app(app)
