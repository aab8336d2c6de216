"""meiqia.testing (issue 18, item 7): its fixtures work as docs/plugins.md says,
and hooks receive the documented Plugin* views, never database rows."""

from __future__ import annotations

import dataclasses
import types

import pytest

from meiqia.hookspecs import hookimpl
from meiqia.plugin_api import PluginAgent
from meiqia.plugin_api import PluginConversation
from meiqia.plugin_api import PluginMessage
from meiqia.plugin_api import PluginVisitor
from meiqia.testing import wait_until


class Recorder:
    """Keeps what each hook received, and answers like a small plugin would."""

    def __init__(self) -> None:
        self.seen: dict[str, list] = {}

    def _keep(self, hook: str, **kwargs) -> None:
        self.seen.setdefault(hook, []).append(kwargs)

    @hookimpl
    def before_message_saved(self, message, conversation):
        self._keep("before_message_saved", message=message, conversation=conversation)
        return {"body": message["body"].replace("13800138000", "138****8000")}

    @hookimpl
    def assign_agent(self, conversation, candidates):
        self._keep("assign_agent", conversation=conversation, candidates=candidates)
        return candidates[-1]

    @hookimpl
    def sidebar_panels(self, conversation, visitor, actor, request):
        self._keep("sidebar_panels", conversation=conversation, visitor=visitor, actor=actor)
        return [{"name": f"CRM · {visitor.name}", "url": "https://crm.example.org/panel"}]

    @hookimpl
    def track_event(self, event):
        self._keep("track_event", event=event)

    @hookimpl
    def register_answerers(self, app):
        recorder = self

        class Hours:
            name = "hours"
            priority = 1

            def answer(self, question, conversation):
                recorder._keep("answer", conversation=conversation)
                if "几点" in question:
                    return [{"entry_id": "hours", "question": "营业时间",
                             "answer": "每天 9:00-21:00。", "score": 0.95}]
                return []

        return [Hours()]


RECORDER = Recorder()


@pytest.mark.meiqia(plugins=[RECORDER])
def test_a_conversation_over_the_real_protocol_and_what_the_hooks_receive(
        meiqia_admin, meiqia_visitor, meiqia_app):
    RECORDER.seen.clear()
    # The bot answers through the plugin's answerer.
    meiqia_visitor.send("你们几点开门？")
    assert meiqia_visitor.bot_reply()["body"] == "每天 9:00-21:00。"
    conversation = RECORDER.seen["answer"][0]["conversation"]
    assert isinstance(conversation, PluginConversation)
    assert conversation.id == meiqia_visitor.conversation_id
    assert conversation.team_id == meiqia_admin.team["id"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        conversation.status = "ended"
    # Redaction sees a PluginMessage, which also reads as the documented dict.
    stored = meiqia_visitor.send("电话 13800138000")
    assert stored["body"] == "电话 138****8000"
    message = RECORDER.seen["before_message_saved"][-1]["message"]
    assert isinstance(message, PluginMessage) and message["sender_kind"] == "visitor"
    assert dict(message)["body"] == message.body == "电话 13800138000"
    # Two agents online: routing asks the plugin, which takes the last candidate.
    li = meiqia_admin.new_agent(name="李客服", max_concurrent=3).go_online()
    wang = meiqia_admin.new_agent(name="王客服", max_concurrent=3).go_online()
    meiqia_visitor.ask_for_human()
    frame = meiqia_visitor.expect("conversation", where=lambda d: d.get("status") == "open")
    asked = RECORDER.seen["assign_agent"][-1]
    assert all(isinstance(a, PluginAgent) for a in asked["candidates"])
    assert {a.id for a in asked["candidates"]} == {li.agent["id"], wang.agent["id"]}
    assert frame["data"]["handler"] is not None
    chosen = asked["candidates"][-1]
    handler = li if chosen.id == li.agent["id"] else wang
    # The handler opens the sidebar: the plugin sees the visitor and the agent.
    panels = handler.get(f"/api/v1/conversations/{meiqia_visitor.conversation_id}/sidebar-panels")
    assert panels.status == 200
    assert any(p["name"] == "CRM · 张三" for p in panels.json())
    seen = RECORDER.seen["sidebar_panels"][-1]
    assert isinstance(seen["visitor"], PluginVisitor) and seen["visitor"].name == "张三"
    assert isinstance(seen["actor"], PluginAgent) and seen["actor"].id == handler.agent["id"]
    assert not hasattr(seen["actor"], "password_hash")
    # Replies over the agent's socket reach the visitor's.
    handler.send(meiqia_visitor.conversation_id, "您好，我来帮您")
    meiqia_visitor.expect("message", where=lambda d: d.get("body") == "您好，我来帮您")
    # Events reach the observer, off the request path.
    wait_until(lambda: any(e["event"]["name"] == "message.created"
                           for e in RECORDER.seen.get("track_event", [])), 10,
               "a message.created event")


def test_the_clock_moves_what_meiqia_reads_and_is_put_back(meiqia_clock):
    from meiqia.models.base import utcnow

    before = utcnow()
    meiqia_clock.advance(hours=2)
    assert (utcnow() - before).total_seconds() >= 7200
    meiqia_clock.reset()
    assert (utcnow() - before).total_seconds() < 3600


def test_an_idle_chat_ends_when_the_clock_says_so(make_meiqia_app, meiqia_clock):
    from meiqia.models import Conversation
    from meiqia.services import inactivity
    from meiqia.testing import ApiClient

    app = make_meiqia_app(config={"JOBS_INLINE": True})
    with app.app_context():
        api = ApiClient.registered(app)
        visitor = app.test_client()
        session = visitor.post("/api/v1/widget/session",
                               json={"team_id": api.team["id"]}).get_json()
        cid = session["conversation"]["conversation_id"]
        inactivity.sweep()
        assert Conversation.get_by_id(cid).status == "bot"
        meiqia_clock.advance(minutes=31)  # bot_inactivity_minutes: 30
        inactivity.sweep()
        assert Conversation.get_by_id(cid).status == "ended"


def test_entry_point_names_must_be_installed(make_meiqia_app):
    with pytest.raises(LookupError, match="no installed entry point named nope"):
        make_meiqia_app(plugins=["nope"])


def test_objects_and_config_reach_the_app(make_meiqia_app):
    plugin = types.ModuleType("tiny_plugin")
    plugin.menu_links = hookimpl(lambda actor, request: [])
    app = make_meiqia_app(plugins=[plugin], config={"PRIVACY_FALLBACK": "refuse"})
    assert app.config["PRIVACY_FALLBACK"] == "refuse"
    assert app.extensions["meiqia.plugins"].get_plugin("tiny_plugin") is plugin
