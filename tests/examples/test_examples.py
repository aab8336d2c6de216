"""Every plugin package of examples/ passes its own tests, installed as a plugin
author installs it (issue 18, item 7).

Each example is a separate project: its tests run in their own pytest process,
from its folder (its own pytest configuration, its own rootdir), with only
``meiqia.testing`` for fixtures, as its author would run them. Every folder of
examples/ with a pyproject.toml is picked up, so a new example needs no entry
here. ``make test`` installs them (``pip install -e examples/<name>``); run by
hand, an example that is not installed fails in CI and is skipped elsewhere with
the command that installs it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from importlib.metadata import entry_points
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PROJECTS = sorted(path.parent for path in EXAMPLES.glob("*/pyproject.toml"))


def _entry_point_names(project: Path) -> set[str]:
    meta = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))
    return set(meta.get("project", {}).get("entry-points", {}).get("meiqia", {}))


def test_there_is_an_example_per_hook_family():
    names = {path.name for path in PROJECTS}
    assert {"answerer", "sidebar-iframe", "ticket-sink", "routing", "event-observer"} <= names


def test_every_example_is_listed_in_examples_readme_and_in_the_plugins_docs():
    """Found from outside: examples/README.md listed five examples and left out
    webhook-channel, which docs/plugins.md lists."""
    readme = (EXAMPLES / "README.md").read_text(encoding="utf-8")
    docs = (EXAMPLES.parent / "docs" / "plugins.md").read_text(encoding="utf-8")
    for project in PROJECTS:
        assert f"| [{project.name}]({project.name}/) |" in readme, project.name
        assert f"| `examples/{project.name}` |" in docs, project.name


@pytest.mark.parametrize("project", PROJECTS, ids=[path.name for path in PROJECTS])
def test_the_example_passes_its_own_tests(project: Path):
    declared = _entry_point_names(project)
    assert declared, f"{project.name}: no entry point in the group 'meiqia' (pyproject.toml)"
    installed = {ep.name for ep in entry_points(group="meiqia")}
    missing = declared - installed
    if missing:
        message = (f"examples/{project.name} is not installed ({', '.join(sorted(missing))}); "
                   f"run `pip install --no-deps -e examples/{project.name}` (make test does)")
        if os.environ.get("CI") == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MEIQIA_", "PYTEST_"))}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist"],
        cwd=project, env=env, capture_output=True, text=True, timeout=280)
    assert result.returncode == 0, (
        f"examples/{project.name}: its tests failed\n{result.stdout[-6000:]}\n{result.stderr[-2000:]}")
    assert " passed" in result.stdout and " failed" not in result.stdout, result.stdout
