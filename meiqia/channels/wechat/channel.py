"""``WeChatChannel``: a WeChat Official Account (公众号) as a meiqia channel.

Inbound, WeChat POSTs each user message and event to the team's server URL
(``views.py``), which checks it (``signing.py``), answers ``success`` and hands it
to ``meiqia.channels.receive``. Outbound, ``deliver`` sends every message the
user should see through the customer-service message API (``api.py``): WeChat
takes those only within 48 hours of the user's last message, so a delivery
after that fails at once (no retry) with a reason agents can read.
"""

from __future__ import annotations

import datetime
from typing import Any

from meiqia.channels import Channel
from meiqia.channels import DeliveryError
from meiqia.channels.wechat import api as wechat_api
from meiqia.channels.wechat.split import split_text

SLUG = "wechat"
#: WeChat's customer-service window after the user's last message.
REPLY_WINDOW = datetime.timedelta(hours=48)
WINDOW_REASON = ("超过48小时回复时限 (the 48-hour reply window has passed): WeChat accepts "
                 "replies only within 48 hours of the user's last message; the next "
                 "message from the user opens it again")
UNSUBSCRIBED_REASON = ("用户已取消关注 (the user has unsubscribed from the Official "
                       "Account): WeChat delivers nothing to them until they follow again")
FILE_REASON = ("微信客服消息不能发送文件 (WeChat customer-service messages carry no files "
               "other than images): {name} was not sent; send an image or the text instead")
#: host.state key marking an OpenID that unsubscribed (value: the time, epoch s).
UNSUBSCRIBED_KEY = "unsubscribed:{openid}"


def _naive_utc(value: datetime.datetime) -> datetime.datetime:
    if value.tzinfo is not None:
        value = value.astimezone(datetime.UTC).replace(tzinfo=None)
    return value


def window_closed(last_inbound_at: datetime.datetime | None,
                  now: datetime.datetime | None = None) -> bool:
    """Whether the 48-hour window after ``last_inbound_at`` (UTC) has passed."""
    if last_inbound_at is None:
        return False  # nothing known: let WeChat decide (errcode 45015)
    now = now or datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
    return _naive_utc(now) - _naive_utc(last_inbound_at) > REPLY_WINDOW


