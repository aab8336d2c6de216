"""Issue 17, item 6: the agent pages ask in their own dialog (``lib.js confirmDialog``),
never with the browser's ``confirm()``/``alert()``/``prompt()``, which cannot be styled,
translated in their buttons, or tested without special handling."""

from __future__ import annotations

import re
from pathlib import Path

WEB = Path(__file__).resolve().parents[2] / "meiqia" / "web"
NATIVE = re.compile(r"(?<![\w.])(?:window\.)?(confirm|alert|prompt)\s*\(")


def test_no_page_script_or_template_opens_a_native_dialog():
    found = []
    for path in [*WEB.glob("static/**/*.js"), *WEB.glob("templates/**/*.html")]:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("//", 1)[0]
            if NATIVE.search(code):
                found.append(f"{path.relative_to(WEB)}:{number}: {line.strip()}")
    assert not found, "\n".join(found)
