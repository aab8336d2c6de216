"""Links and images of the widget's rich-text subset, written out as plain text
for channels (meiqia/services/rich_text.py), in Chinese first."""

from __future__ import annotations

import pytest

from meiqia.services.rich_text import plain_text


@pytest.mark.parametrize(("written", "lang", "sent"), [
    ("详细步骤见[退货指南](https://example.com/help/returns)。", "zh-CN",
     "详细步骤见退货指南（https://example.com/help/returns）。"),
    ("See [the guide](https://example.com/help) first.", "en",
     "See the guide (https://example.com/help) first."),
    ("![退货流程](https://cdn.example.com/steps.png)", "zh-CN",
     "[图片：退货流程] https://cdn.example.com/steps.png"),
    ("![steps](https://cdn.example.com/steps.png)", "en",
     "[image: steps] https://cdn.example.com/steps.png"),
    # Site-relative: nothing outside the site can open it; the words stay.
    ("流程如图：![退货流程](/static/demo/return-steps.png)", "zh-CN", "流程如图：[图片：退货流程]"),
    ("请看[帮助中心](/help)", "zh-CN", "请看帮助中心"),
    ("![](/static/demo/a.png)", "zh-CN", "[图片]"),
    # A link whose label is its address is written once.
    ("[https://example.com](https://example.com)", "zh-CN", "https://example.com"),
    # What the widget would not follow stays exactly as written.
    ("[点我](javascript:alert(1))", "zh-CN", "[点我](javascript:alert(1))"),
    ("[邮件](mailto:a@example.com)", "zh-CN", "[邮件](mailto:a@example.com)"),
    ("[x](//evil.example/a)", "zh-CN", "[x](//evil.example/a)"),
    # Plain text, bare addresses and brackets that are no link are untouched.
    ("您好，退款一般3个工作日到账。", "zh-CN", "您好，退款一般3个工作日到账。"),
    ("官网 https://example.com/退款 可查", "zh-CN", "官网 https://example.com/退款 可查"),
    ("订单号[MQ123]已发货", "zh-CN", "订单号[MQ123]已发货"),
])
def test_links_and_images_are_written_out(written: str, lang: str, sent: str) -> None:
    assert plain_text(written, lang) == sent
