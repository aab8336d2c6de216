"""Error frames in the socket's language: ``?lang=zh-CN`` on the URL (what the
widget and the workspace send) gives Chinese messages; no hint, English. Over a
real server; code and ref never change."""

from __future__ import annotations

from tests.api.test_conversations import start
from tests.ws.conftest import Socket
from tests.ws.conftest import cookie_of


def test_visitor_error_frames_in_chinese_and_in_english(api, live):
    api.patch("/api/v1/team", json={"settings": {"bot_enabled": False}})
    _, token, _, _ = start(api.app, api.team["id"])

    zh = Socket(live.url(f"/ws/visitor?token={token}&lang=zh-CN"))
    zh.expect("hello")
    zh.send("message", {"client_msg_id": "v-1", "body": "长" * 5001})
    frame = zh.expect("error")
    assert frame["data"] == {"code": "invalid", "ref": "v-1", "message": "内容：最多 5000 个字符",
                             "message_en": "body: at most 5000 characters"}
    zh.send("zap", {})
    assert zh.expect("error", where=lambda d: d["ref"] == "zap")["data"]["message"] == \
        "未知的消息类型 'zap'"
    zh.ws.send("{not json")
    assert zh.expect("error", where=lambda d: d["code"] == "bad_frame")["data"]["message"] == \
        "不是有效的 JSON"

    en = Socket(live.url(f"/ws/visitor?token={token}"))
    en.expect("hello")
    en.send("message", {"client_msg_id": "v-2", "body": "长" * 5001})
    assert en.expect("error")["data"] == {"code": "invalid", "ref": "v-2",
                                          "message": "body: at most 5000 characters"}


def test_refused_tokens_and_agent_sockets(api, live):
    refused = Socket(live.url("/ws/visitor?token=forged&lang=zh-CN"))
    assert refused.expect("error")["data"] == {
        "code": "unauthorized", "ref": "connect", "message": "访客令牌无效",
        "message_en": "invalid visitor token"}

    agent = Socket(live.url("/ws/agent?lang=zh-CN"), cookie=cookie_of(api))
    agent.expect("hello")
    agent.send("read", {"conversation_id": 999999, "up_to": 1})
    assert agent.expect("error")["data"]["message"] == "没有这个对话"
    plain = Socket(live.url("/ws/agent"), cookie=cookie_of(api))
    plain.expect("hello")
    plain.send("read", {"conversation_id": 999999, "up_to": 1})
    assert plain.expect("error")["data"]["message"] == "no such conversation"


def test_a_token_socket_speaks_its_agents_chosen_language(api, live):
    """An agent who chose Chinese (``/lang/zh-CN`` remembers it on his account) and
    opens the agent socket with his API token, no hint: Chinese, as over REST. The
    socket's language was fixed before the token's agent was known, so it was
    English (found by an outside check)."""
    created = api.post("/api/v1/tokens", json={"name": "脚本", "scope": "conversations"})
    assert created.status_code == 201, created.get_json()
    token = created.get_json()["token"]
    plain = Socket(live.url(f"/ws/agent?api_token={token}"))
    plain.expect("hello")
    plain.send("read", {"conversation_id": 999999, "up_to": 1})
    assert plain.expect("error")["data"]["message"] == "no such conversation"
    assert api.client.get("/lang/zh-CN").status_code == 302
    chosen = Socket(live.url(f"/ws/agent?api_token={token}"))
    chosen.expect("hello")
    chosen.send("read", {"conversation_id": 999999, "up_to": 1})
    assert chosen.expect("error")["data"] == {
        "code": "not_found", "ref": "read", "message": "没有这个对话",
        "message_en": "no such conversation"}
