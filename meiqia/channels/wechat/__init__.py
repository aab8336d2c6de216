"""The WeChat Official Account (公众号) channel, built on the public channel API only.

``channel.py`` (the ``Channel`` class: configuration, ``deliver``), ``views.py``
(the server URL), ``signing.py`` (signatures, AES, replays), ``api.py`` (token,
customer-service messages, media), ``xml.py`` (defused parsing). Registered by
the built-in plugin ``meiqia/plugins/wechat_channel.py``; setup for a team is in
docs/channels-wechat.md.
"""

from typing import Any

__all__ = ["WeChatChannel"]


def __getattr__(name: str) -> Any:
    # Lazy, so the transport modules (signing, xml, api) import without the runtime.
    if name == "WeChatChannel":
        from meiqia.channels.wechat.channel import WeChatChannel

        return WeChatChannel
    raise AttributeError(name)
