"""Answers of ``actor_from_request``, ``sidebar_panels`` and ``menu_links`` that
meiqia cannot use, and how their failures read.

Found by a plugin author working from docs/plugins.md ("a hook that fails … is
logged with the plugin's and the hook's name and skipped … a broken plugin never
breaks a conversation"):

* an ``actor_from_request`` returning a string became the request's actor: every
  API request without a session answered 500 (one with a valid API token, one with
  no credentials at all, which is a 401), the error page itself crashed, and
  nothing was logged or counted against the plugin. Such an answer is now a
  failure of the plugin (logged, counted, held against the breaker) and the next
  implementation (the built-in API tokens) decides;
* ``sidebar_panels`` returning "not a list", ``menu_links`` returning 42, panels
  with a ``javascript:`` URL or no ``url``, a ``javascript:`` link were not shown,
  but nothing reached the log, the Plugins page, ``/healthz`` or the breaker;
* for a zh-CN reader, the recent errors and the 503 refusal of a message kept
  English in the middle (``返回的结果无法使用：expected a dict or None, got str``,
  ``（before_message_saved raised）``).
"""

from __future__ import annotations

import logging
import re
from typing import Any

from meiqia.hookspecs import hookimpl
from tests.conftest import close_app
from tests.conftest import make_app
from tests.helpers import ApiClient
from tests.helpers import wait_until

ZH = {"Accept-Language": "zh-CN"}
#: An English sentence left in a Chinese text: three words in a row.
ENGLISH = re.compile(r"\b[A-Za-z]{2,} [a-z]{2,} [a-z]{2,}\b")


def _plugin(api: ApiClient, name: str, headers: dict[str, str] | None = None) -> dict:
    rows = api.get("/api/v1/plugins", headers=headers or {}).get_json()
    return next(row for row in rows if row["name"] == name)


class WrongActor:
    """Answers a user's email where an agent row belongs."""

    __name__ = "wrong_actor"

    @hookimpl
    def actor_from_request(self, request: Any) -> Any:
        return "admin@example.com"


def test_an_actor_that_is_no_agent_is_a_failure_and_the_api_tokens_decide(tmp_path, caplog):
    app = make_app(tmp_path, plugins=(WrongActor(),), PLUGIN_BREAKER_FAILURES=5)
    try:
        with app.app_context(), caplog.at_level(logging.ERROR):
            api = ApiClient.registered(app)
            token = api.post("/api/v1/tokens", json={"name": "CRM", "scope": "read"}
                             ).get_json()["token"]
            client = app.test_client()
            with_token = client.get("/api/v1/agents",
                                    headers={"Authorization": f"Bearer {token}", **ZH})
            assert with_token.status_code == 200, with_token.get_data(as_text=True)[:300]
            nobody = client.get("/api/v1/agents", headers=ZH)
            assert nobody.status_code == 401, nobody.get_data(as_text=True)[:300]
            assert nobody.get_json()["error"]["code"] == "unauthorized"
            assert ("plugin wrong_actor: hook actor_from_request returned an unusable "
                    "result: expected an agent (meiqia.models.Agent) or None, got str") \
                in caplog.text
            row = _plugin(api, "wrong_actor")
            assert row["figures"]["actor_from_request"]["errors"] == 2, row
            assert [e["kind"] for e in row["recent_errors"]] == ["malformed"] * 2
            zh = _plugin(api, "wrong_actor", ZH)["recent_errors"][0]["error"]
            assert zh == ("返回的结果无法使用：应为客服（meiqia.models.Agent）或 None，"
                          "收到的是 str"), zh
            health = client.get("/healthz").get_json()
            assert health["plugins"]["failing"] == ["wrong_actor"], health

            # The breaker: five failures in a row suspend it; tokens still work.
            for _ in range(3):
                assert client.get("/api/v1/agents").status_code == 401
            wait_until(lambda: _plugin(api, "wrong_actor")["state"] == "suspended",
                       timeout=10, what="the breaker to suspend wrong_actor")
            again = client.get("/api/v1/agents", headers={"Authorization": f"Bearer {token}"})
            assert again.status_code == 200
    finally:
        close_app(app)


