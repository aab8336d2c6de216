"""Every widget string a script names exists in zh-CN and English, so a visitor never
sees a bare key (the widget's T() shows the key itself when a string is missing)."""

from __future__ import annotations

import re

from meiqia.models.tickets import STATUSES
from meiqia.web import workspace

SCRIPTS = ("widget-frame.js", "widget-tickets.js")


def test_every_widget_key_a_script_names_is_translated():
    catalogue = workspace.load_strings()
    used: set[str] = set()
    for name in SCRIPTS:
        text = (workspace.WEB_DIR / "static" / "js" / name).read_text(encoding="utf-8")
        used |= set(re.findall(r"'(widget\.[a-z0-9_.]+)'", text))
    assert {"widget.err.phone_invalid", "widget.tickets.open", "widget.leave_after_end"} <= used
    for lang in ("zh-CN", "en"):
        missing = sorted(used - set(catalogue[lang]))
        assert not missing, f"no {lang} text for {missing}"


def test_every_ticket_status_has_a_name_for_the_visitor():
    catalogue = workspace.load_strings()
    for lang in ("zh-CN", "en"):
        for status in STATUSES:
            assert f"widget.tickets.status.{status}" in catalogue[lang], (lang, status)
