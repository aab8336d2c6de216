"""docs/deploy.md's commands as an operator types them, where they failed from outside.

- §6's backup line (`tar … -C /var/lib/meiqia secret_key uploads`) on an instance
  nobody has uploaded to yet: it failed with "uploads: Cannot stat", since the folder
  was made by the first upload. `meiqia init` makes it now (0700, with `exports/`).
- A database the command cannot reach: `meiqia init`, `db status` and the others
  printed the driver's traceback (80 lines) where `db upgrade` said it in one. Each
  says it in one line now, exit status 1, the URL's password masked.

Real subprocesses of the `meiqia` command, a real SQLite instance, a port nothing
listens on.
"""

from __future__ import annotations

import os
import re
import socket
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

from tests.integration import deploy_doc
from tests.integration.deploy_doc import ROOT


def environ(instance: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEIQIA_")}
    env.update({"MEIQIA_INSTANCE_PATH": str(instance), "MEIQIA_NO_PLUGIN_COMMANDS": "1",
                "PYTHONPATH": str(ROOT), **extra})
    return env


def meiqia(*args: str, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "meiqia.cli", *args], cwd=ROOT, env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_the_backup_line_works_on_a_new_instance(tmp_path: Path) -> None:
    old_umask = os.umask(0o022)  # the usual one: folders would be 0755 without ours
    try:
        instance = tmp_path / "instance"
        init = meiqia("init", "--no-demo-kb", "--password", "Init-pass-1",
                      env=environ(instance))
        out, err = init.communicate(timeout=300)
    finally:
        os.umask(old_umask)
    assert init.returncode == 0, out + err
    for folder in ("uploads", "exports"):
        assert (instance / folder).is_dir(), f"`meiqia init` made no {folder}/"
        assert mode(instance / folder) == 0o700, folder

    (tar_line,) = (c for c in deploy_doc.commands(6) if c.startswith("tar "))
    tar_line, n = re.subn(r" -C /var/lib/meiqia ", f" -C {instance} ", tar_line)
    assert n == 1, tar_line
    backups = tmp_path / "backups"
    backups.mkdir()
    done = subprocess.run(["bash", "-c", tar_line], cwd=backups, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    (archive,) = backups.glob("*.tgz")
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert "uploads" in names and "secret_key" in names, names


def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


#: Every command that opens the database, with arguments it accepts.
DATABASE_COMMANDS = [
    ["init", "--no-demo-kb", "--password", "Init-pass-1"],
    ["db", "status"],
    ["db", "upgrade"],
    ["run", "--port", "0"],
    ["kb", "list"],
    ["kb", "add", "--question", "q?", "--answer", "a"],
    ["agent", "create", "--email", "a@example.com", "--name", "A"],
    ["agent", "passwd", "a@example.com", "--password", "New-pass-12"],
    ["bot", "ask", "退货运费谁出"],
    ["plugins"],
]


def test_an_unreachable_database_is_one_line_without_the_password(tmp_path: Path) -> None:
    port = unused_port()
    secret = "S3cret-pw%40x"  # percent-encoded in the URL: "S3cret-pw@x" to the driver
    url = f"postgresql://meiqia:{secret}@127.0.0.1:{port}/meiqia"
    env = environ(tmp_path / "instance", MEIQIA_DATABASE_URL=url)
    started = [(args, meiqia(*args, env=env)) for args in DATABASE_COMMANDS]
    masked = f"postgresql://meiqia:***@127.0.0.1:{port}/meiqia"
    for args, proc in started:
        out, err = proc.communicate(timeout=300)
        said = " ".join(args)
        assert proc.returncode == 1, (said, proc.returncode, out, err)
        assert "Traceback" not in err, (said, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1, (said, err)
        assert lines[0].startswith(
            f"Error: cannot connect to the database {masked}: OperationalError: "), (said, err)
        assert f"port {port} failed" in lines[0], (said, err)
        for shown in (secret, "S3cret-pw@x", "S3cret"):
            assert shown not in out + err, (said, out, err)
