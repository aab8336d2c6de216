"""gunicorn's start-up log says where meiqia listens, with ``MEIQIA_REUSE_PORT`` on
(the default: each worker binds a socket of its own, the master none) and off.

gunicorn started for real with ``-c python:meiqia.gunicorn_conf`` as docs/deploy.md
§3 runs it, its log read, and the address it names answered.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.servers import free_port

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _start(tmp_path: Path, reuse_port: str, port: int) -> tuple[subprocess.Popen, Path]:
    log = tmp_path / f"gunicorn-{reuse_port}.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEIQIA_")}
    env.update({"MEIQIA_INSTANCE_PATH": str(tmp_path / "inst"), "MEIQIA_WORKERS": "1",
                "MEIQIA_BIND": f"127.0.0.1:{port}", "MEIQIA_REUSE_PORT": reuse_port,
                "MEIQIA_DATABASE_URL": f"sqlite:///{tmp_path / 'inst' / 'meiqia.sqlite3'}",
                "MEIQIA_SECRET_KEY": "listening-log-test", "PYTHONPATH": str(ROOT)})
    with log.open("w") as out:
        proc = subprocess.Popen([str(BIN / "gunicorn"), "-c", "python:meiqia.gunicorn_conf",
                                 "meiqia.wsgi:app"], cwd=tmp_path, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    return proc, log


@pytest.mark.parametrize("reuse_port", ["1", "0"])
def test_the_startup_log_names_the_address(tmp_path, reuse_port):
    port = free_port()
    proc, log = _start(tmp_path, reuse_port, port)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                    break
            except urllib.error.HTTPError:
                break  # it answered (unhealthy is fine here)
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.3)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    lines = [line for line in log.read_text().splitlines() if "Listening at:" in line]
    assert len(lines) == 1, log.read_text()
    assert f"Listening at: http://127.0.0.1:{port} (" in lines[0], lines[0]
