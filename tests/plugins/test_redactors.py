"""Several redactors (``before_message_saved``) and what they answer.

Found by a plugin author working from docs/plugins.md alone:

* two redactors each got the original message and the last answer won, so one's
  changes were lost ("R2 SECRET 13800138000" stored as "R2 [redacted] 13800138000").
  They now run one after the other, in plugin-name order, each given the message
  as the ones before changed it;
* an answer that is not a valid change (``{"body": 12345}``, a string, a list, a
  change of ``visibility``, an unknown key) broke the send with a 500 after storing
  the message, or was ignored without a word. It is now a failure of the plugin,
  counted and logged, and the message fails closed (``PRIVACY_FALLBACK``);
* the visitor's typing preview reached agents unredacted while a redactor was on.
"""

from __future__ import annotations

import logging
import re
import types

import pytest

from meiqia.hookspecs import hookimpl
from meiqia.models import Message
from meiqia.testing.clients import AgentClient
from meiqia.testing.clients import VisitorClient
from meiqia.testing.sockets import LiveServer
from tests.api.test_conversations import start
from tests.api.test_conversations import vpost
from tests.conftest import close_app
from tests.conftest import make_app
from tests.ws.conftest import Socket
from tests.ws.conftest import served_team

SAID = "我的 SECRET 卡号 13800138000，请回电"
STORED = "我的 [已隐藏] 卡号 [号码]，请回电"


def redactor(name: str, change, seen: list[str]) -> types.ModuleType:
    """A plugin module ``name`` whose ``before_message_saved`` answers ``change(body)``
    and notes each body it was given."""
    plugin = types.ModuleType(name)

    def before_message_saved(message, conversation):
        seen.append(message["body"])
        return change(message["body"])

    plugin.before_message_saved = hookimpl(before_message_saved)
    return plugin


def hide_secret(seen):
    return redactor("a_hide_secret",
                    lambda body: {"body": body.replace("SECRET", "[已隐藏]")}, seen)


def hide_numbers(seen):
    # The whole message back with one field changed, as ``dict(message)`` invites.
    return redactor("b_hide_numbers",
                    lambda body: {"body": re.sub(r"\d{5,}", "[号码]", body),
                                  "visibility": "public", "kind": "text"}, seen)


@pytest.mark.parametrize(("db", "registered"), [("sqlite", "ab"), ("sqlite", "ba"),
                                                ("postgres", "ab")])
def test_two_redactors_both_changes_are_stored_and_shown(request, tmp_path, db, registered):
    first_seen: list[str] = []
    second_seen: list[str] = []
    plugins = [hide_secret(first_seen), hide_numbers(second_seen)]
    if registered == "ba":  # the order of plugin names decides, not the loading order
        plugins.reverse()
    url = None if db == "sqlite" else request.getfixturevalue("pg_database_url")
    with served_team(tmp_path, tuple(plugins), url) as (_app, live, admin):
        visitor = VisitorClient(live, admin.team["id"]).start()
        acked = visitor.send(SAID)
        assert acked["body"] == STORED  # the visitor's own view (ack)
        # Each redactor saw the message as the one before left it.
        assert first_seen[-1] == SAID
        assert second_seen[-1] == "我的 [已隐藏] 卡号 13800138000，请回电"
        heard = admin.expect("message", where=lambda d: d["id"] == acked["id"])
        assert heard["data"]["body"] == STORED  # the agent's view, live
        assert Message.get_by_id(acked["id"]).body == STORED
        cid = visitor.conversation_id
        listed = admin.get(f"/api/v1/conversations/{cid}/messages").json()["messages"]
        assert [m["body"] for m in listed if m["id"] == acked["id"]] == [STORED]
        assert [m["body"] for m in visitor.messages() if m["id"] == acked["id"]] == [STORED]
        # An agent's reply goes through both as well.
        reply = admin.send(cid, "您的 SECRET 单号 6222021234567890 已处理")
        assert reply["body"] == "您的 [已隐藏] 单号 [号码] 已处理"
        assert Message.get_by_id(reply["id"]).body == reply["body"]
        shown = visitor.expect("message", where=lambda d: d["id"] == reply["id"])
        assert shown["data"]["body"] == reply["body"]


def test_a_redactor_that_fails_still_fails_closed_after_the_others(tmp_path):
    """One redactor raises, the other's change is kept and the mask applied after it."""
    seen: list[str] = []

    def broken(body):
        raise RuntimeError("坏了")

    app = make_app(tmp_path, plugins=(hide_secret(seen), redactor("b_broken", broken, [])),
                   PLUGIN_BREAKER_FAILURES=1000)
    try:
        with app.app_context():
            team = _team(app)
            client, token, cid, _ = start(app, team)
            sent = vpost(client, token, f"/api/v1/widget/conversations/{cid}/messages",
                         json={"body": SAID, "client_msg_id": "f1"})
            assert sent.status_code == 201, sent.get_json()
            assert Message.get_by_id(sent.get_json()["message"]["id"]).body == \
                "我的 [已隐藏] 卡号 ***********，请回电"
    finally:
        close_app(app)


def _team(app) -> int:
    from tests.helpers import ApiClient

    return ApiClient.registered(app).without_bot().team["id"]


