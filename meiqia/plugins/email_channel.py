"""Built-in channel: e-mail (a support mailbox over IMAP and SMTP).

The channel lives in ``meiqia/channels/email/`` and is written against nothing
but the public channel API; this module only makes it a built-in plugin (every
module of this package is one), so ``DISABLED_PLUGINS = ["email_channel"]``
turns it off for the whole instance. Setup: docs/channels-email.md.
"""

from meiqia.channels.email import register_channels

__all__ = ["register_channels"]
