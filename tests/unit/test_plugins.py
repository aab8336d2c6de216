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
from meiqia.plugins import PluginStartupError
from meiqia.plugins import make_plugin_manager
from tests.conftest import close_app
from tests.conftest import make_app
from tests.helpers import wait_until


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
        assert pm.call("track_event", event={"name": "x"}) == []  # a notification
        wait_until(lambda: sys.modules["meiqia_demo_plugin"].EVENTS == [{"name": "x"}],
                   what="the event on the plugin's own thread")
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


def test_misspelt_hook_is_a_startup_error_naming_the_plugin(tmp_path):
    """A load error like any other (the CLI prints it on one line), not pluggy's
    own exception and traceback (a docs-only plugin author met that)."""
    typo = _plugin("typo", asign_agent=lambda conversation, candidates: None)
    with pytest.raises(PluginLoadError) as info:
        make_app(tmp_path, plugins=(typo,))
    assert "'typo' failed to load" in str(info.value)
    assert "asign_agent" in str(info.value)
    assert isinstance(info.value.__cause__, pluggy.PluginValidationError)


def test_hook_raising_at_runtime_is_logged_and_isolated(tmp_path, caplog):
    def boom(event):
        raise RuntimeError("插件坏了")

    seen = []
    bad = _plugin("bad_tracker", track_event=boom)
    good = _plugin("good_tracker", track_event=lambda event: seen.append(event["name"]))
    pm = make_plugin_manager(tmp_path, extra=[bad, good])
    with caplog.at_level(logging.ERROR):
        pm.call("track_event", event={"name": "message.created"})
        wait_until(lambda: seen == ["message.created"], what="the good tracker")
        wait_until(lambda: "plugin bad_tracker: hook track_event raised" in caplog.text,
                   what="the log line naming the plugin and the hook")


def test_hook_hanging_is_abandoned_after_the_time_limit(tmp_path, caplog):
    def slow(actor, request):
        time.sleep(0.5)
        return [{"href": "/late", "label": "迟到"}]

    pm = make_plugin_manager(tmp_path, extra=[_plugin("slowpoke", menu_links=slow)])
    with caplog.at_level(logging.ERROR):
        assert pm.call("menu_links", timeout=0.05, actor=None, request=None) == []
    assert "plugin slowpoke: hook menu_links timed out after 0.05s" in caplog.text


def test_hook_startup_raising_disables_that_plugin_naming_it(tmp_path, caplog):
    def startup(app):
        raise ValueError("CRM_URL is not set")

    links = lambda actor, request: [{"href": "https://crm.example.com", "label": "CRM"}]  # noqa: E731
    needs = _plugin("needs_config", startup=startup, menu_links=links)
    fine = _plugin("fine", startup=lambda app: None)
    with caplog.at_level(logging.ERROR):
        app = make_app(tmp_path, plugins=(needs, fine))
    try:
        pm = app.extensions["meiqia.plugins"]
        assert pm.get_plugin("needs_config") is None and pm.get_plugin("fine") is not None
        assert pm.call_flat("menu_links", actor=None, request=None) == []
        assert "plugin needs_config: hook startup raised ValueError: CRM_URL is not set; " \
               "the plugin is disabled" in caplog.text
        assert pm.failed_at_startup["needs_config"]["error"] == "ValueError: CRM_URL is not set"
        # When, for the Plugins page (it showed "at": "").
        assert pm.failed_at_startup["needs_config"]["at"].endswith("Z")
    finally:
        close_app(app)


def test_meiqia_plugins_lists_one_whose_startup_failed(tmp_path):
    """`meiqia plugins` "lists every plugin": it left out one whose startup failed."""
    from tests.unit.test_cli import in_process

    folder = tmp_path / "inst" / "plugins"
    folder.mkdir(parents=True)
    (folder / "needs_config.py").write_text(
        "from meiqia.hookspecs import hookimpl\n\n\n"
        "@hookimpl\ndef startup(app):\n    raise ValueError('CRM_URL is not set')\n")
    listed = in_process(tmp_path, "plugins").output
    line = next(row for row in listed.splitlines() if "needs_config" in row)
    assert "failed: ValueError: CRM_URL is not set" in line


def test_hook_startup_raising_stops_create_app_when_the_setting_says_so(tmp_path):
    def startup(app):
        raise ValueError("CRM_URL is not set")

    with pytest.raises(PluginStartupError, match="plugin 'needs_config': startup failed: "
                                                 "ValueError: CRM_URL is not set"):
        make_app(tmp_path, plugins=(_plugin("needs_config", startup=startup),),
                 PLUGIN_STARTUP_FAILURE="refuse")


def test_hook_register_blueprints_adds_routes(tmp_path):
    from flask import Blueprint

    bp = Blueprint("hello", __name__, url_prefix="/hello")
    bp.add_url_rule("/", "index", lambda: "你好")
    app = make_app(tmp_path, plugins=(_plugin("hello", register_blueprints=lambda app: [bp]),))
    assert app.test_client().get("/hello/").get_data(as_text=True) == "你好"


