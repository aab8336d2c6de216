"""The ``meiqia`` command, run as a user runs it (a real subprocess)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def meiqia(tmp_path, *args, env=None, check=True):
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MEIQIA_")}
    environ.update({"MEIQIA_INSTANCE_PATH": str(tmp_path / "inst"),
                    # `bot ask --kb` caches its index: here, not in the home directory.
                    "MEIQIA_CACHE_DIR": str(tmp_path / "cache"), **(env or {})})
    result = subprocess.run(
        [sys.executable, "-m", "meiqia.cli", *args],
        capture_output=True, text=True, env=environ, timeout=120,
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


def in_process(tmp_path, *args, input=None, check=True):
    """``meiqia`` through click's runner in this process: for a test of many commands
    (a subprocess each would import scikit-learn twenty times over)."""
    from click.testing import CliRunner

    from meiqia.cli import cli

    env = {k: None for k in os.environ if k.startswith("MEIQIA_")}
    env["MEIQIA_INSTANCE_PATH"] = str(tmp_path / "inst")
    env["MEIQIA_CACHE_DIR"] = str(tmp_path / "cache")
    result = CliRunner().invoke(cli, list(args), input=input, env=env, catch_exceptions=False)
    if check:
        assert result.exit_code == 0, result.output
    result.returncode = result.exit_code  # the subprocess spelling the checks below use
    return result


def test_help_lists_every_command(tmp_path):
    out = meiqia(tmp_path, "--help").stdout
    for command in ("init", "run", "worker", "db", "kb", "bot", "plugins", "agent"):
        assert f"  {command} " in out, command
    assert "--dev" in meiqia(tmp_path, "run", "--help").stdout
    assert "upgrade" in meiqia(tmp_path, "db", "--help").stdout
    kb_help = meiqia(tmp_path, "kb", "--help").stdout
    for sub in ("import", "export", "reindex"):
        assert sub in kb_help
    bot_help = meiqia(tmp_path, "bot", "--help").stdout
    assert "eval" in bot_help and "ask" in bot_help


def test_init_then_agent_create_then_plugins(tmp_path):
    out = meiqia(tmp_path, "init", "--no-demo-kb").stdout
    assert "database: created" in out and "password:" in out
    assert (tmp_path / "inst" / "secret_key").exists()
    again = meiqia(tmp_path, "init").stdout
    assert "a team exists already" in again and "password:" not in again

    created = meiqia(tmp_path, "agent", "create", "--email", "li@example.com", "--name", "李四")
    assert "li@example.com" in created.stdout and "password:" in created.stdout
    dup = meiqia(tmp_path, "agent", "create", "--email", "li@example.com", "--name", "李四",
                 check=False)
    assert dup.returncode != 0 and "already exists" in dup.stderr

    plugins = meiqia(tmp_path, "plugins").stdout
    assert "default_routing" in plugins and "assign_agent" in plugins


def test_init_imports_the_demo_kb_and_the_bot_answers(tmp_path):
    out = meiqia(tmp_path, "init").stdout
    assert "knowledge base: 59 entries imported from shop.zh-CN.yaml" in out
    asked = meiqia(tmp_path, "bot", "ask", "退貨運費誰出？").stdout
    assert "decision: answer" in asked and "return-shipping-fee" in asked
    exported = tmp_path / "kb.xlsx"
    assert "59 entries written" in meiqia(tmp_path, "kb", "export", str(exported)).stdout
    again = meiqia(tmp_path, "kb", "import", str(exported)).stdout
    assert "59 created" not in again and "59 updated" in again
    reindexed = meiqia(tmp_path, "kb", "reindex").stdout
    # Without a terminal the bar is one line per step of the build.
    for step in ("normalising questions", "counting the n-grams", "training the classifier",
                 "publishing the new version"):
        assert step in reindexed, reindexed
    assert "59 entries (" in reindexed and "indexed in" in reindexed and "KB version" in reindexed


def test_kb_import_errors_name_lines_and_land_nothing(tmp_path):
    meiqia(tmp_path, "init", "--no-demo-kb")
    bad = tmp_path / "bad.csv"
    bad.write_text("id,question,answer\na,退款,好\na,退货,不同的答案\n", encoding="utf-8")
    result = meiqia(tmp_path, "kb", "import", str(bad), check=False)
    assert result.returncode != 0
    assert "line 3" in result.stderr and "nothing was imported" in result.stderr


def test_bot_eval_prints_the_design_metrics_as_json(tmp_path):
    import json
    from pathlib import Path

    kb = Path(__file__).resolve().parents[2] / "knowledge_base" / "shop.en.yaml"
    cases = tmp_path / "cases.csv"
    cases.write_text("query,expected_id\ndo you take paypal,pay-methods\nwrite me a poem,\n")
    out = meiqia(tmp_path, "bot", "eval", "--kb", str(kb), "--cases", str(cases), "--json").stdout
    result = json.loads(out)
    assert list(result) == ["n", "in_scope_accuracy", "oos_recall", "oos_precision",
                            "suggest_rate", "p50_ms", "p99_ms", "build_s", "top1_accuracy",
                            "answer_precision", "coverage", "suggest_precision", "thresholds",
                            "cpu_p50_ms", "cpu_p99_ms", "oos_curve"]
    assert result["n"] == 2 and result["in_scope_accuracy"] == 1.0


def test_bot_eval_prints_three_decimals_and_the_counts(tmp_path):
    import json
    from pathlib import Path

    kb = Path(__file__).resolve().parents[2] / "knowledge_base" / "shop.en.yaml"
    cases = tmp_path / "cases.csv"
    # 2 of 3 in scope right: 0.6666..., which "66.7 %" used to round away.
    cases.write_text("query,expected_id\ndo you take paypal,pay-methods\n"
                     "do you take paypal,refund-time\nhow long does a refund take,refund-time\n")
    args = ("bot", "eval", "--kb", str(kb), "--cases", str(cases))
    text = meiqia(tmp_path, *args).stdout
    assert "in-scope accuracy   0.667  (2 of 3)" in text, text
    assert "out-of-scope recall null" in text
    assert json.loads(meiqia(tmp_path, *args, "--json").stdout)["oos_recall"] is None
    assert json.loads(meiqia(tmp_path, *args, "--json").stdout)["in_scope_accuracy"] == 2 / 3


def test_kb_entries_one_by_one(tmp_path):
    meiqia = in_process
    meiqia(tmp_path, "init", "--no-demo-kb")
    added = meiqia(tmp_path, "kb", "add", "--key", "weekend-ship", "--question", "周末发货吗",
                   "--question", "周六日发不发货", "--answer", "周末照常发货。",
                   "--category", "物流").stdout
    assert "added entry weekend-ship (id 1): 周末发货吗" in added and "also: 周六日发不发货" in added
    meiqia(tmp_path, "kb", "add", "--question", "怎么开发票", "--answer", "在订单详情申请。")
    asked = meiqia(tmp_path, "bot", "ask", "周六日发不发货").stdout
    assert "decision: answer" in asked and "answer: 周末照常发货。" in asked

    # The answer from standard input (long, with a link), one similar question more.
    answer = "周末也发货，[查看物流](https://example.com/track)。"
    edited = meiqia(tmp_path, "kb", "edit", "weekend-ship", "--answer", "-",
                    "--add-question", "星期天发货吗", input=answer)
    assert "changed entry weekend-ship" in edited.stdout and "also: 星期天发货吗" in edited.stdout
    assert f"answer: {answer}" in meiqia(tmp_path, "bot", "ask", "星期天发货吗").stdout

    assert "disabled entry weekend-ship (id 1, disabled)" in meiqia(
        tmp_path, "kb", "disable", "weekend-ship").stdout
    listed = meiqia(tmp_path, "kb", "list").stdout
    assert "weekend-ship  off  [物流]  周末发货吗" in listed and "2 entries" in listed
    assert "[weekend-ship]" not in meiqia(tmp_path, "bot", "ask", "周六日发不发货").stdout
    meiqia(tmp_path, "kb", "enable", "weekend-ship")
    assert "[weekend-ship]" in meiqia(tmp_path, "bot", "ask", "周六日发不发货").stdout
    assert "1 entry" in meiqia(tmp_path, "kb", "list", "--search", "发票").stdout

    def refused(*args: str) -> str:
        result = meiqia(tmp_path, *args, check=False)
        assert result.returncode != 0, result.stdout
        return result.stderr

    assert "no entry with the key 'nope'" in refused("kb", "edit", "nope", "--answer", "x")
    assert "nothing to change" in refused("kb", "edit", "weekend-ship")
    assert "key: an entry with this id exists" in refused(
        "kb", "add", "--key", "weekend-ship", "--question", "q", "--answer", "a")
    assert "questions: at least one non-empty question" in refused(
        "kb", "add", "--question", "  ", "--answer", "a")
    assert "key" in refused("kb", "add", "--key", "有 空格", "--question", "q", "--answer", "a")
    # An answer of white space only is no answer (the API refuses it too).
    assert "answer: must not be empty" in refused(
        "kb", "add", "--question", "会员日是哪天", "--answer", " \n\t ")
    assert "answer: must not be empty" in refused("kb", "edit", "weekend-ship", "--answer", "  ")
    assert "no team with id 99" in refused("kb", "list", "--team", "99")
    assert "Aborted" in refused("kb", "delete", "weekend-ship")  # no --yes, no terminal
    assert "deleted entry weekend-ship" in meiqia(
        tmp_path, "kb", "delete", "weekend-ship", "--yes").stdout
    assert "1 entry" in meiqia(tmp_path, "kb", "list").stdout


def test_bot_ask_refuses_what_the_api_refuses(tmp_path):
    kb = str(Path(__file__).resolve().parents[2] / "knowledge_base" / "shop.zh-CN.yaml")
    for question, reason in [("", "question: the question is empty"),
                             ("   ", "question: the question is empty"),
                             ("😀😀", "question: the question has no words (only emoji or "
                                     "punctuation)")]:
        result = meiqia(tmp_path, "bot", "ask", "--kb", kb, question, check=False)
        assert result.returncode == 1 and reason in result.stderr, result
        assert "decision" not in result.stdout
    long = meiqia(tmp_path, "bot", "ask", "--kb", kb, "退货运费谁出" + "。" * 2100).stdout
    assert ("note: the question is longer than 500 characters; only the first 500 "
            "were read") in long
    assert "[return-shipping-fee]" in long


def test_bad_config_is_a_clean_error(tmp_path):
    result = meiqia(tmp_path, "db", "upgrade", env={"MEIQIA_DATABASE_URL": "mysql://x/y"},
                    check=False)
    assert result.returncode != 0
    assert "DATABASE_URL" in result.stderr and "Traceback" not in result.stderr


STARTUP_FAILS = """
from meiqia.hookspecs import hookimpl


