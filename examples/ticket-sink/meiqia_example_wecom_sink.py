"""A ticket sink: every new ticket, status change and public reply is posted to
a WeCom (企业微信) group robot, so the after-sales group sees it at once.

The robot's webhook takes ``{"msgtype": "text", "text": {"content": "…"}}``
(developer.work.weixin.qq.com, "群机器人配置说明"). Every request goes through
``meiqia.services.outbound``, the server's SSRF gate: a plugin opens no socket of
its own. A delivery that raises is retried with backoff and shown to admins
(docs/plugins.md, "Ticket sinks").
"""

from __future__ import annotations

import json
from typing import Any

from meiqia.hookspecs import hookimpl
from meiqia.services import outbound

__version__ = "1.0.0"


class WeComRobotSink:
    type = "wecom_robot"
    # One name per language: an admin reads his own (docs/plugins.md, "Tickets").
    name = {"zh-CN": "企业微信群机器人", "en": "WeCom group robot"}

    @staticmethod
    def configuration_schema() -> dict:
        return {
            "type": "object",
            "required": ["url"],
            "properties": {
                "url": {"type": "string", "title": "Webhook URL", "pattern": "^https?://"},
            },
            # The URL's key is the robot's password: never shown again after saving.
            "secret": ["url"],
        }

    @staticmethod
    def validate_config(config: dict) -> None:
        outbound.check_url(config["url"])  # refused at once, not at the first ticket

    def _post(self, config: dict, text: str) -> None:
        body = json.dumps({"msgtype": "text", "text": {"content": text}},
                          ensure_ascii=False).encode()
        status, _headers, answer = outbound.http_request(
            "POST", config["url"], body, {"Content-Type": "application/json"})
        if status != 200:
            raise RuntimeError(f"the robot answered HTTP {status}")
        errcode = json.loads(answer or b"{}").get("errcode", 0)
        if errcode:  # WeCom says 200 with an error code when the key is wrong
            raise RuntimeError(f"the robot refused the message (errcode {errcode})")

    def create_ticket(self, ticket: dict, config: dict) -> None:
        t = ticket["ticket"]  # the public side only: no internal notes
        contact = t["contact"]
        self._post(config, f"新工单 #{t['id']}（{t['priority']}）：{t['subject']}\n"
                           f"联系人：{contact['name']} {contact['phone']}".rstrip())

    def update_ticket(self, ticket: dict, config: dict, changes: dict) -> None:
        t = ticket["ticket"]
        lines = [f"回复：{new}" if field == "reply" else f"{field}: {old} → {new}"
                 for field, (old, new) in changes.items()]
        self._post(config, f"工单 #{t['id']} 更新\n" + "\n".join(lines))


@hookimpl
def register_ticket_sinks(app: Any) -> list[type]:
    return [WeComRobotSink]