def test_disabled_plugins_are_not_loaded_whatever_their_source(tmp_path, monkeypatch, caplog):
    """DISABLED_PLUGINS used to be checked for built-ins only: an entry point named
    there was loaded anyway. Now no source escapes it, and the entry point's package
    is not even imported."""
    site = tmp_path / "site"
    pkg = site / "meiqia_unwanted_plugin"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("raise RuntimeError('imported although disabled')\n")
    dist = site / "meiqia_unwanted_plugin-2.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: meiqia-unwanted-plugin\nVersion: 2.0\n")
    (dist / "entry_points.txt").write_text("[meiqia]\nunwanted = meiqia_unwanted_plugin\n")
    monkeypatch.syspath_prepend(str(site))
    folder = tmp_path / "inst" / "plugins"
    folder.mkdir(parents=True)
    (folder / "crm.py").write_text("raise RuntimeError('imported although disabled')\n")
    extra = _plugin("extra_links", menu_links=lambda actor, request: [{"href": "/x", "label": "x"}])
    with caplog.at_level(logging.INFO):
        pm = make_plugin_manager(tmp_path / "inst", extra=[extra], modules=["json"],
                                 disabled=["unwanted", "instance:crm", "email_sink",
                                           "extra_links", "json"])
    names = {row["name"] for row in pm.describe()}
    assert not names & {"unwanted", "instance:crm", "email_sink", "extra_links", "json"}
    assert "webhook_sink" in names
    assert "meiqia_unwanted_plugin" not in sys.modules
    for name in ("unwanted", "instance:crm", "email_sink", "extra_links", "json"):
        assert f"plugin {name}: not loaded (DISABLED_PLUGINS)" in caplog.text


def test_an_entry_point_shows_its_package_version(tmp_path, monkeypatch):
    site = tmp_path / "site"
    pkg = site / "meiqia_versioned_plugin"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(textwrap.dedent('''
        from meiqia.hookspecs import hookimpl

        @hookimpl
        def menu_links(actor, request):
            return []
    '''))
    dist = site / "meiqia_versioned_plugin-1.4.2.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: meiqia-versioned-plugin\nVersion: 1.4.2\n")
    (dist / "entry_points.txt").write_text("[meiqia]\nversioned = meiqia_versioned_plugin\n")
    monkeypatch.syspath_prepend(str(site))
    try:
        pm = make_plugin_manager(tmp_path / "inst")
        row = next(r for r in pm.describe() if r["name"] == "versioned")
        assert row["version"] == "1.4.2" and row["origin"] == "entry point"
    finally:
        sys.modules.pop("meiqia_versioned_plugin", None)


def test_plugins_setting_takes_a_comma_separated_list_from_the_environment(tmp_path, monkeypatch):
    from meiqia import config

    monkeypatch.setenv("MEIQIA_PLUGINS", "acme.crm, acme.sms")
    monkeypatch.setenv("MEIQIA_HOOK_BUDGETS", '{"assign_agent": 2}')

    class App:
        config: dict = {}
        instance_path = str(tmp_path)

        def __init__(self) -> None:
            import flask

            self.config = flask.Config(str(tmp_path))

    app = App()
    config.load(app)
    assert app.config["PLUGINS"] == ["acme.crm", "acme.sms"]
    assert app.config["HOOK_BUDGETS"] == {"assign_agent": 2.0}
    monkeypatch.setenv("MEIQIA_HOOK_BUDGETS", '{"assign_agents": 2}')
    with pytest.raises(config.ConfigError, match="HOOK_BUDGETS: unknown hook kind 'assign_agents'"):
        config.load(App())


def test_a_plugins_routes_have_the_prefix_it_gives_and_meiqias_own_win(tmp_path):
    """docs/plugins.md ``register_blueprints``: nothing adds a prefix (a blueprint without
    one served GET /hello at the site root), and on a clash meiqia's route answers."""
    from flask import Blueprint

    bp = Blueprint("clash", __name__)
    bp.add_url_rule("/hello", "hello", lambda: "你好")
    bp.add_url_rule("/healthz", "healthz", lambda: "the plugin's")
    bp.add_url_rule("/api/v1/plugins", "plugins", lambda: "the plugin's")
    app = make_app(tmp_path / "a", plugins=(_plugin("clash", register_blueprints=lambda app: [bp]),))
    try:
        client = app.test_client()
        assert client.get("/hello").get_data(as_text=True) == "你好"
        assert client.get("/healthz").get_json()["database"]["ok"] is True
        assert client.get("/api/v1/plugins").status_code == 401  # meiqia's: log in first
    finally:
        close_app(app)
    taken = Blueprint("api", __name__)
    with pytest.raises(ValueError, match="'api' is already registered"):
        make_app(tmp_path / "b", plugins=(_plugin("taken", register_blueprints=lambda app: [taken]),))
