"""Every hostile value at every client frame type, on both sockets.

Each frame is sent as raw text (a lone surrogate and ``NaN`` cannot be written
by a careful encoder), then a ``ping``. What comes back before the ``pong``
must be ordinary frames or ``error`` frames with a documented code and a
message of ours (no exception text, class names or paths), and the ``pong``
itself proves the socket still answers (issue 13 item 5, issue 15 item 10).
"""

from __future__ import annotations

import json
import re

import pytest

from meiqia.models import Message
from tests.api.test_conversations import start
from tests.ws.conftest import Socket
from tests.ws.conftest import cookie_of

#: The codes docs/protocol.md lists.
CODES = {"bad_frame", "unknown_type", "invalid", "not_found", "conflict", "forbidden",
         "unauthorized", "no_conversation", "unavailable", "too_large", "server_error"}
#: What an exception's text looks like; none of it may reach a client.
INTERNALS = re.compile(r"Traceback|Error\b|Exception|File \"|\.py\b|/work/|site-packages|"
                       r"invalid literal|int\(\)|NoneType|object has no attribute|<class|"
                       r"not supported between|unhashable|surrogates not allowed|codec")
DEEP = "[" * 20_000 + "]" * 20_000

#: Raw JSON spellings of values no field should ever accept, and the error each gets.
REFUSED = {
    "lone surrogate": ('"\\ud800"', "invalid", "not text"),
    "low surrogate": ('"x\\udfffy"', "invalid", "not text"),
    "NUL": ('"a\\u0000b"', "invalid", "not text"),
    "deep nesting": (DEEP, "bad_frame", "nests deeper than 32 levels"),
    "NaN": ("NaN", "bad_frame", "not valid JSON"),
    "Infinity": ("-Infinity", "bad_frame", "not valid JSON"),
    "1e400": ("1e400", "bad_frame", "not valid JSON"),
}
#: Values of the wrong kind or at an edge: refused or accepted, never a failure.
ODD = {
    "huge int": str(2**70), "negative huge": str(-2**63), "big float": "1e308",
    "fraction": "0.5", "negative": "-1", "zero": "0", "text": '"abc"', "true": "true",
    "null": "null", "list": '[1, "x"]', "object": '{"a": {"b": []}}',
    "first day": '"0001-01-01"', "last day": '"9999-12-31T23:59:59-12:00"',
    "emoji pair": '"\\ud83d\\ude00"', "control": '"\\u0007\\u001b"',
    "long text": json.dumps("长" * 20_000, ensure_ascii=False),
    "sql": '"1; DROP TABLE message; --"', "format": '"{0}%s\\\\1$&"',
}


def raw_frame(kind: str, data: dict, field: str | None = None, value: str | None = None) -> str:
    """``{"type": kind, "data": {...}}`` as text, ``field`` set to raw JSON ``value``."""
    parts = [f"{json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}"
             for k, v in data.items() if k != field]
    if field is not None:
        parts.append(f"{json.dumps(field)}: {value}")
    return '{"type": ' + json.dumps(kind) + ', "data": {' + ", ".join(parts) + "}}"


def answers(socket: Socket, raw: str) -> list[dict]:
    """Send ``raw`` then a ping; the frames that came before the pong."""
    before = len(socket.seen)
    socket.ws.send(raw)
    socket.send("ping")
    socket.expect("pong", timeout=10)
    return [f for f in socket.seen[before:-1]]


def clean_errors(frames: list[dict], where: str) -> list[dict]:
    errors = [f["data"] for f in frames if f["type"] == "error"]
    for error in errors:
        assert error["code"] in CODES, (where, error)
        text = json.dumps(error, ensure_ascii=False)
        assert not INTERNALS.search(text), (where, error)
    return errors


@pytest.fixture
def sockets(api, live):
    api.patch("/api/v1/team", json={"settings": {"bot_enabled": False}})
    # Online with his workspace open before the visitor comes: the chat (and its
    # handover line) is his at once, not when his socket below connects.
    li = api.online_agent(limit=3)
    _, token, cid, _ = start(api.app, api.team["id"], name="访客甲")
    visitor = Socket(live.url(f"/ws/visitor?token={token}"))
    visitor.expect("hello")
    agent = Socket(live.url("/ws/agent"), cookie_of(li))
    agent.expect("hello")
    # The agent takes the conversation, so his frames about it are in scope.
    visitor.send("message", {"body": "你好", "client_msg_id": "start-1"})
    visitor.expect("ack")
    yield {"visitor": visitor, "agent": agent, "cid": cid, "live": live, "token": token,
           "cookie": cookie_of(li)}