class WeChatChannel(Channel):
    """The 公众号 channel: text and images in, text out (see the module docstring)."""

    type = SLUG
    name = {"zh-CN": "微信公众号", "en": "WeChat Official Account"}
    #: No typing preview, read receipts or rating invitations reach a WeChat user.
    #: Agents may send images (uploaded as temporary media); WeChat's
    #: customer-service messages carry no other files.
    capabilities: frozenset[str] = frozenset({"attachments"})
    #: The server URL to enter in the WeChat console (服务器地址), shown on the
    #: Channels page with this server's address (``services.channels.describe``).
    callback_path = "/channels/wechat/{team_id}/"

    @staticmethod
    def configuration_schema() -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {
                "app_id": {"type": "string", "minLength": 1, "maxLength": 64,
                           "pattern": "^[A-Za-z0-9_-]+$",
                           "title": {"zh-CN": "开发者ID（AppID）", "en": "Developer ID (AppID)"}},
                "app_secret": {"type": "string", "minLength": 1, "maxLength": 128,
                               "title": {"zh-CN": "开发者密码（AppSecret）",
                                         "en": "Developer password (AppSecret)"}},
                "token": {"type": "string", "pattern": "^[A-Za-z0-9]{3,32}$",
                          "title": {"zh-CN": "令牌（Token）", "en": "Token"}},
                "encoding_aes_key": {"type": "string", "pattern": "^([A-Za-z0-9]{43})?$",
                                     "title": {"zh-CN": "消息加解密密钥（EncodingAESKey）",
                                               "en": "Message encryption key (EncodingAESKey)"}},
                # The modes by the words of the WeChat console (基本配置), in each language.
                "encryption_mode": {"type": "string", "enum": ["plain", "compatible", "safe"],
                                    "enumNames": [
                                        {"zh-CN": "明文模式", "en": "Plaintext mode"},
                                        {"zh-CN": "兼容模式", "en": "Compatible mode"},
                                        {"zh-CN": "安全模式（推荐）",
                                         "en": "Safe mode (recommended)"}],
                                    "default": "safe",
                                    "title": {"zh-CN": "消息加解密方式",
                                              "en": "Message encryption mode"}},
                "api_base_url": {"type": "string", "format": "uri",
                                 "default": wechat_api.DEFAULT_BASE_URL, "maxLength": 200,
                                 "title": {"zh-CN": "接口地址", "en": "API base URL"}},
                "show_agent_name": {"type": "boolean", "default": True,
                                    "title": {"zh-CN": "回复前显示客服名",
                                              "en": "Prefix agents' replies with their name"}},
            },
            "required": ["app_id", "app_secret", "token"],
            "secret": ["app_secret", "token", "encoding_aes_key"],
        }

    @staticmethod
    def validate_config(config: dict[str, Any]) -> None:
        """Safe and compatible mode need the EncodingAESKey: saved without it, the
        URL check passed and then every message was refused (403). The API address
        must pass the SSRF gate (docs/security.md §6)."""
        from meiqia.services.errors import ValidationError

        mode = config.get("encryption_mode") or "safe"
        if mode != "plain" and len(str(config.get("encoding_aes_key") or "")) != 43:
            raise ValidationError(
                f"config.encoding_aes_key: the {mode} mode needs the EncodingAESKey "
                "(43 letters and digits, from the WeChat console), or choose the plain mode",
                "config.encoding_aes_key")
        if config.get("api_base_url"):  # through the SSRF gate when saved, as on every call
            from meiqia.services import outbound

            try:
                outbound.check_url(str(config["api_base_url"]))
            except outbound.OutboundRefused as exc:
                raise ValidationError(f"config.api_base_url: {exc}",
                                      "config.api_base_url") from exc

    def __init__(self, config: dict[str, Any], host: Any) -> None:
        super().__init__(config, host)
        self.api = api_for(host)

    def deliver(self, conversation: Any, message: Any) -> str | None:
        openid = conversation.visitor_external_id
        if self.host.state.get(UNSUBSCRIBED_KEY.format(openid=openid)):
            raise DeliveryError(UNSUBSCRIBED_REASON, retry=False)
        if window_closed(conversation.last_inbound_at):
            raise DeliveryError(WINDOW_REASON, retry=False)
        images, others = [], []
        for item in message.attachments or []:
            is_image = (item.content_type or "").startswith("image/") and item.data
            (images if is_image else others).append(item)
        if others:
            raise DeliveryError(FILE_REASON.format(name=others[0].filename), retry=False)
        if images:
            try:
                for item in images:
                    media_id = self.api.upload_image(item.data, item.filename,
                                                     item.content_type)
                    self.api.send_image(openid, media_id)
            except wechat_api.ApiError as exc:
                raise delivery_error(exc) from None
            return None
        pieces = split_text(self._text(message), wechat_api.MAX_TEXT_BYTES)
        progress_key = f"sent_parts:{message.id}"
        done = int(self.host.state.get(progress_key, 0) or 0) if len(pieces) > 1 else 0
        for index, piece in enumerate(pieces):
            if index < done:
                continue  # sent by an earlier attempt that failed on a later piece
            try:
                self.api.send_text(openid, piece)
            except wechat_api.ApiError as exc:
                raise delivery_error(exc) from None
            if len(pieces) > 1:
                self.host.state.set(progress_key, index + 1)
        if len(pieces) > 1:
            self.host.state.delete(progress_key)  # every piece is out: nothing to resume
        return None  # custom/send gives no message id

    def _text(self, message: Any) -> str:
        body = (message.body or "").strip()
        if message.kind == "agent" and self.config.get("show_agent_name", True) \
                and message.sender_name:
            body = f"{message.sender_name}：{body}" if body else message.sender_name
        return body.strip() or "…"

    def test_connection(self) -> str:
        mode = self.config.get("encryption_mode") or "safe"
        if mode != "plain" and len(str(self.config.get("encoding_aes_key") or "")) != 43:
            raise DeliveryError({
                "zh-CN": f"{_MODES_ZH.get(mode, mode)}需要填写 EncodingAESKey（43 个字符，"
                         "在微信公众平台获取）",
                "en": f"the {mode} mode needs the EncodingAESKey (43 characters, from the "
                      "WeChat console)"}, retry=False)
        try:
            self.api.check()
        except wechat_api.ApiError as exc:
            raise DeliveryError(reasons(exc), retry=False) from None
        app_id = self.config.get("app_id")
        # The admin who pressed the button reads his own language (channels.test_connection).
        return {"zh-CN": f"已连接微信接口（AppID {app_id}）",
                "en": f"connected to the WeChat API as AppID {app_id}"}


