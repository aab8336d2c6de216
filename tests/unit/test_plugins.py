"""The plugin manager: three ways in, start-up errors that name the plugin,
run-time failures isolated."""

from __future__ import annotations

import logging
import sys
import textwrap
import time
import types

import pluggy
import pytest

from meiqia.hookspecs import hookimpl
from meiqia.plugins import DEFAULT_PLUGINS
from meiqia.plugins import PluginLoadError
from meiqia.plugins import make_plugin_manager
from tests.conftest import make_app


def _plugin(name: str, **hooks) -> types.ModuleType:
    module = types.ModuleType(name)
    for hook_name, fn in hooks.items():
        fn.__name__ = hook_name
        setattr(module, hook_name, hookimpl(fn))
    return module


def test_builtins_are_loaded_and_described(tmp_path):
    pm = make_plugin_manager(tmp_path)
    names = {row["name"]: row for row in pm.describe()}
    assert {p.rsplit(".", 1)[-1] for p in DEFAULT_PLUGINS} <= set(names)
    assert names["default_routing"]["origin"] == "built-in"
    assert names["default_routing"]["hooks"] == ["assign_agent"]


def test_hook_assign_agent_plugin_overrides_builtin(tmp_path):
    pick_last = _plugin("pick_last", assign_agent=lambda conversation, candidates: candidates[-1])
    pm = make_plugin_manager(tmp_path, extra=[pick_last])
    assert pm.call_first("assign_agent", conversation=None, candidates=["a", "b"]) == "b"
    pm2 = make_plugin_manager(tmp_path)
    assert pm2.call_first("assign_agent", conversation=None, candidates=["a", "b"]) == "a"


def test_instance_folder_plugin_is_loaded(tmp_path):
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "hello_links.py").write_text(textwrap.dedent('''
        from meiqia.hookspecs import hookimpl

        @hookimpl
        def menu_links(actor, request):
            return [{"href": "https://crm.example.com", "label": "CRM 客户系统"}]
    '''))
    pm = make_plugin_manager(tmp_path)
    assert pm.call_flat("menu_links", actor=None, request=None) == [
        {"href": "https://crm.example.com", "label": "CRM 客户系统"}
    ]
    row = next(r for r in pm.describe() if r["name"] == "instance:hello_links")
    assert row["origin"] == "instance" and row["hooks"] == ["menu_links"]


def test_entry_point_plugin_is_loaded(tmp_path, monkeypatch):
    """A real installed distribution with an entry point in the ``meiqia`` group."""
    site = tmp_path / "site"
    pkg = site / "meiqia_demo_plugin"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(textwrap.dedent('''
        from meiqia.hookspecs import hookimpl

        @hookimpl
        def track_event(event):
            EVENTS.append(event)

        EVENTS = []
    '''))
    dist = site / "meiqia_demo_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: meiqia-demo-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[meiqia]\ndemo = meiqia_demo_plugin\n")
    monkeypatch.syspath_prepend(str(site))
    try:
        pm = make_plugin_manager(tmp_path / "inst")
        row = next(r for r in pm.describe() if r["name"] == "demo")
        assert row["origin"] == "entry point" and row["hooks"] == ["track_event"]
        pm.call("track_event", event={"name": "x"})
        assert sys.modules["meiqia_demo_plugin"].EVENTS == [{"name": "x"}]
    finally:
        sys.modules.pop("meiqia_demo_plugin", None)


def test_broken_instance_plugin_stops_startup_naming_it(tmp_path):
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "broken.py").write_text("import not_a_module_anywhere\n")
    with pytest.raises(PluginLoadError) as info:
        make_plugin_manager(tmp_path)
    assert "broken.py" in str(info.value)
    assert "not_a_module_anywhere" in str(info.value)


def test_misspelt_hook_is_a_startup_error(tmp_path):
    typo = _plugin("typo", asign_agent=lambda conversation, candidates: None)
    with pytest.raises(pluggy.PluginValidationError) as info:
        make_app(tmp_path, plugins=(typo,))
    assert "asign_agent" in str(info.value)


def test_hook_raising_at_runtime_is_logged_and_isolated(tmp_path, caplog):
    def boom(event):
        raise RuntimeError("插件坏了")

    seen = []
    bad = _plugin("bad_tracker", track_event=boom)
    good = _plugin("good_tracker", track_event=lambda event: seen.append(event["name"]))
    pm = make_plugin_manager(tmp_path, extra=[bad, good])
    with caplog.at_level(logging.ERROR):
        pm.call("track_event", event={"name": "message.created"})
    assert seen == ["message.created"]
    assert "bad_tracker" in caplog.text and "track_event" in caplog.text


def test_hook_hanging_is_abandoned_after_the_time_limit(tmp_path, caplog):
    def slow(event):
        time.sleep(0.5)

    pm = make_plugin_manager(tmp_path, extra=[_plugin("slowpoke", track_event=slow)])
    with caplog.at_level(logging.ERROR):
        assert pm.call("track_event", timeout=0.05, event={"name": "x"}) == []
    assert "slowpoke" in caplog.text and "timed out" in caplog.text


def test_hook_startup_raising_stops_create_app(tmp_path):
    def startup(app):
        raise ValueError("CRM_URL is not set")

    with pytest.raises(ValueError, match="CRM_URL"):
        make_app(tmp_path, plugins=(_plugin("needs_config", startup=startup),))


def test_hook_register_blueprints_adds_routes(tmp_path):
    from flask import Blueprint

    bp = Blueprint("hello", __name__, url_prefix="/hello")
    bp.add_url_rule("/", "index", lambda: "你好")
    app = make_app(tmp_path, plugins=(_plugin("hello", register_blueprints=lambda app: [bp]),))
    assert app.test_client().get("/hello/").get_data(as_text=True) == "你好"
