"""The bot's links and images are written out as plain text wherever a transcript
leaves the pages as text: an export (CSV, XLSX), a ticket's prefilled content, and the
transcript a ticket sink sends (webhook, e-mail). One function does it
(``rich_text.plain_text``, as for channels), in the reader's language.

Found from outside (zh-CN team, t41_export_en.py / t44_ticket_md.py): the export and the
ticket showed ``…订单详情下载。![申请发票入口](/static/demo/invoice-entry.png)`` and
``详细步骤见[退货指南](https://example.com/help/returns)。![退货流程](…)``.
"""

from __future__ import annotations

from meiqia.services.rich_text import plain_text
from meiqia.services.ticket_payload import payload_for
from tests.api.test_exports import KEYS
from tests.api.test_exports import T0
from tests.api.test_exports import read_export
from tests.factories import make_conversation
from tests.factories import make_visitor

RETURNS = ("详细步骤见[退货指南](https://example.com/help/returns)。"
           "![退货流程](/static/demo/return-steps.png)（如有疑问请随时联系）")
INVOICE = "在“我的订单”里可以申请发票，订单详情下载。![申请发票入口](/static/demo/invoice-entry.png)"
#: What a visitor typed stays as he typed it: it was never drawn as a link either.
TYPED = "我看到[这个](https://example.com/x)"


def _chat(api, **fields):
    team = api.team["id"]
    return make_conversation(team, make_visitor(team, name="王女士"), handler=api.agent["id"],
                             messages=[("visitor", TYPED, 0), ("bot", INVOICE, 2),
                                       ("agent", RETURNS, 30)], **fields)


def _assert_written_out(text: str, lang: str) -> None:
    assert "](" not in text.replace(TYPED, ""), text
    assert "![" not in text, text
    if lang == "en":
        assert "订单详情下载。[image: 申请发票入口] /static/demo/invoice-entry.png" in text
        assert "详细步骤见退货指南 (https://example.com/help/returns)。" \
               "[image: 退货流程] /static/demo/return-steps.png（如有疑问请随时联系）" in text
    else:
        assert "订单详情下载。[图片：申请发票入口] /static/demo/invoice-entry.png" in text
        assert "详细步骤见退货指南（https://example.com/help/returns）。" \
               "[图片：退货流程] /static/demo/return-steps.png（如有疑问请随时联系）" in text
    assert TYPED in text


def test_exports_write_links_and_images_as_text_in_the_readers_language(api):
    chat = _chat(api, ended_at=T0)
    for fmt, lang in (("csv", "zh-CN"), ("xlsx", "en")):
        if lang == "en":
            assert api.get("/lang/en").status_code == 302  # his setting: English
        export = api.post("/api/v1/history/exports", json={
            "format": fmt, "with_content": True}).get_json()
        assert export["status"] == "done", export
        rows = read_export(api, export["id"], fmt)
        row = dict(zip(KEYS + ["messages"], rows[1], strict=True))
        assert row["id"] == str(chat.id)
        _assert_written_out(row["messages"], lang)


def test_a_tickets_prefill_and_its_sinks_transcript_are_plain_text(api):
    chat = _chat(api)
    created = api.post("/api/v1/tickets", json={"conversation_id": chat.id})
    assert created.status_code == 201, created.get_json()
    ticket = api.get(f"/api/v1/tickets/{created.get_json()['id']}").get_json()
    _assert_written_out(ticket["content"], "zh-CN")
    # The page gets the transcript's messages as written: it draws them (rich-text.js).
    assert [m["body"] for m in ticket["transcript"]] == [TYPED, INVOICE, RETURNS]

    from meiqia.models import Ticket

    sent = payload_for(Ticket.get_by_id(ticket["id"]), "created", {})
    _assert_written_out(sent["ticket"]["transcript"], "zh-CN")


def test_site_relative_addresses_stay_for_the_teams_readers_only():
    written = "流程如图：![退货流程](/static/demo/return-steps.png)，见[帮助](/help)"
    assert plain_text(written, "zh-CN") == "流程如图：[图片：退货流程]，见帮助"  # a channel
    assert plain_text(written, "zh-CN", paths=True) == \
        "流程如图：[图片：退货流程] /static/demo/return-steps.png，见帮助（/help）"
    assert plain_text("[x](javascript:alert(1))", "en", paths=True) == "[x](javascript:alert(1))"