def api_for(host: Any) -> wechat_api.WeChatAPI:
    """The API client of ``host``'s team (its config, state store and gated HTTP),
    whose requests wait for an answer as long as a delivery may run
    (``CHANNEL_DELIVER_TIMEOUT``): a slow answer within it is a success."""
    config = host.config or {}
    app = getattr(host, "app", None)
    budget = float(app.config.get("CHANNEL_DELIVER_TIMEOUT", wechat_api.TIMEOUT)
                   if app is not None else wechat_api.TIMEOUT)
    return wechat_api.WeChatAPI(
        str(config.get("api_base_url") or wechat_api.DEFAULT_BASE_URL),
        str(config.get("app_id") or ""), str(config.get("app_secret") or ""),
        host.outbound_http, host.state, timeout=budget)


#: A WeChat error code in Chinese, the lead of the reason agents and admins read
#: (the e-mail channel's reasons lead in Chinese the same way).
_ZH_HINTS = {
    -1: "微信系统繁忙，稍后重试",
    40001: "access_token 已重新获取仍被拒绝，请检查 AppSecret",
    40005: "微信只接受 PNG、JPEG、GIF、BMP 图片",
    40013: "AppID 无效",
    40125: "AppSecret 无效",
    40164: "本服务器的 IP 地址不在公众号的 IP 白名单中",
    43004: "用户没有关注公众号",
    45047: "用户上一条消息之后回复次数过多",
    48001: "此公众号没有客服消息接口的权限",
}


#: The encryption modes in Chinese (the schema's enum: plain, compatible, safe).
_MODES_ZH = {"compatible": "兼容模式", "safe": "安全模式"}
#: An error without a code and without a lead of its own.
_NO_ANSWER = "微信接口没有正常答复"


def describe(exc: wechat_api.ApiError) -> str:
    """What an API error means, for agents and admins of either language (a
    delivery's stored reason): a Chinese lead, then WeChat's own code and words with
    the English hint (``微信接口错误 40125：AppSecret 无效 · WeChat error 40125: invalid
    appsecret (AppSecret is not valid)``); without a code, what happened (``无法连接微信
    接口 · cannot connect to the WeChat API: …``)."""
    if exc.errcode is None:
        # No answer from WeChat, or none it made: no code to show (``无法连接微信接口 ·
        # cannot connect to the WeChat API: …``, as the e-mail channel's reasons).
        return f"{exc.zh or _NO_ANSWER} · {exc}"
    zh = _ZH_HINTS.get(exc.errcode or 0)
    lead = f"微信接口错误 {exc.errcode}"
    return (f"{lead}：{zh} · " if zh else f"{lead} · ") + _english(exc)


def reasons(exc: wechat_api.ApiError) -> dict[str, str]:
    """The same in one language each (``{"zh-CN", "en"}``), for the admin who tests
    the connection: the Chinese keeps only technical detail (the code, WeChat's own
    words when there is no hint, the address it could not reach)."""
    if exc.errcode is None:
        zh = exc.zh or _NO_ANSWER
        return {"zh-CN": f"{zh}（{exc.where}）" if exc.where else zh, "en": str(exc)}
    hint = _ZH_HINTS.get(exc.errcode or 0)
    words = str(exc).partition(": ")[2]  # "WeChat error 40003: invalid openid"
    zh = f"微信接口错误 {exc.errcode}：{hint or words}".rstrip("：")
    return {"zh-CN": zh, "en": _english(exc)}


def _english(exc: wechat_api.ApiError) -> str:
    """WeChat's code and words with the English hint of what to do."""
    hints = {
        40001: "the access_token was refused even after fetching a new one (check AppSecret)",
        40005: "WeChat takes PNG, JPEG, GIF and BMP images, not this type (WebP?)",
        40013: "AppID is not valid",
        40125: "AppSecret is not valid",
        40164: "this server's IP address is not on the Official Account's IP whitelist "
               "(IP白名单)",
        43004: "the user has not followed the Official Account",
        45047: "too many replies since the user's last message (WeChat allows a few per "
               "message)",
        48001: "this Official Account may not use the customer-service message API",
    }
    hint = hints.get(exc.errcode or 0)
    return f"{exc} ({hint})" if hint else str(exc)


def delivery_error(exc: wechat_api.ApiError) -> DeliveryError:
    if exc.errcode == wechat_api.WINDOW_CLOSED:
        return DeliveryError(WINDOW_REASON, retry=False)
    if exc.errcode == 43004:
        return DeliveryError(UNSUBSCRIBED_REASON, retry=False)
    return DeliveryError(describe(exc), retry=exc.retry)
