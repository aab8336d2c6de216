"""docs/plugins.md ("What a plugin receives") names every field of every view a
plugin receives, so the documented surface and the code cannot drift apart."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from meiqia import plugin_api

DOC = Path(__file__).resolve().parents[2] / "docs" / "plugins.md"


def section() -> str:
    text = DOC.read_text(encoding="utf-8")
    return re.search(r"^## What a plugin receives\n(.*?)^## ", text, re.S | re.M).group(1)


@pytest.mark.parametrize("cls", plugin_api.PLUGIN_TYPES, ids=lambda c: c.__name__)
def test_every_field_of_every_view_is_documented(cls):
    text = section()
    assert f"**`{cls.__name__}`**" in text
    for name in [*plugin_api.field_names(cls), *(
            n for n in ("visitor", "display_name", "is_admin") if hasattr(cls, n))]:
        assert f"`{name}`" in text, f"{cls.__name__}.{name} is not in docs/plugins.md"


def test_the_views_are_read_only():
    import dataclasses

    visitor = plugin_api.PluginVisitor(id=1, team_id=1, attributes={"vip": True})
    with pytest.raises(dataclasses.FrozenInstanceError):
        visitor.name = "x"
    message = plugin_api.PluginMessage.from_draft(
        {"sender_kind": "visitor", "kind": "text", "body": "hi", "payload": {"a": 1},
         "visibility": "public"}, conversation_id=3)
    with pytest.raises(TypeError):
        message.payload["a"] = 2
    assert dict(message) == {"sender_kind": "visitor", "kind": "text", "body": "hi",
                             "payload": message.payload, "visibility": "public"}
    assert message.get("body") == "hi" and message.get("id") is None
