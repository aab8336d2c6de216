"""Built-in channel: the web widget (``/widget.js``, ``/ws/visitor``).

The widget is a channel like any other: its inbound side is the widget API
(``/api/v1/widget/*``) and the visitor websocket; delivery is the hub publish
that visitor sockets hear, so ``deliver`` reports whether the visitor has a
socket open (the message is stored either way and replayed on reconnect).
"""

from __future__ import annotations

from typing import Any

from meiqia.hookspecs import hookimpl


class WebWidgetChannel:
    type = "web"
    name = "Web widget"
    #: The widget reports reads (the visitor's "read" frames).
    reports_reads = True

    @staticmethod
    def configuration_schema() -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {
                "color": {"type": "string", "title": "Button colour"},
                "position": {"type": "string", "enum": ["left", "right"]},
            },
            "secret": [],
        }

    def deliver(self, conversation: Any, message: Any) -> bool:
        from meiqia.models import Visitor
        from meiqia.models.base import utcnow

        visitor = Visitor.get_by_id(conversation.visitor_id)
        return bool(visitor.online_until and visitor.online_until > utcnow())


@hookimpl
def register_channels(app: Any) -> list[type]:
    return [WebWidgetChannel]
