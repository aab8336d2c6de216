"""Built-in channel: WeChat Official Account (``meiqia/channels/wechat/``).

Registered like a third-party channel would be: ``register_channels`` for the
class, ``register_blueprints`` for its server URL ``/channels/wechat/<team id>/``.
"""

from __future__ import annotations

from typing import Any

from meiqia.hookspecs import hookimpl


@hookimpl
def register_channels(app: Any) -> list[type]:
    from meiqia.channels.wechat import WeChatChannel

    return [WeChatChannel]


@hookimpl
def register_blueprints(app: Any) -> list[Any]:
    from meiqia.channels.wechat.views import bp

    return [bp]
