"""``meiqia run``: where it listens, and a clear word when it cannot (issue 17)."""

from __future__ import annotations

import socket

from tests.unit.test_cli import in_process
from tests.unit.test_cli import meiqia


def test_run_names_its_port_options(tmp_path):
    out = meiqia(tmp_path, "run", "--help").stdout
    assert "--port" in out and "MEIQIA_PORT" in out and "MEIQIA_HOST" in out


def test_a_taken_port_is_a_clean_error_naming_the_way_out(tmp_path):
    in_process(tmp_path, "init", "--no-demo-kb")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # Through the environment variable, as `MEIQIA_PORT=… meiqia run` would.
        result = meiqia(tmp_path, "run", env={"MEIQIA_PORT": str(port),
                                              "MEIQIA_BOT_WARM_UP": "false"}, check=False)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "--port" in result.stderr and "make run PORT=8080" in result.stderr
    bad = meiqia(tmp_path, "run", "--port", "70000", check=False)
    assert bad.returncode == 2 and "70000" in bad.stderr