@hookimpl
def startup(app):
    raise ValueError("缺少 API 密钥 (API key missing)")
"""


def test_a_refused_plugin_startup_is_one_line_not_a_traceback(tmp_path):
    """PLUGIN_STARTUP_FAILURE=refuse stops `meiqia run` and every other command with
    one line naming the plugin and its error."""
    meiqia(tmp_path, "db", "upgrade")
    plugins = tmp_path / "inst" / "plugins"
    plugins.mkdir(parents=True)
    (plugins / "needs_a_key.py").write_text(STARTUP_FAILS, encoding="utf-8")
    env = {"MEIQIA_PLUGIN_STARTUP_FAILURE": "refuse"}
    for command in (["run", "--port", "0"], ["plugins"]):
        result = meiqia(tmp_path, *command, env=env, check=False)
        assert result.returncode == 1, (command, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr, result.stderr
        errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
        assert len(errors) == 1 and "needs_a_key" in errors[0], result.stderr
        assert "ValueError: 缺少 API 密钥 (API key missing)" in errors[0], errors


@pytest.mark.parametrize("command", [["agent", "create", "--email", "a@b.cn", "--name", "x"]])
def test_commands_on_a_new_instance_say_to_init(tmp_path, command):
    result = meiqia(tmp_path, *command, check=False)
    assert result.returncode != 0
    assert "meiqia init" in result.stderr or "db upgrade" in result.stderr


def test_a_failed_init_leaves_no_database_behind(tmp_path):
    meiqia = in_process
    weak = meiqia(tmp_path, "init", "--password", "short", check=False)
    assert weak.returncode != 0 and "password: at least 8 characters" in weak.stderr
    assert not (tmp_path / "inst" / "meiqia.sqlite3").exists()
    bad_email = meiqia(tmp_path, "init", "--email", "不是邮箱", check=False)
    assert bad_email.returncode != 0 and "email" in bad_email.stderr
    assert not (tmp_path / "inst" / "meiqia.sqlite3").exists()
    assert "database: created" in meiqia(tmp_path, "init", "--no-demo-kb").stdout


def test_agent_create_with_a_custom_scope(tmp_path):
    meiqia = in_process
    meiqia(tmp_path, "init", "--no-demo-kb")
    out = meiqia(tmp_path, "agent", "create", "--email", "zhao@example.com", "--name", "赵六",
                 "--scope", "custom", "--scope-agent", "1").stdout
    assert "scope custom" in out and "sees agents [1], groups -" in out
    wrong = meiqia(tmp_path, "agent", "create", "--email", "qian@example.com", "--name", "钱七",
                   "--scope-agent", "1", check=False)
    assert wrong.returncode != 0 and "need --scope custom" in wrong.stderr
    negative = meiqia(tmp_path, "agent", "create", "--email", "sun@example.com", "--name", "孙八",
                      "--max-concurrent", "-1", check=False)
    assert negative.returncode != 0 and "max_concurrent" in negative.stderr



def test_bot_ask_kb_reuses_the_cached_index(tmp_path):
    from pathlib import Path

    kb = Path(__file__).resolve().parents[2] / "knowledge_base" / "shop.zh-CN.yaml"
    cache = tmp_path / "cache"
    env = {"MEIQIA_CACHE_DIR": str(cache)}
    first = meiqia(tmp_path, "bot", "ask", "--kb", str(kb), "退货运费谁出", env=env).stdout
    pickles = list(cache.glob("bot-index-*.pickle"))
    assert len(pickles) == 1, first
    built_at = pickles[0].stat().st_mtime_ns
    second = meiqia(tmp_path, "bot", "ask", "--kb", str(kb), "退货运费谁出", env=env).stdout
    assert second == first and "decision: answer" in first
    assert pickles[0].stat().st_mtime_ns == built_at  # loaded, not rebuilt
    # Another KB file (another content) gets its own index.
    other = tmp_path / "kb.csv"
    other.write_text("id,question,answer\na,怎么开发票,在订单页申请\n", encoding="utf-8")
    assert "[a]" in meiqia(tmp_path, "bot", "ask", "--kb", str(other), "怎么开发票",
                           env=env).stdout
    assert len(list(cache.glob("bot-index-*.pickle"))) == 2


PLUGIN_COMMANDS = """
import click
from flask import current_app
from flask.cli import with_appcontext

