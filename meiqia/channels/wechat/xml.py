"""Untrusted XML from the WeChat server URL, parsed safely.

wechatpy parses with ``xmltodict`` (expat). Expat expands internal entities, so a
"billion laughs" body would eat the process's memory, and a DTD may name
external entities. Every body (and every decrypted inner message) therefore
goes through ``defusedxml`` first, with DTDs, entities and external references
forbidden, and is refused (``BadXML``: a 400) before wechatpy sees it. WeChat
never sends a DTD, so nothing legitimate is lost.
"""

from __future__ import annotations

from typing import Any

from defusedxml import DefusedXmlException
from defusedxml import ElementTree as SafeET

#: A callback body larger than this is refused unread (WeChat's are a few KB).
MAX_BODY = 256 * 1024


class BadXML(ValueError):
    """The body is not a WeChat XML document we accept."""


def parse(data: bytes | str) -> dict[str, str]:
    """The children of the ``<xml>`` root as ``{tag: text}``, parsed safely.

    Raises ``BadXML`` for a DTD, an entity, malformed XML, another root or a
    body over ``MAX_BODY``.
    """
    raw = data.encode("utf-8") if isinstance(data, str) else bytes(data or b"")
    if not raw.strip():
        raise BadXML("empty body")
    if len(raw) > MAX_BODY:
        raise BadXML(f"body over {MAX_BODY} bytes")
    try:
        root = SafeET.fromstring(raw, forbid_dtd=True, forbid_entities=True,
                                 forbid_external=True)
    except DefusedXmlException as exc:
        raise BadXML(f"refused: {type(exc).__name__} (no DTD or entities)") from None
    except SafeET.ParseError as exc:
        raise BadXML(f"not XML: {exc}") from None
    except (ValueError, LookupError) as exc:  # "multi-byte encodings are not supported"
        raise BadXML(f"not XML WeChat sends (UTF-8): {exc}") from None
    if root.tag != "xml":
        raise BadXML("the root element must be <xml>")
    fields: dict[str, str] = {}
    for child in root:
        if isinstance(child.tag, str):
            fields[child.tag] = (child.text or "").strip() if len(child) == 0 else ""
    return fields


def message(data: bytes | str) -> Any:
    """A wechatpy message or event object (``wechatpy.parse_message``) of a body
    that passed the safe parse."""
    from wechatpy import parse_message

    fields = parse(data)
    for required in ("MsgType", "FromUserName"):
        if not fields.get(required):
            raise BadXML(f"{required} missing")
    try:
        parsed = parse_message(data.decode("utf-8") if isinstance(data, bytes) else data)
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise BadXML(f"not a WeChat message: {type(exc).__name__}") from None
    if parsed is None:
        raise BadXML("empty message")
    return parsed
