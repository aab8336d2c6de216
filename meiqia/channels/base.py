"""What a channel plugin sees of meiqia: the base class and the data objects.

These are the public, stable types of the channel API (docs/plugins.md,
"Writing a channel"): plain dataclasses, never ORM rows, so a channel cannot
reach the database behind the runtime's back and the runtime can change its
tables without breaking channels.
"""

from __future__ import annotations

import datetime
import logging
from dataclasses import dataclass
from dataclasses import field
from typing import TYPE_CHECKING
from typing import Any

if TYPE_CHECKING:  # pragma: no cover
    from meiqia.channels.host import ChannelHost

#: Features a channel may carry; those it does not list are hidden for its
#: conversations (the workspace's typing preview, read ticks, rating invitations).
CAPABILITIES = frozenset({"typing_preview", "read_receipts", "rating", "attachments"})


#: The languages a channel may word its texts in (its ``name``, a reason).
LANGUAGES = ("zh-CN", "en")


def in_language(text: Any, lang: str) -> str:
    """A channel's text for a reader of ``lang``: a string as it is, or the entry of
    ``{"zh-CN": ..., "en": ...}`` for ``lang`` (else the other one). The admin who
    tests a connection reads one language, not "无法解析微信接口地址 · the API
    address is refused: …" (an outside security tester)."""
    if isinstance(text, dict):
        found = text.get(lang) or next((text[k] for k in LANGUAGES if text.get(k)), "")
        return str(found or next(iter(text.values()), ""))
    return str(text)


def both_languages(text: Any) -> str:
    """One string for every reader (a delivery's stored reason, the server's log):
    ``中文 · English`` of a ``{"zh-CN", "en"}`` text, a string as it is."""
    if isinstance(text, dict):
        parts = [str(text[k]) for k in LANGUAGES if text.get(k)]
        return " · ".join(dict.fromkeys(parts)) or in_language(text, "en")
    return str(text)


class DeliveryError(Exception):
    """``deliver`` or ``test_connection`` failed; ``reason`` is shown to people.

    ``reason`` is a string, or ``{"zh-CN": ..., "en": ...}``: then ``reason`` is
    both (``中文 · English``: a delivery's reason agents of either language read),
    and the admin who tested the connection reads his own (``in_language``).

    ``retry=False`` says trying again will not help (an address refused, the
    reply window closed): the delivery is marked failed at once, and agents may
    still retry it by hand.
    """

    def __init__(self, reason: str | dict[str, str], retry: bool = True) -> None:
        self.reasons = dict(reason) if isinstance(reason, dict) else None
        self.reason = both_languages(reason)
        super().__init__(self.reason)
        self.retry = bool(retry)

    def in_language(self, lang: str) -> str:
        """The reason for a reader of ``lang``."""
        return in_language(self.reasons, lang) if self.reasons else self.reason


@dataclass
class Attachment:
    """A file: inbound (``data`` set) or outbound (``data`` and ``url`` set)."""

    filename: str
    content_type: str
    data: bytes = b""
    url: str | None = None


@dataclass
class ChannelConversation:
    """A conversation as a channel sees it."""

    id: int
    team_id: int
    channel: str
    visitor_external_id: str
    visitor_name: str
    status: str
    subject: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    last_inbound_at: datetime.datetime | None = None
    #: The customer's language (from his first words), else the team's: zh-CN or en.
    language: str = "zh-CN"


@dataclass
class ChannelMessage:
    """One message the visitor should see, as ``deliver`` gets it."""

    id: int
    conversation_id: int
    #: agent, bot or system
    kind: str
    body: str
    sender_name: str
    created_at: datetime.datetime
    attachments: list[Attachment] = field(default_factory=list)
    #: The external id of the visitor's latest inbound message (for threading).
    in_reply_to_external_id: str | None = None
    #: Every external id of the conversation, oldest first.
    references: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ReceiveResult:
    """What ``receive`` did: the conversation, the stored message (None for an
    event that stored nothing) and whether the external id was seen before."""

    conversation_id: int
    message_id: int | None
    duplicate: bool


class Channel:
    """Base class of channels (subclassing is optional: the runtime reads the
    same attributes from any class).

    ``type`` is the channel's unique slug, ``name`` what admins read (a string
    or ``{"zh-CN": ..., "en": ...}``), ``capabilities`` a subset of
    ``CAPABILITIES``.
    """

    type: str = ""
    name: str | dict[str, str] = ""
    capabilities: frozenset[str] = frozenset()

    @staticmethod
    def configuration_schema() -> dict[str, Any]:
        """JSON Schema of the team's configuration; ``"secret"`` lists write-only fields."""
        return {"type": "object", "properties": {}, "secret": []}

    def __init__(self, config: dict[str, Any], host: ChannelHost) -> None:
        self.config = config
        self.host = host

    @property
    def log(self) -> logging.Logger:
        return self.host.log

    def deliver(self, conversation: ChannelConversation, message: ChannelMessage) -> str | None:
        """Send one message; return the far side's id for it, or None.

        Raise ``DeliveryError(reason, retry=...)`` on failure.
        """
        raise DeliveryError(f"the {self.type} channel cannot send messages", retry=False)

    def test_connection(self) -> str:
        """Check the configuration against the far side; a short success text."""
        return "ok"

    def start(self) -> None:
        """Start background work (a poller); called on start-up and config change."""

    def stop(self) -> None:
        """Stop what ``start`` started."""
