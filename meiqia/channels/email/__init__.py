"""Built-in e-mail channel (type ``email``): a support mailbox over IMAP/SMTP.

Registered like any third-party channel, through ``register_channels``, and
written against nothing but the public channel API (``meiqia.channels``).
Setup for a team: docs/channels-email.md.
"""

from __future__ import annotations

from typing import Any

from meiqia.hookspecs import hookimpl


@hookimpl
def register_channels(app: Any) -> list[type]:
    from meiqia.channels.email.channel import EmailChannel

    return [EmailChannel]