MALFORMED = [
    pytest.param({"body": 12345}, "body: expected text, got int", id="body-not-text"),
    pytest.param("我的卡号已隐藏", "expected a dict or None, got str", id="a-string"),
    pytest.param(["body", "x"], "expected a dict or None, got list", id="a-list"),
    pytest.param({"visibility": "internal"}, "visibility: may not be changed",
                 id="visibility"),
    pytest.param({"sender_kind": "bot"}, "sender_kind: may not be changed", id="sender-kind"),
    pytest.param({"bdy": "已隐藏"}, "unknown key bdy", id="unknown-key"),
    pytest.param({"payload": "x"}, "payload: expected a dict, got str", id="payload"),
    pytest.param({"reject": 1}, "reject: expected text, got int", id="reject-not-text"),
]


@pytest.mark.parametrize(("answer", "why"), MALFORMED)
def test_a_malformed_answer_is_a_failure_and_fails_closed(tmp_path, caplog, answer, why):
    app = make_app(tmp_path, plugins=(redactor("bad_redactor", lambda body: answer, []),))
    try:
        with app.app_context(), caplog.at_level(logging.ERROR, logger="meiqia.plugins"):
            team = _team(app)
            client, token, cid, _ = start(app, team)
            runtime = app.extensions["meiqia.plugins"].runtime
            before = runtime.figures("bad_redactor").get("before_message_saved", {})
            url = f"/api/v1/widget/conversations/{cid}/messages"
            sent = vpost(client, token, url, json={"body": "请拨 13800138000", "client_msg_id": "m1"})
            assert sent.status_code == 201, sent.get_json()
            message = sent.get_json()["message"]
            assert message["body"] == "请拨 ***********"  # PRIVACY_FALLBACK "mask"
            row = Message.get_by_id(message["id"])
            assert (row.body, row.visibility, row.sender_kind) == \
                ("请拨 ***********", "public", "visitor")
            figures = runtime.figures("bad_redactor")["before_message_saved"]
            assert figures["errors"] == before.get("errors", 0) + 1  # counted as a failure
            again = vpost(client, token, url, json={"body": "请拨 13800138000", "client_msg_id": "m1"})
            assert again.get_json()["duplicate"] is True
            assert again.get_json()["message"] == message
        assert (f"plugin bad_redactor: hook before_message_saved returned an unusable "
                f"result: {why}") in caplog.text
        assert "13800138000" not in caplog.text  # what it says never holds the values
    finally:
        close_app(app)


def test_a_malformed_answer_refuses_the_message_under_refuse(tmp_path):
    app = make_app(tmp_path, plugins=(redactor("bad_redactor", lambda body: {"body": 12345},
                                               []),), PRIVACY_FALLBACK="refuse")
    try:
        with app.app_context():
            team = _team(app)
            client, token, cid, _ = start(app, team)
            sent = vpost(client, token, f"/api/v1/widget/conversations/{cid}/messages",
                         json={"body": "请拨 13800138000", "client_msg_id": "r1"})
            assert sent.status_code == 503, sent.get_json()
            error = sent.get_json()["error"]
            assert error["code"] == "unavailable"
            assert ("plugin bad_redactor could not check it (before_message_saved returned an "
                    "unusable result)") in error["message"]
            assert Message.select().where(Message.sender_kind == "visitor").count() == 0
    finally:
        close_app(app)


def test_a_malformed_answer_over_the_socket_is_no_server_error(tmp_path):
    app = make_app(tmp_path, plugins=(redactor("bad_redactor", lambda body: {"body": 12345},
                                               []),))
    live = LiveServer(app)
    try:
        with app.app_context():
            admin = AgentClient(live).register()
            visitor = VisitorClient(live, admin.team["id"]).start()
            acked = visitor.send("请拨 13800138000")
            assert acked["body"] == "请拨 ***********"
            assert not [f for f in visitor.socket().seen if f["type"] == "error"]
    finally:
        Socket.close_all()
        live.stop()
        close_app(app)


def test_the_typing_preview_carries_no_text_while_a_redactor_is_on(tmp_path):
    with served_team(tmp_path, (hide_secret([]),)) as (_app, live, admin):
        visitor = VisitorClient(live, admin.team["id"]).start()
        visitor.socket().send("typing", {"typing": True,
                                         "preview": "my SECRET card 6222021234567890"})
        typing = admin.expect("typing")["data"]
        assert typing["typing"] is True and typing["who"] == "visitor"
        assert typing["preview"] == ""
        # Turned off for the team by an admin: the preview is shown again.
        off = admin.patch("/api/v1/plugins/a_hide_secret", json={"enabled": False})
        assert off.status == 200, off.json()
        visitor.socket().send("typing", {"typing": True, "preview": "我想问一下"})
        assert admin.expect("typing")["data"]["preview"] == "我想问一下"


def test_the_typing_preview_is_shown_without_a_redactor(tmp_path):
    with served_team(tmp_path, ()) as (_app, live, admin):
        visitor = VisitorClient(live, admin.team["id"]).start()
        visitor.socket().send("typing", {"typing": True, "preview": "我想问一下"})
        assert admin.expect("typing")["data"]["preview"] == "我想问一下"
