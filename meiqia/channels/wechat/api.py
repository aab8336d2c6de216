"""The WeChat Official Account API, as much of it as the channel needs.

* ``GET /cgi-bin/token?grant_type=client_credential&appid=…&secret=…`` gives
  ``{"access_token", "expires_in"}`` (7200 s). The token is kept in the
  channel's state store (shared by every process; a new fetch invalidates the
  old token after a grace period, so fetching once per expiry matters) and
  fetched again ``MARGIN`` seconds before it expires, or at once when an
  answer says it is invalid or expired (errcode 40001, 40014, 42001).
* ``POST /cgi-bin/message/custom/send?access_token=…`` with
  ``{"touser", "msgtype": "text", "text": {"content"}}``: the customer-service
  message, allowed within 48 hours of the user's last message (errcode 45015
  after that).
* ``GET /cgi-bin/get_api_domain_ip?access_token=…`` gives ``{"ip_list"}``: the
  admin's "Test connection" (credentials, network path, IP whitelist).
* ``GET /cgi-bin/media/get?access_token=…&media_id=…``: an image the user sent
  (the file itself, or a JSON error).
* ``POST /cgi-bin/media/upload?access_token=…&type=image`` (multipart, field
  ``media``) gives ``{"media_id"}`` for an agent's image, then sent with
  ``{"msgtype": "image", "image": {"media_id"}}``.

Every request goes through ``host.outbound_http`` (the SSRF guard). Errors are
``ApiError`` with WeChat's errcode, and ``retry`` saying whether trying again
later can help.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
import urllib.parse
from typing import Any

DEFAULT_BASE_URL = "https://api.weixin.qq.com"
#: Seconds for each request unless the client is given its own: the channel
#: gives it the delivery's budget (``CHANNEL_DELIVER_TIMEOUT``, ``channel.api_for``),
#: so an answer that comes within the budget is an answer. It was 6 s under a
#: documented 30 s: an API that answered ``custom/send`` after 8 s failed every
#: delivery with "could not reach" and used up its retries. The runtime ends a
#: ``deliver`` that runs past the budget whatever its requests wait for.
TIMEOUT = 30.0
#: Fetch a new token this many seconds before the old one expires.
MARGIN = 300
TOKEN_KEY = "access_token"
#: The lease (``state.claim``) of the one process fetching a new token, and how
#: long it holds at most; the others wait up to ``TOKEN_WAIT`` for its token.
TOKEN_LEASE = "access_token_fetch"
TOKEN_LEASE_SECONDS = 18.0  # at least the client's timeout (``access_token``)
TOKEN_WAIT = 12.0
#: errcodes that mean "this access_token is not valid (any more)".
TOKEN_ERRORS = frozenset({40001, 40014, 42001})
#: The 48-hour customer-service window has passed.
WINDOW_CLOSED = 45015
#: Errors where trying the same call again will not help.
FINAL_ERRORS = frozenset({
    40003,  # invalid openid
    40004,  # invalid media type
    40005,  # invalid file type (WeChat takes bmp, png, jpeg, jpg and gif images)
    40006,  # invalid file size (images: at most 10 MB)
    40007,  # invalid media_id (expired: temporary media live 3 days)
    40013,  # invalid appid
    40125,  # invalid appsecret
    40164,  # our IP is not on the whitelist
    43004,  # the user unsubscribed
    45015,  # out of the reply window
    45047,  # too many customer-service messages since the user's last message
    48001,  # the account may not use this API
})
#: Longest text of one customer-service message (WeChat's limit is 2048 bytes
#: of UTF-8; longer text is split by the channel, ``split.py``).
MAX_TEXT_BYTES = 2000


class ApiError(Exception):
    """The API answered with an error (``errcode``) or not at all (``errcode`` None).

    ``zh``: the Chinese lead of what went wrong when WeChat gave no code (could not
    connect, an HTTP error, an answer that is no API answer), as the e-mail
    channel's ``无法连接 SMTP 服务器``; the message is its English detail. ``where``:
    the API's address (host, and a port it names) when it could not be reached, the
    technical detail a Chinese-only text keeps (``channel.reasons``)."""

    def __init__(self, message: str, errcode: int | None = None, retry: bool = True,
                 zh: str = "", where: str = "") -> None:
        super().__init__(message)
        self.errcode = errcode
        self.retry = retry
        self.zh = zh
        self.where = where


class WeChatAPI:
    """One team's API access: ``base_url``, AppID/AppSecret, an HTTP session
    (requests-like, through the SSRF guard) and a state store (``get``/``set``)."""

    def __init__(self, base_url: str, app_id: str, app_secret: str, http: Any,
                 state: Any, timeout: float = TIMEOUT) -> None:
        self.base_url = (base_url or DEFAULT_BASE_URL).rstrip("/")
        self.app_id = app_id
        self.app_secret = app_secret
        self.http = http
        self.state = state
        self.timeout = timeout

    # --- access token ----------------------------------------------------------------

    @property
    def _credentials(self) -> str:
        """Which AppID and AppSecret a cached token was fetched with (a digest,
        never the secret): a token of other credentials is not reused."""
        return hashlib.sha256(f"{self.app_id}\0{self.app_secret}".encode()).hexdigest()[:16]

    def _cached(self, now: float) -> str | None:
        cached = self.state.get(TOKEN_KEY) or {}
        if (isinstance(cached, dict) and cached.get("token")
                and cached.get("app_id") == self.app_id
                and cached.get("credentials") == self._credentials
                and float(cached.get("expires_at", 0)) - MARGIN > now):
            return str(cached["token"])
        return None

    def access_token(self, now: float | None = None) -> str:
        """The cached token, or a new one when it is missing or near expiry.

        One process fetches at a time (every fetch invalidates the token before
        it, and fetches count against a daily quota): the others wait for its
        token (``TOKEN_LEASE``), and fetch themselves only if none came in
        ``TOKEN_WAIT`` seconds (its holder died or WeChat did not answer)."""
        token = self._cached(time.time() if now is None else now)
        if token is not None:
            return token
        deadline = time.monotonic() + TOKEN_WAIT
        # The lease outlives the fetch's request: a slow token answer is not
        # fetched a second time meanwhile (each fetch invalidates the one before).
        lease = max(TOKEN_LEASE_SECONDS, self.timeout + 1)
        while not self.state.claim(TOKEN_LEASE, lease):
            if time.monotonic() >= deadline:
                return self._fetch(now)
            time.sleep(0.1)
            token = self._cached(time.time() if now is None else now)
            if token is not None:
                return token
        try:
            # Another process may have stored one between our look and the claim.
            token = self._cached(time.time() if now is None else now)
            return token if token is not None else self._fetch(now)
        finally:
            self.state.release(TOKEN_LEASE)

    def _fetch(self, now: float | None) -> str:
        data = self._json("GET", "/cgi-bin/token", params={
            "grant_type": "client_credential", "appid": self.app_id,
            "secret": self.app_secret})
        token = data.get("access_token")
        if not isinstance(token, str) or not token:
            raise ApiError("the token endpoint gave no access_token", None, True,
                           "微信接口没有给出 access_token")
        try:
            expires_in = int(data.get("expires_in") or 7200)
        except (TypeError, ValueError):
            expires_in = 7200
        now = time.time() if now is None else now
        self.state.set(TOKEN_KEY, {"token": token, "app_id": self.app_id,
                                   "credentials": self._credentials,
                                   "expires_at": now + expires_in})
        return token

    def drop_token(self, token: str) -> None:
        """Forget ``token`` if it is still the cached one (another process may
        already have stored a newer one)."""
        cached = self.state.get(TOKEN_KEY) or {}
        if isinstance(cached, dict) and cached.get("token") == token:
            self.state.set(TOKEN_KEY, None)

    # --- calls ----------------------------------------------------------------------

    def call(self, method: str, path: str, payload: dict[str, Any] | None = None,
             params: dict[str, str] | None = None) -> dict[str, Any]:
        """An API call with the access token; an invalid or expired token is
        fetched again and the call made once more."""
        for attempt in (1, 2):
            token = self.access_token()
            try:
                return self._json(method, path, params={**(params or {}),
                                                        "access_token": token},
                                  payload=payload)
            except ApiError as exc:
                if exc.errcode in TOKEN_ERRORS and attempt == 1:
                    self.drop_token(token)
                    continue
                raise
        raise AssertionError("unreachable")

    def check(self) -> int:
        """Prove the credentials and the path to the API: the token (the cached
        one when it was fetched with these credentials, else a new one) and
        ``GET /cgi-bin/get_api_domain_ip`` with it, which also fails when this
        server's address is not on the account's IP whitelist. Returns how many
        API addresses WeChat listed. Fetching a new token on every "Test
        connection" invalidated the one the deliveries were using."""
        data = self.call("GET", "/cgi-bin/get_api_domain_ip")
        ips = data.get("ip_list")
        return len(ips) if isinstance(ips, list) else 0

    def send_text(self, openid: str, content: str) -> dict[str, Any]:
        """One customer-service text message to ``openid``."""
        return self.call("POST", "/cgi-bin/message/custom/send", {
            "touser": openid, "msgtype": "text", "text": {"content": content}})

    def send_image(self, openid: str, media_id: str) -> dict[str, Any]:
        """One customer-service image message (an uploaded temporary image)."""
        return self.call("POST", "/cgi-bin/message/custom/send", {
            "touser": openid, "msgtype": "image", "image": {"media_id": media_id}})

    def upload_image(self, data: bytes, filename: str, content_type: str) -> str:
        """Upload a temporary image (``/cgi-bin/media/upload?type=image``, the
        multipart field ``media``); its ``media_id`` (valid 3 days)."""
        boundary = "meiqia" + secrets.token_hex(12)
        safe_name = "".join(c for c in filename if c.isalnum() or c in "._-")[:100] or "image"
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"media\"; "
                f"filename=\"{safe_name}\"\r\nContent-Type: {content_type}\r\n\r\n"
                ).encode() + data + f"\r\n--{boundary}--\r\n".encode("ascii")
        headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
        for attempt in (1, 2):
            token = self.access_token()
            try:
                answer = self._json("POST", "/cgi-bin/media/upload",
                                    params={"access_token": token, "type": "image"},
                                    body=body, headers=headers)
            except ApiError as exc:
                if exc.errcode in TOKEN_ERRORS and attempt == 1:
                    self.drop_token(token)
                    continue
                raise
            media_id = answer.get("media_id")
            if not isinstance(media_id, str) or not media_id:
                raise ApiError("media/upload gave no media_id", None, True,
                               "微信接口没有给出 media_id")
            return media_id
        raise AssertionError("unreachable")

    def get_media(self, media_id: str) -> tuple[bytes, str, str]:
        """A temporary media file: ``(data, content_type, filename)``."""
        for attempt in (1, 2):
            token = self.access_token()
            response = self._request("GET", "/cgi-bin/media/get",
                                     params={"access_token": token, "media_id": media_id})
            ctype = (response.headers.get("content-type") or "").split(";")[0].strip()
            if ctype in ("application/json", "text/plain") or response.content[:1] == b"{":
                try:
                    self._check(json.loads(response.content.decode("utf-8")))
                except ApiError as exc:
                    if exc.errcode in TOKEN_ERRORS and attempt == 1:
                        self.drop_token(token)
                        continue
                    raise
                except ValueError:
                    pass
            if response.status_code >= 400:
                raise ApiError(f"media/get answered HTTP {response.status_code}", None,
                               response.status_code >= 500,
                               f"微信接口答复 HTTP {response.status_code}")
            return response.content, ctype or "application/octet-stream", _filename(
                response.headers.get("content-disposition") or "", media_id, ctype)
        raise AssertionError("unreachable")

    # --- wire -----------------------------------------------------------------------

    def _request(self, method: str, path: str, params: dict[str, str] | None = None,
                 payload: dict[str, Any] | None = None, body: bytes | None = None,
                 headers: dict[str, str] | None = None) -> Any:
        from meiqia.services.outbound import OutboundFailed
        from meiqia.services.outbound import OutboundRefused

        url = self.base_url + path
        where = urllib.parse.urlsplit(url).netloc.rpartition("@")[2]
        try:
            if body is not None:
                return self.http.request(method, url, params=params, data=body,
                                         headers=headers, timeout=self.timeout)
            if payload is None:
                return self.http.request(method, url, params=params, timeout=self.timeout)
            return self.http.request(method, url, params=params, json=payload,
                                     timeout=self.timeout)
        except OutboundRefused as exc:
            lead = ("无法解析微信接口地址" if str(exc).startswith("cannot resolve")
                    else "微信接口地址不允许连接")
            raise ApiError(f"the API address is refused: {exc}", None, False, lead,
                           where) from None
        except OutboundFailed as exc:
            raise ApiError(f"cannot connect to the WeChat API: {exc}", None, True,
                           "无法连接微信接口", where) from None

    def _json(self, method: str, path: str, params: dict[str, str] | None = None,
              payload: dict[str, Any] | None = None, body: bytes | None = None,
              headers: dict[str, str] | None = None) -> dict[str, Any]:
        response = self._request(method, path, params, payload, body, headers)
        if response.status_code >= 400:
            raise ApiError(f"{path} answered HTTP {response.status_code}", None,
                           response.status_code >= 500 or response.status_code == 429,
                           f"微信接口答复 HTTP {response.status_code}")
        try:
            data = json.loads(response.content.decode("utf-8"))
        except ValueError:
            raise ApiError(f"{path} answered something that is not JSON", None,
                           True, "微信接口的答复不是 JSON") from None
        if not isinstance(data, dict):
            raise ApiError(f"{path} answered something that is not a JSON object", None, True,
                           "微信接口的答复不是 JSON 对象")
        return self._check(data)

    @staticmethod
    def _check(data: dict[str, Any]) -> dict[str, Any]:
        try:
            errcode = int(data.get("errcode") or 0)
        except (TypeError, ValueError):
            errcode = -1
        if errcode == 0:
            return data
        errmsg = str(data.get("errmsg") or "")[:200]
        raise ApiError(f"WeChat error {errcode}: {errmsg}", errcode,
                       errcode not in FINAL_ERRORS)


#: The extension of a file named from its id, by the answer's Content-Type.
_EXTENSIONS = {"image/png": ".png", "image/gif": ".gif", "image/bmp": ".bmp",
               "image/webp": ".webp", "audio/amr": ".amr", "video/mp4": ".mp4"}


def _filename(disposition: str, media_id: str, ctype: str = "") -> str:
    """The file name of a ``Content-Disposition`` answer, or one from the id with
    the extension its Content-Type says (``.jpg`` when it says nothing known)."""
    for part in disposition.split(";"):
        key, _, value = part.strip().partition("=")
        if key.lower() == "filename" and value:
            name = value.strip().strip('"').replace("/", "_").replace("\\", "_")
            if name:
                return name[:200]
    return f"wechat-{media_id[:40]}{_EXTENSIONS.get(ctype.lower(), '.jpg')}"