class BadUi:
    """Panels and links of every wrong shape, switched by ``mode``."""

    __name__ = "bad_ui"

    def __init__(self) -> None:
        self.mode = "wrong type"

    @hookimpl
    def sidebar_panels(self, conversation: Any, visitor: Any, actor: Any, request: Any) -> Any:
        if self.mode == "wrong type":
            return "not a list"
        return [{"name": "坏", "url": "javascript:alert(document.domain)//"},
                {"name": "缺网址"},
                {"name": "好面板", "url": "https://crm.example.com/panel"}]

    @hookimpl
    def menu_links(self, actor: Any, request: Any) -> Any:
        if self.mode == "wrong type":
            return 42
        return [{"href": "javascript:alert(document.cookie)", "label": "点我"},
                {"href": "https://crm.example.com/", "label": "CRM"}]


def test_unusable_panels_and_links_are_reported_as_failures_of_the_plugin(tmp_path, caplog):
    plugin = BadUi()
    app = make_app(tmp_path, plugins=(plugin,), PLUGIN_BREAKER_FAILURES=100)
    try:
        with app.app_context(), caplog.at_level(logging.ERROR):
            api = ApiClient.registered(app)
            visitor = app.test_client()
            session = visitor.post("/api/v1/widget/session",
                                   json={"team_id": api.team["id"]}).get_json()
            cid = session["conversation"]["conversation_id"]
            panels = f"/api/v1/conversations/{cid}/sidebar-panels"

            assert api.get(panels).get_json() == []
            page = api.get("/workspace")
            assert page.status_code == 200
            assert ("plugin bad_ui: hook sidebar_panels returned an unusable result: "
                    "expected a list of panels, got str") in caplog.text
            assert ("plugin bad_ui: hook menu_links returned an unusable result: "
                    "expected a list of links, got int") in caplog.text
            assert app.test_client().get("/healthz").get_json()["plugins"]["failing"] \
                == ["bad_ui"]

            plugin.mode = "bad items"
            shown = api.get(panels).get_json()
            assert [p["name"] for p in shown] == ["好面板"]  # the good one still shows
            html = api.get("/workspace").get_data(as_text=True)
            assert 'href="https://crm.example.com/"' in html and "javascript:" not in html
            assert ("plugin bad_ui: hook sidebar_panels returned an unusable result: 2 of 3 "
                    "panels dropped: panel 1: url: must start with http:// or https://; "
                    "panel 2: url: missing") in caplog.text
            assert ("plugin bad_ui: hook menu_links returned an unusable result: 1 of 2 "
                    "links dropped: link 1: href: not an http(s) URL or a path of this site") \
                in caplog.text

            row = _plugin(api, "bad_ui")
            assert row["figures"]["sidebar_panels"]["errors"] == 2, row
            assert row["figures"]["menu_links"]["errors"] >= 2, row
            assert {e["hook"] for e in row["recent_errors"]} == {"sidebar_panels", "menu_links"}
            assert {e["kind"] for e in row["recent_errors"]} == {"malformed"}
            for entry in _plugin(api, "bad_ui", ZH)["recent_errors"]:
                assert entry["error"].startswith("返回的结果无法使用："), entry
                assert not ENGLISH.search(entry["error"]), entry
            zh = {e["error"] for e in _plugin(api, "bad_ui", ZH)["recent_errors"]}
            # The keys as the plugin wrote them, both times (docs/plugins.md, "Names in
            # every failure"): the first read 网址 (the API's label), the second url.
            assert ("返回的结果无法使用：3 个面板中有 2 个被丢弃：第 1 个面板：url：必须以 "
                    "http:// 或 https:// 开头；第 2 个面板：url：缺少") in zh, zh
    finally:
        close_app(app)


def test_breaker_counts_unusable_menu_links(tmp_path):
    """``menu_links`` is asked on every page with a top bar: a plugin answering 42
    each time is suspended like one that raises."""
    app = make_app(tmp_path, plugins=(BadUi(),), PLUGIN_BREAKER_FAILURES=3)
    try:
        with app.app_context():
            api = ApiClient.registered(app)
            for _ in range(3):
                assert api.get("/workspace").status_code == 200
            wait_until(lambda: _plugin(api, "bad_ui")["state"] == "suspended",
                       timeout=10, what="the breaker to suspend bad_ui")
    finally:
        close_app(app)


