"""A local stand-in of the WeChat Official Account API, and WeChat's side of the
server URL, for tests (api.weixin.qq.com cannot be reached from CI, and it would
need a real account).

``WeChatStandIn`` is a threaded werkzeug server that follows the documented
wire format of the four endpoints the channel uses
(developers.weixin.qq.com, "获取Access token", "客服消息", "获取临时素材"):

* ``GET /cgi-bin/token?grant_type=client_credential&appid=&secret=`` →
  ``{"access_token", "expires_in": 7200}``; a wrong AppID/AppSecret →
  ``{"errcode": 40013|40125, "errmsg"}``.
* ``POST /cgi-bin/message/custom/send?access_token=`` with a JSON body
  ``{"touser", "msgtype": "text", "text": {"content"}}`` → ``{"errcode": 0,
  "errmsg": "ok"}``; an unknown token → 40001, an expired one → 42001; a
  ``content`` over ``MAX_CONTENT_BYTES`` (2048 bytes of UTF-8) → 45002.
* ``POST /cgi-bin/media/upload?access_token=&type=image`` (multipart, field
  ``media``) → ``{"type": "image", "media_id", "created_at"}``; custom/send then
  takes ``{"msgtype": "image", "image": {"media_id"}}``.
* ``GET /cgi-bin/get_api_domain_ip?access_token=`` → ``{"ip_list": [...]}``.
* ``GET /cgi-bin/media/get?access_token=&media_id=`` → the file, with
  ``Content-Type`` and ``Content-disposition: attachment; filename="…"``;
  an unknown id → ``{"errcode": 40007, "errmsg": "invalid media_id"}``.

Faults are queued with ``fail_next(...)``: a WeChat error code (``-1`` "system
busy", ``45015``…) or a bare HTTP status (500).

``WeChatSide`` builds callbacks the way WeChat does: the documented XML, the
query signature, and in safe mode the AES ``Encrypt`` and ``msg_signature``,
made with wechatpy's crypto.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import threading
import time
from collections import deque
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

from werkzeug.serving import make_server
from werkzeug.wrappers import Request
from werkzeug.wrappers import Response

ERRMSG = {
    -1: "system error",
    40001: "invalid credential, access_token is invalid or not latest",
    40007: "invalid media_id",
    40013: "invalid appid",
    40125: "invalid appsecret",
    42001: "access_token expired",
    43004: "require subscribe",
    44002: "empty post data",
    45015: "response out of time limit or subscription is canceled",
}


class WeChatStandIn:
    def __init__(self, app_id: str, app_secret: str) -> None:
        self.app_id = app_id
        self.app_secret = app_secret
        self.lock = threading.Lock()
        self.tokens: dict[str, float] = {}  # token -> expires at (epoch)
        self.token_requests = 0
        self.sent: list[dict[str, Any]] = []  # accepted custom/send bodies
        self.calls: list[tuple[str, str, Any]] = []  # (path, outcome, body)
        self.media: dict[str, tuple[bytes, str, str]] = {}
        self.uploads: list[str] = []  # media ids uploaded by the channel
        self.faults: deque[tuple[int | None, int] | None] = deque()
        self.media_faults = 0  # media/get calls still to answer errcode -1
        self.media_gets: list[float] = []  # when each media/get call came (epoch)
        self.hangs: dict[str, float] = {}  # path -> seconds it answers nothing
        self.delays: dict[str, float] = {}  # path -> seconds each answer takes
        self.released = threading.Event()
        self.server = make_server("127.0.0.1", 0, self.wsgi, threaded=True)
        self.base_url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    # --- test controls ------------------------------------------------------------------

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def fail_next(self, errcode: int | None = -1, times: int = 1, status: int = 200,
                  after: int = 0) -> None:
        """After ``after`` good ones, the next ``times`` custom/send calls fail: with
        ``errcode`` (HTTP 200, as WeChat answers errors), or with HTTP ``status``
        when errcode is None."""
        with self.lock:
            self.faults.extend([None] * after)
            for _ in range(times):
                self.faults.append((errcode, status))

    def fail_media(self, times: int) -> None:
        """The next ``times`` media/get calls answer errcode -1 (system busy)."""
        with self.lock:
            self.media_faults += times

    def hang(self, path: str, seconds: float = 30.0) -> None:
        """Calls of ``path`` (``/cgi-bin/media/get``…) get no answer for ``seconds``
        (an API that does not answer), until ``release()``."""
        with self.lock:
            self.released.clear()
            self.hangs[path] = seconds

    def slow(self, path: str, seconds: float) -> None:
        """Every call of ``path`` is answered, after ``seconds`` (a slow API; unlike
        ``hang``, it answers). 0: at once again."""
        with self.lock:
            self.delays[path] = seconds

    def release(self) -> None:
        """Hanging calls answer now, and the next ones at once."""
        with self.lock:
            self.hangs.clear()
        self.released.set()

    def expire_tokens(self) -> None:
        """Every token issued so far expires (the next use gets 42001)."""
        with self.lock:
            for token in self.tokens:
                self.tokens[token] = 0.0

    def texts_to(self, openid: str) -> list[str]:
        with self.lock:
            return [m["text"]["content"] for m in self.sent
                    if m["touser"] == openid and m["msgtype"] == "text"]

    def images_to(self, openid: str) -> list[bytes]:
        """The files of the image messages sent to ``openid``."""
        with self.lock:
            return [self.media[m["image"]["media_id"]][0] for m in self.sent
                    if m["touser"] == openid and m["msgtype"] == "image"]

    # --- the API ------------------------------------------------------------------------

    def wsgi(self, environ: dict, start_response: Any) -> Any:
        request = Request(environ)
        try:
            response = self.handle(request)
        finally:
            request.close()  # the multipart upload's temporary file
        return response(environ, start_response)

    def _json(self, data: dict[str, Any], status: int = 200) -> Response:
        return Response(json.dumps(data, ensure_ascii=False), status=status,
                        content_type="application/json; encoding=utf-8")

    def _error(self, code: int) -> Response:
        return self._json({"errcode": code, "errmsg": ERRMSG.get(code, "error")})

    def _token_state(self, token: str | None) -> int:
        with self.lock:
            if not token or token not in self.tokens:
                return 40001
            if self.tokens[token] <= time.time():
                return 42001
        return 0

    def handle(self, request: Request) -> Response:
        path = request.path
        with self.lock:
            hang = self.hangs.get(path, 0.0)
        if hang:
            self.released.wait(hang)
        with self.lock:
            delay = self.delays.get(path, 0.0)
        if delay:
            threading.Event().wait(delay)  # the API takes its time
        if path == "/cgi-bin/token" and request.method == "GET":
            args = request.args
            with self.lock:
                self.token_requests += 1
            if args.get("grant_type") != "client_credential" or args.get("appid") != self.app_id:
                return self._error(40013)
            if args.get("secret") != self.app_secret:
                return self._error(40125)
            token = "ACCESS_TOKEN_" + secrets.token_hex(8)
            with self.lock:
                self.tokens[token] = time.time() + 7200
            return self._json({"access_token": token, "expires_in": 7200})
        if path == "/cgi-bin/message/custom/send" and request.method == "POST":
            code = self._token_state(request.args.get("access_token"))
            try:
                body = json.loads(request.get_data(as_text=True) or "null")
            except ValueError:
                body = None
            if code:
                self.calls.append((path, f"errcode {code}", body))
                return self._error(code)
            with self.lock:
                fault = self.faults.popleft() if self.faults else None
            if fault is not None:
                errcode, status = fault
                self.calls.append((path, f"fault {errcode} / HTTP {status}", body))
                if errcode is None:
                    return Response("Internal Server Error", status=status)
                return self._error(errcode)
            if _too_long(body):
                self.calls.append((path, "errcode 45002", body))
                return self._json({"errcode": 45002, "errmsg": "content size out of limit"})
            if not _valid_send(body, self.media):
                self.calls.append((path, "errcode 44002", body))
                return self._error(44002)
            with self.lock:
                self.sent.append(body)
            self.calls.append((path, "ok", body))
            return self._json({"errcode": 0, "errmsg": "ok"})
        if path == "/cgi-bin/media/upload" and request.method == "POST":
            code = self._token_state(request.args.get("access_token"))
            if code:
                return self._error(code)
            upload = request.files.get("media")
            if request.args.get("type") != "image" or upload is None:
                return self._json({"errcode": 40004, "errmsg": "invalid media type"})
            data = upload.read()
            if not data:
                return self._json({"errcode": 40005, "errmsg": "invalid file type"})
            media_id = "UPLOADED_" + secrets.token_hex(6)
            with self.lock:
                self.media[media_id] = (data, upload.mimetype or "image/jpeg",
                                        upload.filename or "image")
                self.uploads.append(media_id)
            return self._json({"type": "image", "media_id": media_id,
                               "created_at": int(time.time())})
        if path == "/cgi-bin/get_api_domain_ip" and request.method == "GET":
            code = self._token_state(request.args.get("access_token"))
            if code:
                return self._error(code)
            return self._json({"ip_list": ["101.226.103.0/25", "101.226.233.128/25"]})
        if path == "/cgi-bin/media/get" and request.method == "GET":
            with self.lock:
                self.media_gets.append(time.time())
            code = self._token_state(request.args.get("access_token"))
            if code:
                return self._error(code)
            with self.lock:
                busy = self.media_faults > 0
                self.media_faults -= 1 if busy else 0
            if busy:
                return self._error(-1)
            found = self.media.get(request.args.get("media_id", ""))
            if found is None:
                return self._error(40007)
            data, ctype, filename = found
            return Response(data, content_type=ctype, headers={
                "Content-disposition": f'attachment; filename="{filename}"'})
        return Response("not found", status=404)


#: The longest text content WeChat takes in one message (bytes of UTF-8).
MAX_CONTENT_BYTES = 2048


@contextlib.contextmanager
def running_standin() -> Iterator[WeChatStandIn]:
    """A stand-in with the test account's AppID and secret, released (a hung
    request let go) and closed after use: the fixture of the tests that make
    WeChat's API hang."""
    server = WeChatStandIn("wx1234567890abcdef", "0123456789abcdef0123456789abcdef")
    try:
        yield server
    finally:
        server.release()
        server.close()


