"""docs/protocol.md documents every frame type the server code sends, each with a
whole example envelope, and every client frame type the sockets accept.

The types are found by reading the code, so a new ``emit`` or ``channel.send``
that nobody documented fails here.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")
CODE = {path: path.read_text(encoding="utf-8") for path in (ROOT / "meiqia").rglob("*.py")}

#: ``events.emit("name", team, [topics...], ...)``: reaches sockets when topics are given.
EMIT = re.compile(r'\bemit\(\s*"([\w.]+)"\s*,\s*[^,]+,\s*(\[[^\]]*\]|\(\))', re.S)
#: ``channel.send("name", ...)``, and the delivery stream's ``self._send("ack", ...)``.
SEND = re.compile(r'\b(?:channel|self)\._?send\(\s*"([\w.]+)"')


def server_types() -> set[str]:
    found: set[str] = set()
    for path, text in CODE.items():
        for name, topics in EMIT.findall(text):
            if topics not in ("[]", "()"):
                found.add(name)
        if "ticket." in text:  # events.emit("ticket." + kind, ...) from _changed(…, "kind")
            if re.search(r'emit\(\s*"ticket\."\s*\+\s*kind', text):
                found |= {f"ticket.{k}" for k in re.findall(r'_changed\(\w+, "(\w+)"', text)}
        if path.name in {"ws.py", "delivery.py"}:
            found |= set(SEND.findall(text))
            if "channel.error(" in text:
                found.add("error")
    return found


def client_types() -> set[str]:
    """The handler tables of the two sockets, plus ``ping`` (answered by ``_run_frame``)."""
    ws = CODE[ROOT / "meiqia" / "web" / "ws.py"]
    tables = re.findall(r"_run_frame\(channel, frame, \{(.*?)\}(?:, \w+)?\)", ws, re.S)
    assert len(tables) == 2, "expected the visitor's and the agent's handler tables"
    return {name for table in tables for name in re.findall(r'^\s*"(\w+)":', table, re.M)} \
        | {"ping"}


def test_the_scan_finds_the_frame_types():
    found = server_types()
    assert {"hello", "ack", "message", "conversation", "error", "pong", "ticket.created",
            "ticket.updated", "mention", "suggestions"} <= found
    assert "conversation.ended" not in found  # emitted to no topic: tracking only
    assert {"message", "typing", "read", "human", "replay", "ping"} == client_types()


def test_every_server_frame_type_has_a_whole_example_envelope():
    missing = sorted(name for name in server_types()
                     if not re.search(r'\{"type": "' + re.escape(name)
                                      + r'", "id": [^,]+, "ts": "[^"]+",\s*"data": \{', DOC))
    assert not missing, f"docs/protocol.md has no whole envelope for {missing}"


def test_every_client_frame_type_has_an_example():
    missing = sorted(name for name in client_types()
                     if f'{{"type": "{name}", "data": {{' not in DOC)
    assert not missing, f"docs/protocol.md has no client example for {missing}"


def test_the_conversation_variants_are_shown():
    for field in ('"offer_ticket":', '"outcome":', '"queue_position": 1'):
        assert re.search(r'\{"type": "conversation", "id": null[^`]*?' + re.escape(field),
                         DOC, re.S), field