class StringRedactor:
    __name__ = "string_redactor"

    @hookimpl
    def before_message_saved(self, message: Any, conversation: Any) -> Any:
        return "这不是字典"


def test_failures_read_in_the_readers_language(tmp_path):
    app = make_app(tmp_path, plugins=(StringRedactor(),), PRIVACY_FALLBACK="refuse",
                   PLUGIN_BREAKER_FAILURES=100)
    try:
        with app.app_context():
            api = ApiClient.registered(app)
            api.without_bot()
            visitor = app.test_client()
            session = visitor.post("/api/v1/widget/session",
                                   json={"team_id": api.team["id"]}).get_json()
            cid = session["conversation"]["conversation_id"]
            url = f"/api/v1/widget/conversations/{cid}/messages"
            for n, (lang, expected) in enumerate((
                    ("zh-CN", "消息未发送：插件 string_redactor 未能检查这条消息"
                              "（before_message_saved 返回的结果无法使用）：请重新发送"),
                    ("en", "the message was not sent: plugin string_redactor could not "
                           "check it (before_message_saved returned an unusable result); "
                           "send it again"))):
                refused = visitor.post(url, json={"body": "你好", "client_msg_id": f"m{n}"},
                                       headers={"X-Visitor-Token": session["token"],
                                                "X-Meiqia-Lang": lang})
                assert refused.status_code == 503, refused.get_json()
                assert refused.get_json()["error"]["message"] == expected
            zh = _plugin(api, "string_redactor", ZH)["recent_errors"][0]["error"]
            assert zh == "返回的结果无法使用：应为字典或 None，收到的是 str", zh
    finally:
        close_app(app)


def test_the_runtimes_own_words_read_in_chinese():
    """The texts of a busy pool and of a dropped candidate, as the Plugins page
    shows them to a zh-CN admin (the runtime makes them; ``translate_stored`` reads
    them)."""
    from meiqia.plugin_runtime.runtime import Failure
    from meiqia.web.error_text import translate_stored

    busy = Failure("p", "answer", "busy", "all 4 busy for 8.7s").describe()
    assert translate_stored(busy, "zh-CN") == "超时：它的线程都还在运行（4 个线程都已忙了 8.7 秒）"
    full = Failure("p", "answer", "busy", "4 threads and 100 waiting calls").describe()
    assert not ENGLISH.search(translate_stored(full, "zh-CN"))
    dropped = Failure("p", "answer", "malformed",
                      "2 of 2 candidates dropped: candidate 1: entry_id: missing; "
                      "candidate 2: score: not a finite number").describe()
    assert translate_stored(dropped, "zh-CN") == (
        "返回的结果无法使用：2 个候选答案中有 2 个被丢弃：第 1 个候选答案：entry_id：缺少；"
        "第 2 个候选答案：score：不是有限的数字")


class NoneRegistrar:
    """``register_*`` hooks answering None, as documented ("a list (or None)"), and an
    "answerer" that has no ``answer`` method."""

    __name__ = "none_registrar"

    @hookimpl
    def register_channels(self, app: Any) -> None:
        return None

    @hookimpl
    def register_ticket_sinks(self, app: Any) -> None:
        return None

    @hookimpl
    def register_answerers(self, app: Any) -> list:
        return ["not an answerer"]


def test_register_hooks_answering_none_or_a_non_answerer_break_nothing(tmp_path, caplog):
    """None from ``register_channels``/``register_ticket_sinks`` stopped start-up
    (``'NoneType' object has no attribute 'type'``); an answerer without ``answer``
    made every question a 500."""
    with caplog.at_level(logging.ERROR):
        app = make_app(tmp_path, plugins=(NoneRegistrar(),))
    try:
        assert ("plugin none_registrar: hook register_answerers returned an unusable result: "
                "a str has no answer() method; it is left out") in caplog.text
        with app.app_context():
            api = ApiClient.registered(app)
            asked = api.post("/api/v1/bot/ask", json={"question": "退货运费谁出"})
            assert asked.status_code == 200, asked.get_data(as_text=True)[:300]
    finally:
        close_app(app)
