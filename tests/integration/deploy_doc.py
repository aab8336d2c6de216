"""docs/deploy.md as data, for the walkthrough test that follows it.

The test reads its commands, environment, Procfile and nginx configuration from
the document itself, so a change to the document is a change to what the test
runs. Every accessor asserts the shape it expects: if the document is edited
into another shape, the test fails here, with the section named, instead of
silently testing something else.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "deploy.md"
PROCFILE = ROOT / "deploy" / "Procfile"

FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def section(number: int, text: str | None = None) -> str:
    """The body of ``## <number>. …``, up to the next ``## `` heading."""
    text = DOC.read_text(encoding="utf-8") if text is None else text
    match = re.search(rf"^## {number}\. .*?$(.*?)(?=^## |\Z)", text, re.MULTILINE | re.DOTALL)
    assert match, f"docs/deploy.md has no section '## {number}.'"
    return match.group(1)


def blocks(number: int, lang: str) -> list[str]:
    """The fenced blocks of section ``number`` whose info string is ``lang``."""
    found = [body for info, body in FENCE.findall(section(number)) if info == lang]
    assert found, f"docs/deploy.md §{number} has no ```{lang} block"
    return found


def commands(number: int) -> list[str]:
    """The ``$ …`` lines of the section's console blocks, without the prompt."""
    return [line[2:].strip() for body in blocks(number, "console")
            for line in body.splitlines() if line.startswith("$ ")]


def comments(number: int) -> list[str]:
    """The ``# …`` lines of the section's console blocks, without the ``# ``."""
    return [line[1:].strip() for body in blocks(number, "console")
            for line in body.splitlines() if line.startswith("#")]


def argv(command: str) -> list[str]:
    """A doc command line as arguments (a trailing ``# comment`` dropped)."""
    return shlex.split(command, comments=True)


def the_command(number: int, program: str) -> list[str]:
    """The one command of the section whose arguments start with ``program``."""
    words = program.split()
    found = [argv(c) for c in commands(number) if argv(c)[:len(words)] == words]
    assert len(found) == 1, f"docs/deploy.md §{number}: expected one `{program}` line"
    return found[0]


def exports(number: int = 2) -> dict[str, str]:
    """``export NAME=value`` lines of the section, in order."""
    found: dict[str, str] = {}
    for command in commands(number):
        words = argv(command)
        if words and words[0] == "export":
            name, _, value = words[1].partition("=")
            found[name] = value
    assert found, f"docs/deploy.md §{number} exports no variable"
    return found


def procfile_block() -> dict[str, str]:
    """§3's bare block: the Procfile as the document shows it."""
    return parse_procfile(blocks(3, "")[0])


def procfile_file() -> dict[str, str]:
    return parse_procfile(PROCFILE.read_text(encoding="utf-8"))


def parse_procfile(text: str) -> dict[str, str]:
    entries: dict[str, str] = {}
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, command = line.partition(":")
            entries[name.strip()] = command.strip()
    return entries


def nginx_server(upstream: str, listen: str, access_log: str | None = None,
                 certificate: tuple[str, str] | None = None) -> str:
    """§4's nginx block with the upstream servers, the ``listen`` line and (given)
    the access log's file replaced; the TLS certificate's two lines replaced by
    ``certificate`` (its files), or removed without it (``listen`` without TLS).

    Each replacement must match exactly once, so the document cannot drift away
    from what is tested.
    """
    text = blocks(4, "nginx")[0]
    for i, directive in enumerate(("ssl_certificate", "ssl_certificate_key")):
        line = rf"\g<1>{directive} {certificate[i]};" if certificate else ""
        text, n = re.subn(rf"^(\s*){directive} \S+;\n", line + ("\n" if line else ""),
                          text, flags=re.MULTILINE)
        assert n == 1, f"docs/deploy.md §4: expected one `{directive} <file>;` line"
    if access_log is not None:
        text, n = re.subn(r"^(\s*access_log )\S+( meiqia_noquery;)$", rf"\g<1>{access_log}\2",
                          text, flags=re.MULTILINE)
        assert n == 1, "docs/deploy.md §4: expected one `access_log <file> meiqia_noquery;`"
    text, n = re.subn(r"^(upstream \w+ \{).*?(\})", rf"\1 server {upstream}; \2", text,
                      flags=re.MULTILINE)
    assert n == 1, "docs/deploy.md §4: expected one `upstream … { … }` line"
    if certificate is None:
        text, n = re.subn(r"^(\s*)listen 443 ssl http2;", rf"\1listen {listen};", text,
                          flags=re.MULTILINE)
    else:
        text, n = re.subn(r"^(\s*)listen 443 ssl", rf"\1listen {listen} ssl", text,
                          flags=re.MULTILINE)
    assert n == 1, "docs/deploy.md §4: expected one `listen 443 ssl http2;` line"
    return text


class Process:
    """A started command with its output in ``<log_dir>/<name>.log``.

    It runs in a session of its own, so ``stop`` can also remove the children
    (gunicorn's and nginx's workers) if the master does not take them down.
    """

    def __init__(self, name: str, args: list[str], env: dict[str, str], cwd: Path,
                 log_dir: Path) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self.log: IO[str] = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(args, env=env, cwd=cwd, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def output(self) -> str:
        self.log.flush()
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def check_alive(self) -> None:
        if not self.alive():
            raise AssertionError(f"{self.name} exited with {self.proc.returncode}:\n"
                                 f"{self.output()}")

    def stop(self, timeout: float = 60) -> None:
        """SIGTERM (gunicorn: graceful stop of its workers; nginx, rq: shut down), then
        SIGKILL to the whole session if it does not end within ``timeout``."""
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        try:  # the master is gone (or stuck): nothing of its session may stay
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.wait(timeout=10)
        self.log.close()
