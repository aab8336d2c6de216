"""A plugin module for browser tests: a channel that cannot report reads (loaded
with ``PLUGINS=["tests.browser.sms_channel"]``)."""

from __future__ import annotations

from typing import Any

from meiqia.hookspecs import hookimpl


class Sms:
    type = "sms"
    name = "SMS"
    reports_reads = False

    @staticmethod
    def configuration_schema() -> dict:
        return {"type": "object", "properties": {}}

    def deliver(self, conversation: Any, message: Any) -> bool:
        return True


@hookimpl
def register_channels(app: Any) -> list:
    return [Sms]
