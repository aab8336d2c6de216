"""docs/plugins.md documents every hook under its exact signature (Datasette's rule)."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from meiqia import hookspecs

DOC = Path(__file__).resolve().parents[2] / "docs" / "plugins.md"


def spec_signatures() -> dict[str, str]:
    result = {}
    for name, fn in vars(hookspecs).items():
        if callable(fn) and hasattr(fn, "meiqia_spec"):
            params = ", ".join(inspect.signature(fn).parameters)
            result[name] = f"{name}({params})"
    return result


def test_every_hook_is_documented_under_its_exact_signature():
    headings = re.findall(r"^#+ `([a-z_]+\(.*\))`$", DOC.read_text(encoding="utf-8"), re.M)
    documented = {h.split("(")[0]: h for h in headings}
    specs = spec_signatures()
    assert specs, "no hookspecs found"
    assert set(documented) == set(specs)
    for name, signature in specs.items():
        assert documented[name] == signature


def test_every_hookspec_has_a_docstring_saying_when_and_what():
    for name in spec_signatures():
        doc = inspect.getdoc(getattr(hookspecs, name)) or ""
        assert "Called" in doc or "called" in doc, name
        assert "eturn" in doc, name