def frames_of(cid: int) -> dict[str, list[tuple[str, dict]]]:
    """Each socket's frame types with a valid ``data`` (one field at a time is replaced)."""
    return {
        "visitor": [
            ("message", {"body": "在吗", "client_msg_id": "v-h"}),
            ("typing", {"typing": True, "preview": "我想问"}),
            ("read", {"up_to": 1}),
            ("human", {"conversation_id": cid}),
            ("ping", {"x": 1}),
            ("dance", {"x": 1}),
        ],
        "agent": [
            ("message", {"conversation_id": cid, "body": "您好", "client_msg_id": "a-h",
                         "mode": "reply"}),
            ("replay", {"conversation_id": cid, "after": 0}),
            ("typing", {"conversation_id": cid, "typing": True}),
            ("read", {"conversation_id": cid, "up_to": 1}),
            ("ping", {"x": 1}),
            ("dance", {"x": 1}),
        ],
    }


@pytest.mark.parametrize("who", ["visitor", "agent"])
def test_values_no_field_accepts_get_their_error_and_the_socket_stays(sockets, who):
    socket, cid = sockets[who], sockets["cid"]
    before = Message.select().count()
    tried = 0
    for kind, data in frames_of(cid)[who]:
        for field in [*data, "extra"]:
            for name, (value, code, words) in REFUSED.items():
                where = f"{who} {kind}.{field} = {name}"
                errors = clean_errors(answers(socket, raw_frame(kind, data, field, value)), where)
                assert [e["code"] for e in errors] == [code], (where, errors)
                assert words in errors[0]["message"], (where, errors)
                tried += 1
    # The type itself, a key and the whole frame.
    for raw, code in (('{"type": "\\ud800", "data": {}}', "invalid"),
                      ('{"type": "message", "data": {"\\udc00": 1}}', "invalid"),
                      ('{"type": "typing", "data": {"typing": true}, "\\u0000": 1}', "invalid"),
                      (DEEP, "bad_frame"), ('{"type": "ping", "data": ' + DEEP + "}", "bad_frame"),
                      ("\ud83d\ude00", "bad_frame"), ("", "bad_frame"), ("{", "bad_frame")):
        try:
            raw.encode()
        except UnicodeEncodeError:
            raw = "\U0001f600"  # what a client could send: a character, not half of one
        errors = clean_errors(answers(socket, raw), raw[:30])
        assert [e["code"] for e in errors] == [code], (raw[:30], errors)
    assert tried >= 90  # every field of every frame type, and one unknown field
    assert Message.select().count() == before  # nothing refused was stored


@pytest.mark.parametrize("who", ["visitor", "agent"])
def test_odd_values_in_every_field_never_break_the_socket(sockets, who):
    """Refused (with a clean error) or accepted, field by field; never a server
    error, never a closed socket."""
    socket, cid = sockets[who], sockets["cid"]
    n = 0
    for kind, data in frames_of(cid)[who]:
        for field in [*data, "extra"]:
            for name, value in ODD.items():
                n += 1
                payload = {**data, "client_msg_id": f"{who[0]}-odd-{n}"} \
                    if "client_msg_id" in data and field != "client_msg_id" else data
                where = f"{who} {kind}.{field} = {name}"
                errors = clean_errors(answers(socket, raw_frame(kind, payload, field, value)),
                                      where)
                assert all(e["code"] != "server_error" for e in errors), (where, errors)
    assert n > 250


def test_error_frames_are_translated_and_carry_no_ref_that_is_not_text(sockets):
    live, token = sockets["live"], sockets["token"]
    zh = Socket(live.url(f"/ws/visitor?token={token}&lang=zh-CN"))
    zh.expect("hello")
    error = clean_errors(answers(zh, raw_frame("message", {"client_msg_id": "z-1"}, "body",
                                               '"\\ud800"')), "zh")[0]
    assert error["code"] == "invalid" and error["ref"] == "z-1"
    assert error["message"].startswith("内容：") and "不是有效的文本" in error["message"]
    assert "not text" in error["message_en"]
    error = clean_errors(answers(zh, raw_frame("message", {}, "client_msg_id", '"\\ud800"')),
                         "ref")[0]
    assert error["code"] == "invalid" and error["ref"] == "message"  # never the bad text
    error = clean_errors(answers(zh, DEEP), "deep")[0]
    assert error == {"code": "bad_frame", "message": "JSON 嵌套超过 32 层", "ref": None,
                     "message_en": "the JSON nests deeper than 32 levels"}
    zh.close()


@pytest.mark.parametrize("who", ["visitor", "agent"])
def test_an_unknown_field_in_a_message_is_refused_on_both_sockets(sockets, who):
    """Found from outside: the visitor socket stored a message with a field no doc
    names, where the agent socket and the REST route refuse it; both sockets now
    answer ``invalid`` naming the field, in the same words, and store nothing."""
    socket, cid = sockets[who], sockets["cid"]
    data = {"body": "在吗", "client_msg_id": f"{who}-bogus", "bogus": 1}
    if who == "agent":
        data["conversation_id"] = cid
    before = Message.select().count()
    errors = clean_errors(answers(socket, raw_frame("message", data)), who)
    assert [e["code"] for e in errors] == ["invalid"], errors
    assert errors[0]["message"].startswith("bogus"), errors
    assert Message.select().count() == before


