"""Every UI string the history pages' scripts ask for exists (in both languages, which
``test_ui_strings`` checks), including the keys they build from the API's names."""

from __future__ import annotations

import re

from meiqia.services import history
from meiqia.web import i18n
from meiqia.web import workspace

SCRIPTS = ("history.js", "history-common.js", "history-exports.js")
FILTERS_RE = re.compile(r"export const FILTERS = \[(.*?)\];", re.S)


def known() -> set[str]:
    return set(workspace.load_strings()["en"]) | set(i18n.CATALOG["en"])


def test_literal_keys_of_the_scripts_exist():
    used: set[str] = set()
    for name in SCRIPTS:
        text = (workspace.WEB_DIR / "static" / "js" / name).read_text(encoding="utf-8")
        used |= set(re.findall(r"\bt\('([a-z0-9_.]+)'", text))
    assert used
    assert not sorted(used - known()), f"unknown keys: {sorted(used - known())}"


def test_every_column_and_filter_has_a_label():
    common = (workspace.WEB_DIR / "static" / "js" / "history-common.js").read_text("utf-8")
    filters = re.findall(r"'([a-z_]+)'", FILTERS_RE.search(common).group(1))
    from meiqia.web.api.history import FILTER_NAMES

    assert sorted(filters) == sorted(FILTER_NAMES)  # the form offers every API filter
    keys = {f"history.col.{c}" for c in history.COLUMNS} | {f"history.f.{f}" for f in filters}
    keys |= {f"export.status.{s}" for s in ("queued", "running", "done", "failed")}
    keys |= {f"history.rating.{r}" for r in ("good", "neutral", "bad", "none")}
    assert not sorted(keys - known()), f"no label for {sorted(keys - known())}"
