"""Every UI string exists in both languages, and every key a template uses exists."""

from __future__ import annotations

import re

from meiqia.web import i18n
from meiqia.web import workspace


def test_each_key_is_translated_in_both_languages():
    catalogue = workspace.load_strings()
    assert set(catalogue) == {"zh-CN", "en"}
    missing_zh = sorted(set(catalogue["en"]) - set(catalogue["zh-CN"]))
    missing_en = sorted(set(catalogue["zh-CN"]) - set(catalogue["en"]))
    assert not missing_zh, f"no zh-CN text for {missing_zh}"
    assert not missing_en, f"no English text for {missing_en}"
    empty = [k for lang in catalogue.values() for k, v in lang.items() if not v.strip()]
    assert not empty, f"empty strings: {empty}"


def test_templates_use_only_known_keys():
    known = set(workspace.load_strings()["en"]) | set(i18n.CATALOG["en"])
    used: set[str] = set()
    for path in (workspace.WEB_DIR / "templates").rglob("*.html"):
        used |= set(re.findall(r"\bt\('([a-z0-9_.]+)'\)", path.read_text(encoding="utf-8")))
    assert used, "the templates use t('…')"
    assert not sorted(used - known), f"unknown keys: {sorted(used - known)}"


def test_contact_fields_are_named_in_errors_as_the_forms_label_them():
    """The agent's new-ticket form and the customer card labelled the phone 手机 while
    the server's error for it said 电话：… (a Chinese support lead): a form's label and
    the error's name of its field are one word."""
    from meiqia.web import error_text

    zh = workspace.load_strings()["zh-CN"]
    for field in ("name", "phone", "email"):
        for subject in ("tickets", "visitors"):  # POST /tickets, PATCH /visitors/<id>
            assert zh[f"card.{field}"] == error_text.field_label(field, subject), (field, subject)
    # The widget's form words its own errors; its phone is the same field.
    assert zh["widget.leave.phone"] == zh["card.phone"]
