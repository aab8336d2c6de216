"""The ``meiqia`` command, run as a user runs it (a real subprocess)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def meiqia(tmp_path, *args, env=None, check=True):
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MEIQIA_")}
    environ.update({"MEIQIA_INSTANCE_PATH": str(tmp_path / "inst"), **(env or {})})
    result = subprocess.run(
        [sys.executable, "-m", "meiqia.cli", *args],
        capture_output=True, text=True, env=environ, timeout=120,
    )
    if check:
        assert result.returncode == 0, result.stderr
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
    assert "entries indexed" in meiqia(tmp_path, "kb", "reindex").stdout


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
    assert result["n"] == 2 and result["in_scope_accuracy"] == 1.0
    for key in ("oos_recall", "oos_precision", "suggest_rate", "p50_ms", "p99_ms", "build_s"):
        assert key in result


def test_bad_config_is_a_clean_error(tmp_path):
    result = meiqia(tmp_path, "db", "upgrade", env={"MEIQIA_DATABASE_URL": "mysql://x/y"},
                    check=False)
    assert result.returncode != 0
    assert "DATABASE_URL" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("command", [["agent", "create", "--email", "a@b.cn", "--name", "x"]])
def test_commands_on_a_new_instance_say_to_init(tmp_path, command):
    result = meiqia(tmp_path, *command, check=False)
    assert result.returncode != 0
    assert "meiqia init" in result.stderr or "db upgrade" in result.stderr


def test_a_failed_init_leaves_no_database_behind(tmp_path):
    weak = meiqia(tmp_path, "init", "--password", "short", check=False)
    assert weak.returncode != 0 and "password: at least 8 characters" in weak.stderr
    assert not (tmp_path / "inst" / "meiqia.sqlite3").exists()
    bad_email = meiqia(tmp_path, "init", "--email", "不是邮箱", check=False)
    assert bad_email.returncode != 0 and "email" in bad_email.stderr
    assert not (tmp_path / "inst" / "meiqia.sqlite3").exists()
    assert "database: created" in meiqia(tmp_path, "init", "--no-demo-kb").stdout


def test_agent_create_with_a_custom_scope(tmp_path):
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