from meiqia.channels import host_for
from meiqia.hookspecs import hookimpl
from meiqia.models import Team


@hookimpl
def register_commands(cli):
    @cli.command("crm-sync")
    def crm_sync():
        team = Team.select().first()
        host_for(team.id, "web")  # raised "host_for needs an app context"
        click.echo(f"team={team.name} crm={current_app.config['CRM_URL']}")

    @cli.command("crm-flask")
    @with_appcontext
    def crm_flask():
        click.echo(f"flask crm={current_app.config['CRM_URL']}")

    @cli.group("crm")
    def crm():
        "CRM tools."

    @crm.command("teams")
    def teams():
        click.echo(f"teams={Team.select().count()}")
"""


def test_a_plugins_commands_run_in_the_application_context(tmp_path):
    """docs/plugins.md's ``register_commands``: a plugin's command runs as meiqia's own
    do, inside the app's context with a database connection. Found by a plugin
    author: ``host_for`` raised "host_for needs an app context", and Flask's
    ``with_appcontext`` "Could not locate a Flask application"."""
    meiqia(tmp_path, "init", "--no-demo-kb")
    plugins = tmp_path / "inst" / "plugins"
    plugins.mkdir(parents=True)
    (plugins / "crm_tools.py").write_text(PLUGIN_COMMANDS, encoding="utf-8")
    env = {"MEIQIA_CRM_URL": "https://crm.example.com"}
    assert meiqia(tmp_path, "crm-sync", env=env).stdout.strip() == \
        "team=演示团队 crm=https://crm.example.com"
    assert meiqia(tmp_path, "crm-flask", env=env).stdout.strip() == \
        "flask crm=https://crm.example.com"
    assert meiqia(tmp_path, "crm", "teams", env=env).stdout.strip() == "teams=1"
    assert "CRM tools." in meiqia(tmp_path, "--help").stdout


def _entry_point_package(site, name, body):
    """A real installed distribution: the package and its dist-info with an entry point
    of the group ``meiqia`` (found through PYTHONPATH, as pip's would be)."""
    (site / f"meiqia_{name}").mkdir(parents=True)
    (site / f"meiqia_{name}" / "__init__.py").write_text(body, encoding="utf-8")
    dist = site / f"meiqia_{name}-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: meiqia-{name}\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[meiqia]\n{name} = meiqia_{name}\n")


