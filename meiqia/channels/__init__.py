"""The public channel API (issue 16; docs/plugins.md, "Writing a channel").

A channel plugin returns channel classes from ``register_channels(app)``; the
runtime builds one instance per team that enabled it, with the team's
configuration and a ``ChannelHost``. Inbound, the channel calls ``receive``;
outbound, the runtime calls its ``deliver`` from a job for every message the
visitor should see. Everything a channel needs is importable from here.
"""

from meiqia.channels.base import CAPABILITIES
from meiqia.channels.base import Attachment
from meiqia.channels.base import Channel
from meiqia.channels.base import ChannelConversation
from meiqia.channels.base import ChannelMessage
from meiqia.channels.base import DeliveryError
from meiqia.channels.base import ReceiveResult
from meiqia.channels.host import ChannelHost
from meiqia.channels.host import GatedHTTP
from meiqia.channels.inbound import conversation_of
from meiqia.channels.inbound import receive
from meiqia.channels.inbound import receive_for
from meiqia.channels.registry import host_for
from meiqia.channels.state import StateStore

#: The capabilities a channel may declare (``Channel.capabilities``).
Capabilities = CAPABILITIES

__all__ = [
    "CAPABILITIES", "Attachment", "Capabilities", "Channel", "ChannelConversation",
    "ChannelHost", "ChannelMessage", "DeliveryError", "GatedHTTP", "ReceiveResult",
    "StateStore", "conversation_of", "host_for", "receive", "receive_for",
]
