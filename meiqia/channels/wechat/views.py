"""The server URL WeChat calls: ``/channels/wechat/<team id>/``.

``GET`` with ``echostr`` is the console's check of the URL; ``POST`` is a user's
message or event. Each is checked (signature, timestamp window, the team's
encryption mode, safe XML) and answered within WeChat's 5 seconds with the
plain text ``success``: replies never go in the HTTP answer but through the
customer-service API from a delivery job, so a slow bot or agent never makes
WeChat retry. A refused request gets a short 4xx text (WeChat shows nothing
of it; it is for the admin trying the URL).
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from flask import Blueprint
from flask import Response
from flask import request

from meiqia.channels import Attachment
from meiqia.channels import host_for
from meiqia.channels import receive
from meiqia.channels.wechat import signing
from meiqia.channels.wechat import xml
from meiqia.channels.wechat.api import ApiError
from meiqia.channels.wechat.channel import SLUG
from meiqia.channels.wechat.channel import UNSUBSCRIBED_KEY
from meiqia.channels.wechat.channel import api_for
from meiqia.services.errors import Conflict
from meiqia.services.errors import ValidationError

log = logging.getLogger("meiqia.channels.wechat")

bp = Blueprint("wechat_channel", __name__, url_prefix=f"/channels/{SLUG}")

#: Events passed on to ``receive`` (WeChat's Event, lower-cased).
EVENTS = {"subscribe", "unsubscribe", "scan", "click", "location", "view"}
#: What a message type WeChat sends but meiqia does not carry shows as.
PLACEHOLDERS = {
    "voice": "[语音 voice message]",
    "video": "[视频 video]",
    "shortvideo": "[小视频 short video]",
    "location": "[位置 location]",
    "link": "[链接 link]",
}


def _text(body: str, status: int) -> Response:
    return Response(body, status=status, mimetype="text/plain")


@bp.route("/<team_key>/", methods=["GET", "POST"])
def callback(team_key: str) -> Response:
    host = host_for(team_key, SLUG)
    if host is None:
        return _text("no WeChat channel here", 404)
    args = {k: v for k, v in request.args.items()}
    try:
        if request.method == "GET":
            return _text(signing.verify_echo(str(host.config.get("token") or ""), args), 200)
        if (request.content_length or 0) > xml.MAX_BODY:
            return _text(f"body over {xml.MAX_BODY} bytes", 413)
        body = request.stream.read(xml.MAX_BODY + 1)  # bounded, also when chunked
        if len(body) > xml.MAX_BODY:
            return _text(f"body over {xml.MAX_BODY} bytes", 413)
        inner = signing.open_body(host.config, args, body)
        book = signing.NonceBook(host.state)
        if book.seen(args.get("timestamp", ""), args.get("nonce", "")):
            return _text("success", 200)  # a replay (or WeChat's resend of a handled one)
        try:
            handle(host, xml.message(inner))
        except ValidationError as exc:
            # Nothing WeChat could send better by resending: keep it from retrying.
            host.log.warning("wechat message not stored (team %s): %s", host.team_id, exc)
        book.remember(args.get("timestamp", ""), args.get("nonce", ""))
    except Conflict:
        return _text("busy, send again", 503)  # WeChat resends; stored once by MsgId
    except signing.Refused as exc:
        host.log.warning("wechat callback refused (team %s): %s", host.team_id, exc)
        return _text(str(exc), exc.status)
    except xml.BadXML as exc:
        host.log.warning("wechat callback refused (team %s): %s", host.team_id, exc)
        return _text(f"bad XML: {exc}", 400)
    return _text("success", 200)


def handle(host: Any, msg: Any) -> None:
    """Pass one parsed message or event to ``receive``."""
    openid = str(getattr(msg, "source", "") or "")
    if not openid:
        raise xml.BadXML("FromUserName missing")
    kind = str(getattr(msg, "type", "") or "")
    raw = getattr(msg, "_data", {}) or {}  # as sent: wechatpy's typed fields raise on junk
    created = str(raw.get("CreateTime", ""))[:20]
    meta: dict[str, Any] = {"wechat": {"msg_type": kind, "to": str(msg.target or "")}}
    if kind == "event":
        event = str(getattr(msg, "event", "") or "").lower()
        if event.startswith("subscribe"):
            event = "subscribe"
        if event not in EVENTS:
            return  # template-send reports, menu pops…: nothing for a person
        unsubscribed = UNSUBSCRIBED_KEY.format(openid=openid)
        if event == "subscribe" and host.state.get(unsubscribed):
            host.state.set(unsubscribed, None)
        elif event == "unsubscribe":
            host.state.set(unsubscribed, created or True)
        meta["wechat"]["event_key"] = str(getattr(msg, "key", "") or "")[:200] or None
        receive(host, openid, event=event, metadata=meta,
                external_message_id=f"{openid}:{created}:{event}")
        return
    ext = str(raw.get("MsgId") or "")[:64] or f"{openid}:{created}:{kind}"
    if kind == "text":
        receive(host, openid, str(msg.content or ""), metadata=meta,
                external_message_id=ext)
    elif kind == "image":
        receive_image(host, openid, msg, meta, ext)
    elif kind == "voice" and getattr(msg, "recognition", None):
        receive(host, openid, str(msg.recognition), metadata=meta, external_message_id=ext)
    else:
        line = PLACEHOLDERS.get(kind, f"[{kind or 'message'}]")
        details = _details(kind, raw)
        if details:
            meta["wechat"]["details"] = details
            line = f"{line} " + " ".join(str(v) for v in details.values())
        receive(host, openid, line, metadata=meta, external_message_id=ext,
                placeholder=True)


def _details(kind: str, raw: dict[str, Any]) -> dict[str, str]:
    """What a location or link message says, for agents (the placeholder alone lost
    the place's name, its coordinates and the link)."""
    def text(name: str, most: int = 500) -> str:
        return str(raw.get(name) or "").strip()[:most]

    if kind == "location":
        found = {"label": text("Label"),
                 "coordinates": f"({text('Location_X', 20)}, {text('Location_Y', 20)})"
                 if raw.get("Location_X") and raw.get("Location_Y") else ""}
    elif kind == "link":
        found = {"title": text("Title"), "url": text("Url", 1000)}
    else:
        return {}
    return {k: v for k, v in found.items() if v}


#: What agents see while an image is being fetched from WeChat, or when it cannot be.
IMAGE_PENDING = "[图片 image: 正在从微信获取，稍后显示 · being fetched from WeChat]"
IMAGE_GONE = "[图片 image: 微信已不再提供这张图片 · WeChat no longer has it]"
IMAGE_REFUSED = "[图片 image: 未收下 · refused: {reason}]"
IMAGE_UNREACHABLE = ("[图片 image: 多次尝试仍无法从微信获取 · "
                     "could not be fetched from WeChat: {reason}]")
#: Attempts of the background fetch after the first and the waits between them
#: (MediaId lives 3 days at WeChat), unless the app sets ``WECHAT_MEDIA_RETRY``.
FETCH_RETRY = (6, (10, 60, 300, 1800, 3600, 3 * 3600))


def receive_image(host: Any, openid: str, msg: Any, meta: dict[str, Any], ext: str) -> None:
    """Store a line saying the image is on its way, and queue the job that
    fetches it by its MediaId and adds it to the chat like a widget upload.

    Never fetched here: WeChat waits 5 s for the answer to a callback and then
    resends it, three times in all, and its API may take longer than that (a
    fetch inline answered only after its 6 s timeout, so every try missed the
    wait, and up to 12 s more when the token had to be fetched too). The job
    retries with backoff (the MediaId stays valid for three days); an image
    WeChat no longer has, or bytes that are not an image, get a line saying so
    (placeholders: the bot does not answer them as questions). What the job
    stores is a ``follow_up``: the customer got the bot's one line for his
    picture with the "being fetched" line; a second for the same picture was
    one too many (WeChat caps the replies per message)."""
    media_id = str(msg.media_id or "")
    receive(host, openid, IMAGE_PENDING, metadata=meta, external_message_id=ext,
            placeholder=True)
    from flask import current_app

    from meiqia.jobs import Retry

    link = str(getattr(msg, "image", "") or "")[:1000]
    count, waits = current_app.config.get("WECHAT_MEDIA_RETRY") or FETCH_RETRY
    # One job per message, also when WeChat resends the callback: a fixed job id,
    # recorded once, and a resend leaves the job alone while it waits, is scheduled
    # for a retry or runs (queued again at once, it ran its retries ahead of their
    # schedule); it is queued again only if its queueing was refused or lost and
    # it is due (``BaseQueue._leave_alone``).
    current_app.extensions["meiqia.jobs"].enqueue(
        fetch_image_job, host.team_id, openid, media_id, meta, ext,
        link if link.startswith("http") else "",
        retry=Retry(max=count, intervals=waits),
        job_id=f"wechat-image-{host.team_id}-{hashlib.sha256(ext.encode()).hexdigest()[:32]}",
        description=f"fetch WeChat image {ext}",
        keep_if_refused=True)  # Redis down: queued by the workers' sweep


def _store_image(host: Any, openid: str, data: bytes, ctype: str, filename: str,
                 meta: dict[str, Any], ext: str) -> None:
    from meiqia.services import uploads

    if uploads.sniff_image(data[:uploads.HEAD_BYTES]) is None:
        receive(host, openid, IMAGE_REFUSED.format(reason="not an image 不是图片"),
                metadata=meta, external_message_id=ext, placeholder=True, follow_up=True)
        return
    try:
        receive(host, openid, attachments=[Attachment(filename, ctype, data)],
                metadata=meta, external_message_id=ext, follow_up=True)
    except ValidationError as exc:
        receive(host, openid, IMAGE_REFUSED.format(reason=exc), metadata=meta,
                external_message_id=ext, placeholder=True, follow_up=True)


def fetch_image_job(team_id: int, openid: str, media_id: str, meta: dict[str, Any],
                    ext: str, link: str = "") -> str:
    """Job: fetch an image a user sent (``receive_image``); raise to be retried.
    Stored under its own external id (``<MsgId>:image``), once; ``link``, WeChat's
    PicUrl, goes with the line saying WeChat no longer has it."""
    host = host_for(team_id, SLUG)
    if host is None:
        return "the channel is off"
    try:
        data, ctype, filename = api_for(host).get_media(media_id)
    except ApiError as exc:
        from meiqia.jobs import last_attempt

        if exc.retry and not last_attempt():
            from meiqia.jobs import RetryLater

            raise RetryLater(str(exc)) from None
        # Gone at WeChat, or WeChat did not answer through every retry: a line in
        # place of the "being fetched" one, so agents are not left waiting for it.
        said = IMAGE_UNREACHABLE.format(reason=exc) if exc.retry else IMAGE_GONE
        if exc.retry:
            log.warning("WeChat image %s given up after its last try (agents are told): %s",
                        ext, exc)
        receive(host, openid, said + (f" {link}" if link else ""), metadata=meta,
                external_message_id=f"{ext}:image", placeholder=True, follow_up=True)
        return f"{'gave up' if exc.retry else 'gone'}: {exc}"
    _store_image(host, openid, data, ctype, filename, meta, f"{ext}:image")
    return "stored"