@pytest.mark.parametrize("who", ["visitor", "agent"])
def test_a_bad_key_is_named_by_where_it_is_not_called_body(sockets, who):
    """Found from outside (hproto R1): a NUL or a lone surrogate in a key of ``data``
    was reported as ``body: a key contains …`` (zh-CN ``内容：…``) on frames that have
    no body (``ping``, ``typing``, ``read``). The message names where the key is:
    ``data`` for a key of ``data``, ``frame`` for a key of the envelope, the field
    for a key inside a field (docs/protocol.md, "Limits and bad input")."""
    live, cid = sockets["live"], sockets["cid"]
    extra = f', "conversation_id": {cid}' if who == "agent" else ""
    cases = [
        ('{"type": "ping", "data": {"a\\u0000": 1}}', "data: a key contains",
         "data：有字段名包含"),
        ('{"type": "typing", "data": {"typing": true, "x\\u0000": 1' + extra + '}}',
         "data: a key contains", "data：有字段名包含"),
        ('{"type": "read", "data": {"up_to": 1, "\\ud800": 1' + extra + '}}',
         "data: a key contains", "data：有字段名包含"),
        ('{"type": "read", "data": {"up_to": 1, "x": {"\\udc00": 1}' + extra + '}}',
         "x: a key contains", "x：有字段名包含"),
        ('{"type": "ping", "x\\u0000": "ping", "data": {}}', "frame: a key contains",
         "帧：有字段名包含"),
        ('{"type": "ping", "data": {}, "\\ud800": 1}', "frame: a key contains",
         "帧：有字段名包含"),
        ('{"type": "ping", "data": "a\\u0000"}', "data: contains a NUL", "data：包含 NUL"),
        ('{"type": "typing", "data": {"typing": true, "preview": "a\\u0000"' + extra + '}}',
         "preview: contains a NUL", "preview：包含 NUL"),
    ]
    if who == "visitor":
        url = f"/ws/visitor?token={sockets['token']}&lang=zh-CN"
        zh = Socket(live.url(url))
    else:
        zh = Socket(live.url("/ws/agent?lang=zh-CN"), sockets["cookie"])
    zh.expect("hello")
    for socket, lang in ((sockets[who], "en"), (zh, "zh-CN")):
        for raw, english, chinese in cases:
            errors = clean_errors(answers(socket, raw), f"{who} {lang} {raw}")
            assert [e["code"] for e in errors] == ["invalid"], (raw, errors)
            message = errors[0]["message"]
            assert message.startswith(english if lang == "en" else chinese), (raw, message)
            assert "body" not in message and "内容" not in message, (raw, message)
            if lang == "zh-CN":
                assert errors[0]["message_en"].startswith(english), (raw, errors)
    zh.close()


def test_a_visitor_id_of_the_wrong_kind_and_a_read_without_up_to_are_invalid(sockets):
    """Found from outside (a client written from the doc's "Limits and bad input"):
    the visitor socket answered ``not_found`` to a ``conversation_id`` of "abc", 1.5
    or 2**31, where the table says ``invalid`` (the agent socket said so); and a
    ``read`` with no ``up_to`` was dropped without a word on both sockets, where the
    REST route answers 422. Another whole number is still ``not_found``."""
    visitor, agent, cid = sockets["visitor"], sockets["agent"], sockets["cid"]
    for value, words in (('"abc"', "conversation_id: expected integer"),
                         ("1.5", "conversation_id: expected integer"),
                         (str(2**31), "conversation_id: must be between")):
        errors = clean_errors(answers(visitor, raw_frame(
            "typing", {"typing": True}, "conversation_id", value)), value)
        assert [e["code"] for e in errors] == ["invalid"], (value, errors)
        assert errors[0]["message"].startswith(words), (value, errors)
    errors = clean_errors(answers(visitor, raw_frame("typing", {"conversation_id": cid + 1})),
                          "another")
    assert [e["code"] for e in errors] == ["not_found"], errors
    for socket, data in ((visitor, {}), (agent, {"conversation_id": cid})):
        errors = clean_errors(answers(socket, raw_frame("read", data)), "read")
        assert [(e["code"], e["message"]) for e in errors] == [
            ("invalid", "up_to: is required")], errors
    errors = clean_errors(answers(visitor, raw_frame("read", {}, "up_to", str(2**31))), "big")
    assert errors[0]["message"] == "up_to: must be between 0 and 2147483647", errors
