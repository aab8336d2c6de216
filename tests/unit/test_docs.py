"""docs/plugins.md documents every hook under its exact signature (Datasette's rule),
with the hookspec's own docstring as its text, so the two cannot drift apart."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from meiqia import hookspecs

DOC = Path(__file__).resolve().parents[2] / "docs" / "plugins.md"


def specs() -> dict[str, object]:
    return {name: fn for name, fn in vars(hookspecs).items()
            if callable(fn) and hasattr(fn, "meiqia_spec")}


def signature(name: str, fn: object) -> str:
    return f"{name}({', '.join(inspect.signature(fn).parameters)})"


def documented_sections() -> dict[str, tuple[str, str]]:
    """Hook name -> (heading signature, the text under the heading)."""
    text = DOC.read_text(encoding="utf-8")
    found = {}
    for match in re.finditer(r"^#+ `([a-z_]+)(\([^`\n]*\))`\n(.*?)(?=^#|\Z)", text, re.S | re.M):
        found[match.group(1)] = (match.group(1) + match.group(2), match.group(3))
    return found


def words(text: str) -> str:
    """Markdown and reStructuredText spellings of code compare equal; so does wrapping."""
    return " ".join(text.replace("``", "`").split())


def test_every_hook_is_documented_under_its_exact_signature():
    documented = documented_sections()
    assert specs(), "no hookspecs found"
    assert set(documented) == set(specs())
    for name, fn in specs().items():
        assert documented[name][0] == signature(name, fn)


def test_the_docs_carry_each_hookspec_docstring_word_for_word():
    documented = documented_sections()
    for name, fn in specs().items():
        doc = inspect.getdoc(fn) or ""
        assert words(documented[name][1]).startswith(words(doc)), (
            f"docs/plugins.md under `{signature(name, fn)}` differs from the hookspec's "
            f"docstring; paste it:\n\n{doc.replace('``', '`')}")


def test_every_hookspec_says_when_it_is_called_and_what_it_returns():
    for name, fn in specs().items():
        doc = inspect.getdoc(fn) or ""
        assert doc.startswith("Called "), f"{name}: say when it is called, first"
        assert re.search(r"\b[Rr]eturns?\b", doc), f"{name}: say what it returns"


def test_firstresult_hooks_say_so_and_only_they():
    for name, fn in specs().items():
        firstresult = fn.meiqia_spec.get("firstresult", False)
        says = "first non-None result" in (inspect.getdoc(fn) or "")
        assert says == firstresult, f"{name}: firstresult={firstresult}, docstring disagrees"