def _too_long(body: Any) -> bool:
    text = body.get("text") if isinstance(body, dict) else None
    content = text.get("content") if isinstance(text, dict) else None
    return isinstance(content, str) and len(content.encode("utf-8")) > MAX_CONTENT_BYTES


def _valid_send(body: Any, media: dict[str, Any]) -> bool:
    """A custom/send body as documented: text with content, or an image with a
    media_id the account has."""
    if not isinstance(body, dict) or not body.get("touser"):
        return False
    if body.get("msgtype") == "text":
        return isinstance(body.get("text"), dict) and bool(body["text"].get("content"))
    if body.get("msgtype") == "image":
        return isinstance(body.get("image"), dict) and body["image"].get("media_id") in media
    return False


class WeChatSide:
    """Builds the requests WeChat's servers send to a server URL."""

    def __init__(self, token: str, app_id: str, aes_key: str | None = None,
                 account: str = "gh_0123456789ab") -> None:
        self.token = token
        self.app_id = app_id
        self.aes_key = aes_key
        self.account = account
        self._msg_id = 24000000000000000

    def next_msg_id(self) -> str:
        self._msg_id += 1
        return str(self._msg_id)

    def text(self, openid: str, content: str, msg_id: str | None = None) -> str:
        return (f"<xml><ToUserName><![CDATA[{self.account}]]></ToUserName>"
                f"<FromUserName><![CDATA[{openid}]]></FromUserName>"
                f"<CreateTime>{int(time.time())}</CreateTime>"
                f"<MsgType><![CDATA[text]]></MsgType>"
                f"<Content><![CDATA[{content}]]></Content>"
                f"<MsgId>{msg_id or self.next_msg_id()}</MsgId></xml>")

    def image(self, openid: str, media_id: str, msg_id: str | None = None) -> str:
        return (f"<xml><ToUserName><![CDATA[{self.account}]]></ToUserName>"
                f"<FromUserName><![CDATA[{openid}]]></FromUserName>"
                f"<CreateTime>{int(time.time())}</CreateTime>"
                f"<MsgType><![CDATA[image]]></MsgType>"
                f"<PicUrl><![CDATA[http://mmbiz.qpic.cn/{media_id}]]></PicUrl>"
                f"<MediaId><![CDATA[{media_id}]]></MediaId>"
                f"<MsgId>{msg_id or self.next_msg_id()}</MsgId></xml>")

    def event(self, openid: str, event: str, created: int | None = None) -> str:
        return (f"<xml><ToUserName><![CDATA[{self.account}]]></ToUserName>"
                f"<FromUserName><![CDATA[{openid}]]></FromUserName>"
                f"<CreateTime>{created or int(time.time())}</CreateTime>"
                f"<MsgType><![CDATA[event]]></MsgType>"
                f"<Event><![CDATA[{event}]]></Event><EventKey><![CDATA[]]></EventKey></xml>")

    def signed(self, timestamp: int | None = None, nonce: str | None = None,
               **extra: str) -> dict[str, str]:
        """The query WeChat adds to every request: timestamp, nonce, signature."""
        from wechatpy.utils import WeChatSigner

        ts = str(int(time.time()) if timestamp is None else timestamp)
        nonce = nonce or secrets.token_hex(5)
        signer = WeChatSigner()
        signer.add_data(self.token, ts, nonce)
        return {"signature": signer.signature, "timestamp": ts, "nonce": nonce, **extra}

    def post(self, message: str, encrypted: bool, openid: str = "",
             timestamp: int | None = None, nonce: str | None = None
             ) -> tuple[str, bytes]:
        """``(query string, body)`` of one callback; safe mode when ``encrypted``."""
        query = self.signed(timestamp, nonce, openid=openid)
        if not encrypted:
            return urlencode(query), message.encode("utf-8")
        from wechatpy.crypto import PrpCrypto
        from wechatpy.crypto import _get_signature

        key = __import__("base64").b64decode(self.aes_key + "=")
        encrypt = PrpCrypto(key).encrypt(message, self.app_id).decode("ascii")
        query["encrypt_type"] = "aes"
        query["msg_signature"] = _get_signature(self.token, query["timestamp"],
                                                query["nonce"], encrypt)
        body = (f"<xml><ToUserName><![CDATA[{self.account}]]></ToUserName>"
                f"<Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>")
        return urlencode(query), body.encode("utf-8")
