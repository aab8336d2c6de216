"""The WeChat server URL's checks on callbacks built the way WeChat builds them
(wechatpy's signer and AES): signatures, the timestamp window, the three
encryption modes, and XML that must never be parsed (XXE, billion laughs)."""

from __future__ import annotations

import time
from urllib.parse import parse_qsl

import pytest

from meiqia.channels.wechat import signing
from meiqia.channels.wechat import xml
from tests.wechat_standin import WeChatSide

TOKEN = "meiqiaToken2026"
APP_ID = "wx1234567890abcdef"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
CONFIG = {"token": TOKEN, "app_id": APP_ID, "encoding_aes_key": AES_KEY,
          "encryption_mode": "safe"}

BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<xml><ToUserName>gh</ToUserName><FromUserName>o1</FromUserName><CreateTime>1</CreateTime>
<MsgType>text</MsgType><Content>&lol3;</Content><MsgId>1</MsgId></xml>"""
XXE = """<?xml version="1.0"?>
<!DOCTYPE xml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<xml><ToUserName>gh</ToUserName><FromUserName>o1</FromUserName><CreateTime>1</CreateTime>
<MsgType>text</MsgType><Content>&xxe;</Content><MsgId>1</MsgId></xml>"""


def side() -> WeChatSide:
    return WeChatSide(TOKEN, APP_ID, AES_KEY)


def args_of(query: str) -> dict[str, str]:
    return dict(parse_qsl(query))


def test_the_url_check_answers_echostr_only_to_a_right_signature() -> None:
    query = side().signed(echostr="8723413245")
    assert signing.verify_echo(TOKEN, query) == "8723413245"
    with pytest.raises(signing.Refused, match="signature"):
        signing.verify_echo("anotherToken", query)
    with pytest.raises(signing.Refused, match="signature"):
        signing.verify_echo(TOKEN, {**query, "nonce": "changed"})


def test_an_old_or_future_timestamp_is_refused_as_a_replay() -> None:
    old = side().signed(timestamp=int(time.time()) - signing.WINDOW - 60, echostr="1")
    with pytest.raises(signing.Refused, match="300 seconds"):
        signing.verify_echo(TOKEN, old)
    future = side().signed(timestamp=int(time.time()) + signing.WINDOW + 60, echostr="1")
    with pytest.raises(signing.Refused, match="300 seconds"):
        signing.verify_echo(TOKEN, future)
    soon = {"timestamp": "soon", "nonce": "n1", "echostr": "1",
            "signature": signing.sha1_signature(TOKEN, "soon", "n1")}
    with pytest.raises(signing.Refused, match="timestamp: missing or not a number"):
        signing.verify_echo(TOKEN, soon)


def test_safe_mode_decrypts_what_wechat_encrypted() -> None:
    message = side().text("oUser1", "你好，我想问一下退款")
    query, body = side().post(message, encrypted=True, openid="oUser1")
    inner = signing.open_body(CONFIG, args_of(query), body)
    parsed = xml.message(inner)
    assert (parsed.type, parsed.source, parsed.content) == ("text", "oUser1",
                                                           "你好，我想问一下退款")


def test_safe_mode_refuses_plaintext_a_bad_msg_signature_and_another_appid() -> None:
    message = side().text("oUser1", "hi")
    query, body = side().post(message, encrypted=False)
    with pytest.raises(signing.Refused, match="safe mode"):
        signing.open_body(CONFIG, args_of(query), body)
    query, body = side().post(message, encrypted=True)
    bad = {**args_of(query), "msg_signature": "0" * 40}
    with pytest.raises(signing.Refused, match="msg_signature"):
        signing.open_body(CONFIG, bad, body)
    other = WeChatSide(TOKEN, "wxffffffffffffffff", AES_KEY)
    query, body = other.post(message, encrypted=True)
    with pytest.raises(signing.Refused, match="another AppID"):
        signing.open_body(CONFIG, args_of(query), body)


def test_an_encrypt_that_is_not_ours_is_a_400_not_a_crash() -> None:
    s = side()
    for junk in ("not base64 at all!", "QUJD", "A" * 64):
        query = s.signed()
        query["encrypt_type"] = "aes"
        query["msg_signature"] = signing.sha1_signature(TOKEN, query["timestamp"],
                                                        query["nonce"], junk)
        body = f"<xml><ToUserName>gh</ToUserName><Encrypt>{junk}</Encrypt></xml>".encode()
        with pytest.raises(signing.Refused) as caught:
            signing.open_body(CONFIG, query, body)
        assert caught.value.status == 400


def test_plain_and_compatible_modes_take_plaintext_compatible_also_aes() -> None:
    message = side().text("oUser2", "plain hello")
    query, body = side().post(message, encrypted=False)
    for mode in ("plain", "compatible"):
        config = {**CONFIG, "encryption_mode": mode}
        assert xml.message(signing.open_body(config, args_of(query), body)).content == \
            "plain hello"
    query, body = side().post(message, encrypted=True)
    config = {**CONFIG, "encryption_mode": "compatible"}
    assert xml.message(signing.open_body(config, args_of(query), body)).content == \
        "plain hello"
    no_key = {**config, "encoding_aes_key": ""}
    with pytest.raises(signing.Refused, match="EncodingAESKey"):
        signing.open_body(no_key, args_of(query), body)


@pytest.mark.parametrize("payload", [BILLION_LAUGHS, XXE], ids=["billion-laughs", "xxe"])
def test_dtds_and_entities_are_refused_plain_and_encrypted(payload: str) -> None:
    with pytest.raises(xml.BadXML, match="no DTD or entities"):
        xml.parse(payload)
    with pytest.raises(xml.BadXML):
        xml.message(payload)
    plain = {**CONFIG, "encryption_mode": "plain"}
    query, body = side().post(payload, encrypted=False)
    with pytest.raises(xml.BadXML, match="no DTD or entities"):
        signing.open_body(plain, args_of(query), body)
    # The same payload inside a correctly signed, correctly encrypted message:
    # the inner document is parsed as carefully as the outer one.
    query, body = side().post(payload, encrypted=True)
    with pytest.raises(xml.BadXML, match="no DTD or entities"):
        signing.open_body(CONFIG, args_of(query), body)


def test_malformed_and_oversized_bodies_are_bad_xml() -> None:
    gbk = ('<?xml version="1.0" encoding="gbk"?><xml><FromUserName>o</FromUserName>'
           "<MsgType>text</MsgType><Content>你好</Content></xml>").encode("gbk")
    odd = b'<?xml version="1.0" encoding="x-no-such"?><xml/>'
    for body in (b"", b"<xml><a>", b"<other/>", b"<xml>" + b"x" * (xml.MAX_BODY + 1), gbk,
                 odd, b"<xml><MsgType></MsgType><FromUserName>o</FromUserName></xml>"):
        with pytest.raises(xml.BadXML):
            xml.message(body)


from hypothesis import given  # noqa: E402
from hypothesis import settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

FIELD = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40)


@settings(max_examples=200, deadline=None)
@given(body=st.one_of(
    st.binary(max_size=300),
    st.builds(lambda t, c, i, e: (f"<xml><FromUserName>o1</FromUserName><MsgType>{t}</MsgType>"
                                  f"<Content>{c}</Content><MsgId>{i}</MsgId>"
                                  f"<Event>{e}</Event></xml>"),
              FIELD, FIELD, FIELD, FIELD)),
       encrypted=st.booleans())
def test_any_signed_body_is_parsed_or_refused_never_crashes(body: bytes | str,
                                                            encrypted: bool) -> None:
    """Whatever a signed request carries, the checks end in a message or in
    Refused / BadXML (a 4xx), never in another exception (a 500)."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    query, raw = side().post(text, encrypted=encrypted)
    config = {**CONFIG, "encryption_mode": "compatible"}
    try:
        inner = signing.open_body(config, args_of(query), raw if encrypted else
                                  (body if isinstance(body, bytes) else body.encode()))
        parsed = xml.message(inner)
        _ = (parsed.type, getattr(parsed, "source", None))
    except (signing.Refused, xml.BadXML):
        pass