def _command_plugin(command, marker=""):
    return f"""
import pathlib
import click
from meiqia.hookspecs import hookimpl

{f'pathlib.Path({marker!r}).write_text("imported")' if marker else ''}

@hookimpl
def register_commands(cli):
    @cli.command({command!r})
    def run():
        click.echo("ran")
"""


def test_the_commands_are_those_of_the_plugins_the_application_loads(tmp_path):
    """docs/plugins.md "Where plugins come from": DISABLED_PLUGINS and ENTRY_POINT_PLUGINS
    hold for the ``meiqia`` command's plugin commands too. Found by a plugin author: a
    disabled package was imported for ``meiqia run --help`` and its command still ran, and
    one disabled package that failed to import took every plugin's commands away."""
    site = tmp_path / "site"
    marker = tmp_path / "crm_panel-imported"
    _entry_point_package(site, "crm_panel", _command_plugin("crm-sync", str(marker)))
    _entry_point_package(site, "broken_panel", "import not_a_module_anywhere\n")
    _entry_point_package(site, "vip", _command_plugin("vip-sync"))
    plugins = tmp_path / "inst" / "plugins"
    plugins.mkdir(parents=True)
    (plugins / "cmds.py").write_text(_command_plugin("acme-hello"), encoding="utf-8")
    path = {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}

    # Nothing disabled: the package that fails is named, every other plugin's commands load.
    everything = meiqia(tmp_path, "--help", env=path)
    assert "'broken_panel' failed to load: ModuleNotFoundError" in everything.stderr
    for command in ("crm-sync", "vip-sync", "acme-hello"):
        assert f"\n  {command}\n" in everything.stdout, command
    marker.unlink()

    off = {**path, "MEIQIA_DISABLED_PLUGINS": "crm_panel,broken_panel,cmds"}
    helped = meiqia(tmp_path, "run", "--help", env=off)
    assert helped.stderr == "" and not marker.exists()  # not even imported
    for command in ("crm-sync", "acme-hello"):
        gone = meiqia(tmp_path, command, env=off, check=False)
        assert gone.returncode == 2 and f"No such command '{command}'" in gone.stderr
        assert "failed to load" not in gone.stderr
    assert "\n  vip-sync\n" in meiqia(tmp_path, "--help", env=off).stdout

    # ENTRY_POINT_PLUGINS, from instance/config.py as the server reads it.
    (tmp_path / "inst" / "config.py").write_text('ENTRY_POINT_PLUGINS = ["vip"]\n')
    only = meiqia(tmp_path, "--help", env=path)
    assert only.stderr == "" and not marker.exists()
    assert "\n  vip-sync\n" in only.stdout and "\n  acme-hello\n" in only.stdout
    assert "crm-sync" not in only.stdout


def test_a_plugin_that_does_not_load_is_named_once_by_the_name_disabled_plugins_takes(tmp_path):
    plugins = tmp_path / "inst" / "plugins"
    plugins.mkdir(parents=True)
    (plugins / "typo.py").write_text(
        "from meiqia.hookspecs import hookimpl\n\n"
        "@hookimpl\ndef asign_agent(conversation, candidates):\n    return None\n")
    listed = meiqia(tmp_path, "plugins", check=False)
    assert listed.returncode == 1
    assert listed.stderr.count("asign_agent") == 1, listed.stderr
    assert "Error: plugin 'instance:typo' failed to load: PluginValidationError" in listed.stderr
    (plugins / "typo.py").unlink()
    (plugins / "broken.py").write_text("import not_a_module_anywhere\n")
    helped = meiqia(tmp_path, "--help")
    assert f"plugin 'instance:broken' ({plugins / 'broken.py'}) failed to load" in helped.stderr
    assert meiqia(tmp_path, "--help", env={"MEIQIA_DISABLED_PLUGINS": "instance:broken"}
                  ).stderr == ""
