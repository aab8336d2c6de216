"""Our tests' own third-party channel: a plugin module that uses only the public
channel API (``meiqia.channels``), like any channel package would.

What it "sends" goes to an outbox on the app (``outbox(app)``), never to a
module global: tests run many apps per process. ``fail(app, n, retry=True)``
makes the next ``n`` deliveries raise ``DeliveryError``; ``chaos(app, ...)``
makes every delivery take a random time and fail (retryably) at random.
"""

from __future__ import annotations

import random
import threading
import time
from typing import Any

from meiqia.channels import Channel
from meiqia.channels import ChannelConversation
from meiqia.channels import ChannelMessage
from meiqia.channels import DeliveryError
from meiqia.hookspecs import hookimpl


def _box(app: Any) -> dict[str, Any]:
    return app.extensions.setdefault("standin", {"outbox": [], "fail": [], "lock":
                                                 threading.Lock(), "started": 0,
                                                 "stopped": 0})


def outbox(app: Any) -> list[tuple[ChannelConversation, ChannelMessage]]:
    return _box(app)["outbox"]


def fail(app: Any, times: int, retry: bool = True,
         reason: str | dict[str, str] = "far side down") -> None:
    _box(app)["fail"].extend([(retry, reason)] * times)


def chaos(app: Any, seed: int, most_seconds: float, fail_share: float) -> None:
    """Every delivery from now on takes up to ``most_seconds`` and fails with
    ``DeliveryError`` (retryable) ``fail_share`` of the time."""
    _box(app)["chaos"] = (random.Random(seed), most_seconds, fail_share)


class StandIn(Channel):
    type = "standin"
    name = {"zh-CN": "测试渠道", "en": "Stand-in"}
    capabilities = frozenset({"attachments"})

    @staticmethod
    def configuration_schema() -> dict[str, Any]:
        return {
            "type": "object",
            "required": ["endpoint", "api_key"],
            "properties": {
                "endpoint": {"type": "string", "title": "Endpoint", "format": "uri",
                             "maxLength": 200},
                "api_key": {"type": "string", "title": "API key", "minLength": 4},
                "mode": {"type": "string", "enum": ["fast", "slow"], "default": "fast"},
            },
            "secret": ["api_key"],
        }

    def deliver(self, conversation: ChannelConversation, message: ChannelMessage) -> str:
        box = _box(self.host.app)
        with box["lock"]:
            failure = box["fail"].pop(0) if box["fail"] else None
            chaos = box.get("chaos")
            if chaos is not None:
                dice, most, share = chaos
                pause, fails = dice.uniform(0, most), dice.random() < share
        if failure is not None:
            raise DeliveryError(failure[1], retry=failure[0])
        if chaos is not None:
            time.sleep(pause)
            if fails:
                raise DeliveryError("the far side timed out")
        box["outbox"].append((conversation, message))
        return f"out-{message.id}@standin"

    def test_connection(self) -> str:
        if self.config.get("endpoint", "").endswith("/down"):
            raise DeliveryError("the endpoint answered 503")
        return "connected to " + self.config["endpoint"]

    def start(self) -> None:
        _box(self.host.app)["started"] += 1

    def stop(self) -> None:
        _box(self.host.app)["stopped"] += 1


@hookimpl
def register_channels(app: Any) -> list[type]:
    return [StandIn]
