"""The WeChat server URL's signatures, the safe (AES) mode and replay protection.

WeChat signs every request to the server URL: ``signature`` is the SHA-1 of the
sorted (token, timestamp, nonce); in the safe and compatible modes a POST also
carries ``encrypt_type=aes`` and ``msg_signature``, the SHA-1 of the sorted
(token, timestamp, nonce, Encrypt), and the message itself is AES-256-CBC
encrypted with the EncodingAESKey (PKCS#7, the AppID appended). The crypto is
wechatpy's (``WeChatSigner``, ``WeChatCrypto``); this module decides what is
required in which mode and compares signatures in constant time.

Modes (the team's ``encryption_mode``, as set in the WeChat console):

* ``plain``: plaintext bodies; an encrypted one is still accepted if the AES
  key is set (the console was switched first).
* ``compatible``: both; encrypted when ``encrypt_type=aes``.
* ``safe``: encrypted only; a plaintext POST is refused, so nobody who learnt
  the token alone can inject messages.

Replays: the timestamp must be within ``WINDOW`` seconds of our clock, and a
(timestamp, nonce) pair handled once is not handled again (``NonceBook``, in
the channel's state store, so every process shares it). The message's own id
(MsgId, or user + time + event) is also the inbound idempotency key, which
holds even when two processes see the same replay at the same moment.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Mapping
from typing import Any

from meiqia.channels.wechat import xml

#: Seconds a callback's timestamp may differ from our clock.
WINDOW = 300
MODES = ("plain", "compatible", "safe")


class Refused(ValueError):
    """The request is not a valid WeChat callback (answered 400 or 403)."""

    def __init__(self, message: str, status: int = 403) -> None:
        super().__init__(message)
        self.status = status


def sha1_signature(*parts: str) -> str:
    """WeChat's signature: SHA-1 of the sorted parts (wechatpy's ``WeChatSigner``)."""
    from wechatpy.utils import WeChatSigner

    signer = WeChatSigner()
    signer.add_data(*parts)
    return signer.signature


def _same(expected: str, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(expected.encode(), str(given).encode())


def check_timestamp(timestamp: str | None, now: float | None = None) -> int:
    """The request's timestamp, if within ``WINDOW`` of ``now``."""
    try:
        stamp = int(str(timestamp or ""))
    except ValueError:
        raise Refused("timestamp: missing or not a number", 400) from None
    now = time.time() if now is None else now
    if abs(now - stamp) > WINDOW:
        raise Refused(f"timestamp: more than {WINDOW} seconds from the server's clock "
                      "(a replay, or a clock to set right)")
    return stamp


def check_signature(token: str, args: Mapping[str, str]) -> None:
    """``signature`` over (token, timestamp, nonce), as on every request."""
    if not token:
        raise Refused("the channel has no token configured", 403)
    expected = sha1_signature(token, args.get("timestamp", ""), args.get("nonce", ""))
    if not _same(expected, args.get("signature")):
        raise Refused("signature: does not match (check the token)")


def verify_echo(token: str, args: Mapping[str, str], now: float | None = None) -> str:
    """The server-URL check of the WeChat console (GET with ``echostr``): the
    ``echostr`` to answer with, once the signature is right."""
    check_signature(token, args)
    check_timestamp(args.get("timestamp"), now)
    echo = args.get("echostr")
    if not echo:
        raise Refused("echostr: missing", 400)
    return echo


def open_body(config: Mapping[str, Any], args: Mapping[str, str], body: bytes,
              now: float | None = None) -> str:
    """The plaintext XML of a POST to the server URL, after every check the
    team's mode requires. Raises ``Refused`` or ``xml.BadXML``."""
    token = str(config.get("token") or "")
    mode = config.get("encryption_mode") or "plain"
    check_signature(token, args)
    check_timestamp(args.get("timestamp"), now)
    outer = xml.parse(body)
    encrypted = (args.get("encrypt_type") or "").lower() == "aes"
    if not encrypted:
        if mode == "safe":
            raise Refused("the channel is in safe mode: plaintext messages are refused")
        return body.decode("utf-8", "replace")
    aes_key = str(config.get("encoding_aes_key") or "")
    if len(aes_key) != 43:
        raise Refused("an encrypted message, but no EncodingAESKey (43 characters) is "
                      "configured", 403)
    encrypt = outer.get("Encrypt") or ""
    if not encrypt:
        raise Refused("Encrypt: missing in an encrypted message", 400)
    expected = sha1_signature(token, args.get("timestamp", ""), args.get("nonce", ""), encrypt)
    if not _same(expected, args.get("msg_signature")):
        raise Refused("msg_signature: does not match (check the token)")
    return decrypt(config, encrypt, args)


def crypto_for(config: Mapping[str, Any]) -> Any:
    """wechatpy's ``WeChatCrypto`` for the team's token, AES key and AppID."""
    from wechatpy.crypto import WeChatCrypto

    try:
        return WeChatCrypto(str(config.get("token") or ""),
                            str(config.get("encoding_aes_key") or ""),
                            str(config.get("app_id") or ""))
    except (AssertionError, ValueError, TypeError):
        raise Refused("the EncodingAESKey is not a valid key (43 characters of base64)",
                      403) from None


def decrypt(config: Mapping[str, Any], encrypt: str, args: Mapping[str, str]) -> str:
    """The inner XML of a signed ``Encrypt``; the AppID inside must be ours."""
    from wechatpy.exceptions import InvalidAppIdException
    from wechatpy.exceptions import InvalidSignatureException

    crypto = crypto_for(config)
    try:
        inner = crypto.decrypt_message({"Encrypt": encrypt}, args.get("msg_signature", ""),
                                       args.get("timestamp", ""), args.get("nonce", ""))
    except InvalidSignatureException:
        raise Refused("msg_signature: does not match (check the token)") from None
    except InvalidAppIdException:
        raise Refused("the message was encrypted for another AppID") from None
    except Exception:  # noqa: BLE001 - bad base64/padding/length: all one answer
        raise Refused("Encrypt: cannot be decrypted with the configured EncodingAESKey",
                      400) from None
    xml.parse(inner)  # the inner document is as untrusted as the outer one
    return inner


class NonceBook:
    """(timestamp, nonce) pairs handled within the window, in ``host.state``.

    One JSON object under one key, pruned to the window on every write, so it
    stays small. Two processes writing at once may lose each other's entry;
    that only weakens this extra check, never the inbound idempotency by
    message id, which is race-safe.
    """

    KEY = "seen_nonces"

    def __init__(self, state: Any) -> None:
        self.state = state

    def seen(self, timestamp: str, nonce: str) -> bool:
        book = self.state.get(self.KEY) or {}
        return f"{timestamp}:{nonce}" in book

    def remember(self, timestamp: str, nonce: str, now: float | None = None) -> None:
        now = time.time() if now is None else now
        book = self.state.get(self.KEY) or {}
        book = {k: v for k, v in book.items()
                if isinstance(v, int | float) and now - v <= 2 * WINDOW}
        try:
            book[f"{timestamp}:{nonce}"] = int(timestamp)
        except ValueError:
            return
        self.state.set(self.KEY, book)
