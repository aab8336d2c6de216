"""The e-mail channel's mail handling without servers: what is cut from a reply
(Chinese and English clients), charsets, thread ids, loop detection, and the
reply it composes. The servers' side is tests/integration/test_email_channel.py."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC
from datetime import datetime
from email.message import EmailMessage
from types import SimpleNamespace

import pytest

from meiqia.channels.email.compose import build_reply
from meiqia.channels.email.compose import reply_subject
from meiqia.channels.email.parse import decode_header_text
from meiqia.channels.email.parse import html_to_text
from meiqia.channels.email.parse import parse
from meiqia.channels.email.quotes import strip_reply

OWN = {"support@shop.test"}

GMAIL_EN = """\
Still not here, please check again.

On Fri, Dec 4, 2026 at 10:00 AM Shop Support <support@shop.test>
wrote:

> Your parcel left the warehouse yesterday.
> Tracking: SF123
"""

GMAIL_ZH = """\
人工

在 2026年12月4日周五 10:00，客服 Support <support@shop.test> 写道：
> 您好，请问有什么可以帮您？
"""

NETEASE_163 = """\
好的，谢谢

在 2026-12-04 10:00:00，"客服 Support" <support@shop.test> 写道：
>您的订单已发货
"""

QQ_FOXMAIL = """\
订单号是 A1001



------------------&nbsp;原始邮件&nbsp;------------------
发件人: "客服 Support"<support@shop.test>;
发送时间: 2026年12月4日(星期五) 上午10:00
收件人: "张三"<zhang@qq.test>;
主题: Re: 退货

请提供订单号
""".replace("&nbsp;", " ")

FOXMAIL_BLOCK = """\
已收到

发件人：客服 Support
发送时间：2026-12-04 10:00
收件人：张三
主题：Re: 发票

发票已开具
"""

OUTLOOK_EN = """\
Thanks, that works.

________________________________
From: Shop Support <support@shop.test>
Sent: Friday, December 4, 2026 10:00 AM
To: Li Lei <lilei@corp.test>
Subject: RE: Invoice

The invoice is attached.
"""

OUTLOOK_ORIGINAL = """\
Please cancel it.

-----Original Message-----
From: Shop Support
Sent: Friday, December 4, 2026 10:00
Subject: Order

Your order is confirmed.
"""

SIGNATURE = "我想退货\n\n-- \n张三\n北京某某公司 | 电话 010-12345678\n"  # RFC 3676 "-- "

MOBILE = """\
好的

发自我的iPhone
"""


@pytest.mark.parametrize(("text", "kept", "gone"), [
    (GMAIL_EN, "Still not here, please check again.", "parcel"),
    (GMAIL_ZH, "人工", "有什么可以帮您"),
    (NETEASE_163, "好的，谢谢", "已发货"),
    (QQ_FOXMAIL, "订单号是 A1001", "请提供订单号"),
    (FOXMAIL_BLOCK, "已收到", "发票已开具"),
    (OUTLOOK_EN, "Thanks, that works.", "invoice is attached"),
    (OUTLOOK_ORIGINAL, "Please cancel it.", "confirmed"),
    (SIGNATURE, "我想退货", "电话"),
    (MOBILE, "好的", "iPhone"),
])
def test_quoted_replies_and_signatures_are_cut(text, kept, gone):
    stripped = strip_reply(text)
    assert stripped == kept
    assert gone not in stripped


def test_inline_answers_keep_the_answers_and_drop_the_quoted_lines():
    text = "> 您的订单号？\nA1001\n> 收货地址？\n北京市朝阳区\n"
    assert strip_reply(text) == "A1001\n北京市朝阳区"


def test_a_customer_writing_from_and_to_lines_is_not_taken_for_a_quote():
    text = "From: 北京\nTo: 上海\n运费多少？"
    assert strip_reply(text) == text


def test_a_reply_that_is_only_a_quote_is_kept_whole_rather_than_lost():
    text = "On Fri, Dec 4, 2026 at 10:00 AM Support <support@shop.test> wrote:\n> hello"
    assert strip_reply(text) == text


def mail(body: str | bytes = "你好", charset: str = "utf-8", **headers: str) -> bytes:
    """A raw mail as a client would send it (headers in raw UTF-8, RFC 6532)."""
    defaults = {"From": "张三 <Zhang.San@Customer.test>", "To": "support@shop.test",
                "Subject": "退货", "Message-ID": "<m1@customer.test>",
                "Date": "Fri, 04 Dec 2026 10:00:00 +0800"}
    defaults.update({k.replace("_", "-"): v for k, v in headers.items()})
    head = "".join(f"{k}: {v}\r\n" for k, v in defaults.items() if v is not None)
    data = body if isinstance(body, bytes) else body.encode(charset)
    return (head + f"MIME-Version: 1.0\r\nContent-Type: text/plain; charset={charset}\r\n"
            "Content-Transfer-Encoding: 8bit\r\n\r\n").encode("utf-8") + data


def test_sender_thread_ids_and_text():
    raw = mail(GMAIL_ZH, In_Reply_To="<r2@shop.test>",
               References="<m0@customer.test> <r1@shop.test>\r\n <r2@shop.test>")
    got = parse(raw, OWN)
    assert got.sender == "zhang.san@customer.test" and got.display_name == "张三"
    assert got.message_id == "<m1@customer.test>" and got.subject == "退货"
    assert got.in_reply_to == ["<r2@shop.test>", "<r1@shop.test>", "<m0@customer.test>"]
    assert got.text == "人工" and got.automatic is None


def test_a_mail_without_message_id_gets_a_stable_one():
    raw = mail("hi", **{"Message-ID": None})
    assert parse(raw).message_id == parse(raw).message_id
    assert parse(raw).message_id.endswith("@meiqia.invalid>")


def test_gb2312_labelled_text_with_gbk_only_characters_is_read_as_gb18030():
    body = "朱镕基和王喆的堃字".encode("gbk")
    got = parse(mail(body, charset="gb2312"))
    assert got.text == "朱镕基和王喆的堃字"


def test_unlabelled_gbk_text_is_guessed_and_utf8_is_utf8():
    assert parse(mail("我的快递还没到，已经等了一周了".encode("gb18030"), charset="unknown-8bit")
                 ).text == "我的快递还没到，已经等了一周了"
    assert parse(mail("发票抬头 ✓", charset="utf-8")).text == "发票抬头 ✓"


def test_a_few_bad_bytes_in_a_labelled_mail_garble_those_characters_only():
    """Dovecot hands out a NUL as 0x80: one bad byte in a mail that says utf-8 is
    one replacement character, not the whole mail guessed as another script."""
    body = "你好".encode() + b"\x80" + "发货快吗？订单 MQ123".encode()
    assert parse(mail(body, charset="utf-8")).text == "你好\ufffd发货快吗？订单 MQ123"
    # A mail labelled utf-8 that is really GBK is still read as GB18030.
    assert parse(mail("我的快递还没到".encode("gbk"), charset="utf-8")).text == "我的快递还没到"


def test_encoded_and_raw_8bit_headers_are_decoded():
    import base64

    subject = "=?gb2312?B?" + base64.b64encode("王喆的订单".encode("gbk")).decode() + "?="
    got = parse(mail("hi", Subject=subject, From="=?utf-8?B?" +
                     base64.b64encode("李雷".encode()).decode() + "?= <lilei@corp.test>"))
    assert got.subject == "王喆的订单" and got.display_name == "李雷"
    raw8 = mail("hi").replace(b"Subject: \xe9\x80\x80\xe8\xb4\xa7",
                              b"Subject: " + "退货 查询".encode("gbk"))
    assert parse(raw8).subject == "退货 查询"
    assert decode_header_text("=?utf-8?q?Re=3A_=E4=BD=A0=E5=A5=BD?=") == "Re: 你好"


def test_an_outlook_html_reply_drops_the_quoted_mail_after_its_header():
    """Outlook puts the quote's From/Sent/Subject lines in divRplyFwdMsg and the
    quoted text in the elements after it, not inside it."""
    html = ('<div>可以开发票吗？</div><hr style="display:inline-block;width:98%">'
            '<div id="divRplyFwdMsg" dir="ltr"><b>From:</b> 小美客服<br><b>Subject:</b> '
            'Re: 发票</div><div>QUOTED-OUTLOOK 以前的内容</div>')
    assert html_to_text(html) == "可以开发票吗？"


def test_html_only_mail_drops_the_quote_containers():
    html = ('<div dir="ltr">还没<b>收到</b><br>请尽快</div><div class="gmail_quote">'
            '<div>On Fri wrote:</div><blockquote>您好</blockquote></div>')
    assert html_to_text(html) == "还没收到\n请尽快"
    message = EmailMessage()
    message["From"] = "a@customer.test"
    message["Subject"] = "x"
    message["Message-ID"] = "<h@customer.test>"
    message.set_content(html, subtype="html")
    assert parse(message.as_bytes()).text == "还没收到\n请尽快"


def test_attachments_with_chinese_file_names():
    message = EmailMessage()
    message["From"] = "a@customer.test"
    message["Subject"] = "照片"
    message["Message-ID"] = "<p@customer.test>"
    message.set_content("见附件")
    message.add_attachment(b"\x89PNG\r\n\x1a\n" + b"0" * 20, maintype="image", subtype="png",
                           filename="破损照片.png")
    got = parse(message.as_bytes())
    assert got.text == "见附件"
    assert [(f.filename, f.content_type, f.data[:4]) for f in got.files] == [
        ("破损照片.png", "image/png", b"\x89PNG")]


@pytest.mark.parametrize(("headers", "reason"), [
    ({"Auto-Submitted": "auto-replied"}, "Auto-Submitted"),
    ({"X-Autoreply": "yes"}, "X-Autoreply"),
    ({"X-Autorespond": "1"}, "X-Autorespond"),
    ({"Precedence": "bulk"}, "Precedence"),
    ({"Precedence": "junk"}, "Precedence"),
    ({"Precedence": "list"}, "Precedence"),
    ({"From": "MAILER-DAEMON@mx.customer.test"}, "mail system"),
    ({"From": "postmaster@customer.test"}, "mail system"),
    ({"Return-Path": "<>"}, "bounce"),
    ({"X-Failed-Recipients": "x@customer.test"}, "bounce"),
    ({"From": "客服 <Support@Shop.test>"}, "own address"),
    ({"Reply-To": "support@shop.test"}, "own address"),
    ({"Subject": "自动回复: 退货"}, "auto-reply"),
    ({"Subject": "Out of Office: Re: invoice"}, "auto-reply"),
    ({"Subject": "系统退信"}, "bounce"),
])
def test_auto_replies_bounces_and_our_own_mail_are_not_answered(headers, reason):
    assert reason in (parse(mail("我在休假", **headers), OWN).automatic or "")


def test_auto_submitted_no_and_a_delivery_report():
    assert parse(mail("hi", Auto_Submitted="no"), OWN).automatic is None
    report = email.message_from_string(
        "From: a@customer.test\nSubject: x\nMIME-Version: 1.0\n"
        "Content-Type: multipart/report; report-type=delivery-status; boundary=b\n\n"
        "--b\nContent-Type: text/plain\n\nfailed\n--b--\n", policy=email.policy.compat32)
    assert "multipart/report" in parse(report.as_bytes(), OWN).automatic


def test_reply_subject_keeps_one_prefix():
    assert reply_subject("退货") == "Re: 退货"
    assert reply_subject("Re: RE: 退货") == "Re: 退货"
    assert reply_subject("回复：退货") == "Re: 退货"
    # No subject: one in the customer's language, never "在线客服 Support".
    assert reply_subject("") == "Re: 在线客服"
    assert reply_subject(None, "zh-CN") == "Re: 在线客服"
    assert reply_subject("  回复： ", "en") == "Re: Customer support"
    assert reply_subject("Re: 退货", "en") == "Re: 退货"  # his subject stays his


def reply(kind: str, **kw):
    defaults = dict(from_address="support@shop.test", from_name="客服 Support",
                    to_address="zhang@customer.test", to_name="张三", subject="退货",
                    body="您好，已为您处理", kind=kind, sender_name="李客服",
                    in_reply_to="<m2@customer.test>",
                    thread=["<m1@customer.test>", "<r1@shop.test>", "<m2@customer.test>"],
                    created_at=datetime(2026, 12, 4, 2, 0, tzinfo=UTC))
    defaults.update(kw)
    return build_reply(**defaults)


def test_the_mail_answered_is_last_in_references_even_with_later_mails_of_ours():
    """A second line of the bot to the same mail: the thread holds our first answer
    after his mail, and References listed it last (a full run of the e-mail test)."""
    sent = email.message_from_bytes(reply("bot", thread=[
        "<m1@customer.test>", "<r1@shop.test>", "<m2@customer.test>", "<r2@shop.test>"]
    ).as_bytes(), policy=email.policy.default)
    assert sent["In-Reply-To"] == "<m2@customer.test>"
    assert sent["References"].split() == ["<m1@customer.test>", "<r1@shop.test>",
                                          "<r2@shop.test>", "<m2@customer.test>"]


def test_a_reply_threads_on_the_visitors_mail():
    sent = email.message_from_bytes(reply("agent").as_bytes(), policy=email.policy.default)
    assert sent["In-Reply-To"] == "<m2@customer.test>"
    assert sent["References"].split() == ["<m1@customer.test>", "<r1@shop.test>",
                                          "<m2@customer.test>"]
    assert str(sent["Subject"]) == "Re: 退货"
    assert sent["Message-ID"].endswith("@shop.test>")
    assert sent["To"].addresses[0].addr_spec == "zhang@customer.test"
    assert "李客服" in str(sent["From"]) and sent["Auto-Submitted"] is None
    assert sent.get_content().strip() == "您好，已为您处理"


def test_ids_we_made_up_are_never_referred_to():
    """A mail without a Message-ID is stored under <hash@meiqia.invalid>; the answer
    said In-Reply-To/References with it (RFC 5322 §3.6.4: none when the parent has
    no Message-ID). Real ids of the thread stay, in order."""
    ours = "<d77ce2a1b3c4d5e6f708192a3b4c5d6e@meiqia.invalid>"
    alone = reply("bot", in_reply_to=ours, thread=[ours])
    assert alone["In-Reply-To"] is None and alone["References"] is None
    later = reply("bot", in_reply_to=ours,
                  thread=["<m1@customer.test>", "<r1@shop.test>", ours])
    assert later["In-Reply-To"] is None
    assert later["References"].split() == ["<m1@customer.test>", "<r1@shop.test>"]
    kept = reply("agent", in_reply_to="<m3@customer.test>",
                 thread=[ours, "<r1@shop.test>", "<m3@customer.test>"])
    assert kept["In-Reply-To"] == "<m3@customer.test>"
    assert kept["References"].split() == ["<r1@shop.test>", "<m3@customer.test>"]


def test_bot_and_system_replies_are_marked_automatic():
    for kind in ("bot", "system"):
        sent = reply(kind)
        assert sent["Auto-Submitted"] == "auto-replied"
        assert sent["X-Auto-Response-Suppress"] == "All"
        assert "李客服" not in str(sent["From"])


def test_outbound_files_are_attached_or_linked():
    files = [SimpleNamespace(filename="发票.pdf", content_type="application/pdf",
                             data=b"%PDF-1.4", url=None),
             SimpleNamespace(filename="big.zip", content_type="application/zip", data=b"",
                             url="https://shop.test/f/1")]
    sent = email.message_from_bytes(reply("agent", files=files).as_bytes(),
                                    policy=email.policy.default)
    attachments = list(sent.iter_attachments())
    assert [a.get_filename() for a in attachments] == ["发票.pdf"]
    assert "https://shop.test/f/1" in sent.get_body(("plain",)).get_content()


def test_long_threads_keep_the_first_and_latest_references():
    thread = [f"<m{i}@customer.test>" for i in range(40)]
    sent = reply("agent", thread=thread, in_reply_to="<m39@customer.test>")
    ids = sent["References"].split()
    assert len(ids) == 20 and ids[0] == "<m0@customer.test>" and ids[-1] == "<m39@customer.test>"


def test_long_message_ids_stay_message_ids_on_the_wire():
    """Outlook's Message-IDs are ~90 characters: longer than a header line. They were
    written as RFC 2047 encoded-words, which no client decodes in In-Reply-To or
    References (RFC 2047 forbids them there), so the answer left the customer's
    thread. Read raw (compat32 decodes nothing), the ids are as they were."""
    outlook = ("<TYZPR06MB6543A1B2C3D4E5F60718293A4B5C6D7E8F9A0@"
               "TYZPR06MB6543.apcprd06.prod.outlook.com>")
    gmail = ("<CAKx7Rz1q2W3e4R5t6Y7u8I9o0P-aSdFgHjKlZxCvBnM1q2W3e4R5t6Y7u8I9o0P"
             "@mail.gmail.com>")
    raw = reply("bot", in_reply_to=outlook, thread=[gmail, outlook] * 10).as_bytes()
    head = raw.split(b"\n\n", 1)[0].decode()
    assert "=?" not in "".join(line for line in head.splitlines()
                               if not line.startswith(("From:", "To:", "Subject:")))
    sent = email.message_from_bytes(raw, policy=email.policy.compat32)
    assert sent["In-Reply-To"].strip() == outlook
    assert sent["References"].split() == [gmail, outlook]
    assert max(len(line) for line in head.splitlines()) <= 998
