"""KB files: YAML, CSV, XLSX and GBK in; errors with line numbers; all or nothing."""

from __future__ import annotations

import pytest

from meiqia.bot.kbfile import KBEntry
from meiqia.bot.kbfile import KBFileError
from meiqia.bot.kbfile import load_kb
from meiqia.bot.kbfile import write_csv
from meiqia.bot.kbfile import write_xlsx
from meiqia.bot.kbfile import write_yaml
from tests.bot.kbdata import ZH

CSV_TEXT = (
    "id,question,answer,category\n"
    "refund-time,退款多久到账？,仓库收货后 1-3 个工作日原路退回。,售后\n"
    "refund-time,钱多久能退回来,,\n"
    "ship-fee,运费怎么算？,满 99 元包邮。,物流\n"
)


def test_yaml_entries_load(tmp_path):
    path = tmp_path / "kb.yaml"
    path.write_text(
        "- id: refund-time\n"
        "  questions: [退款多久到账？, 钱多久能退回来]\n"
        "  answer: 仓库收货后 1-3 个工作日原路退回。\n"
        "  category: 售后\n"
        "  tags: [退款, 售后]\n"
        "- id: ship-fee\n"
        "  questions: 运费怎么算？\n"
        "  answer: 满 99 元包邮。\n",
        encoding="utf-8",
    )
    entries = load_kb(path)
    assert entries == [
        KBEntry("refund-time", ["退款多久到账？", "钱多久能退回来"],
                "仓库收货后 1-3 个工作日原路退回。", "售后", ["退款", "售后"]),
        KBEntry("ship-fee", ["运费怎么算？"], "满 99 元包邮。"),
    ]


def test_csv_rows_sharing_an_id_add_similar_questions(tmp_path):
    path = tmp_path / "kb.csv"
    path.write_text(CSV_TEXT, encoding="utf-8")
    entries = load_kb(path)
    assert entries[0] == KBEntry("refund-time", ["退款多久到账？", "钱多久能退回来"],
                                 "仓库收货后 1-3 个工作日原路退回。", "售后")
    assert entries[1].questions == ["运费怎么算？"]


def test_gbk_csv_is_read(tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes(CSV_TEXT.encode("gbk"))
    assert load_kb(path)[0].questions[1] == "钱多久能退回来"


def test_undecodable_file_is_explained(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_bytes(b"id,question,answer\n" + bytes(range(128, 256)) * 3)
    with pytest.raises(KBFileError, match="encoding: save the file as UTF-8") as info:
        load_kb(path)
    assert info.value.line is None


def test_missing_column_names_it(tmp_path):
    path = tmp_path / "kb.csv"
    path.write_text("id,question\nx,退款\n", encoding="utf-8")
    with pytest.raises(KBFileError, match="line 1: missing column answer"):
        load_kb(path)


def test_conflicting_answers_name_both_lines_and_every_problem_is_listed(tmp_path):
    path = tmp_path / "kb.csv"
    path.write_text(
        "id,question,answer\n"
        "a,问题一,答案一\n"
        "a,问题二,另一个答案\n"
        ",没有编号,答案\n"
        "b,,答案\n",
        encoding="utf-8",
    )
    with pytest.raises(KBFileError) as info:
        load_kb(path)
    message = str(info.value)
    assert "line 3: id a: a different answer than on line 2" in message
    assert "line 4: the id is empty" in message
    assert "line 5: id b: the question is empty" in message


def test_yaml_duplicate_ids_and_missing_answers(tmp_path):
    path = tmp_path / "kb.yaml"
    path.write_text(
        "- id: a\n  questions: [退款]\n  answer: 好的\n"
        "- id: a\n  questions: [退货]\n  answer: 好\n"
        "- id: c\n  questions: [发票]\n",
        encoding="utf-8",
    )
    with pytest.raises(KBFileError) as info:
        load_kb(path)
    assert "line 4: id a repeats the entry of line 1" in str(info.value)
    assert "line 7: id c: no answer" in str(info.value)


@pytest.mark.parametrize("writer,suffix", [(write_yaml, ".yaml"), (write_csv, ".csv"),
                                            (write_xlsx, ".xlsx")])
def test_round_trip_in_every_format(tmp_path, writer, suffix):
    entries = ZH[:5] + [KBEntry("x", ["逗号,引号\"和换行"], "多行\n答案", "", ["a", "b"])]
    path = tmp_path / f"kb{suffix}"
    writer(entries, path)
    again = load_kb(path)
    assert again == entries


def test_utf8_bom_csv_is_read(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes(CSV_TEXT.encode("utf-8-sig"))
    assert load_kb(path)[0].id == "refund-time"  # the BOM does not stick to "id"


def test_missing_column_in_xlsx_names_it(tmp_path):
    from openpyxl import Workbook

    workbook = Workbook()
    workbook.active.append(["id", "answer"])
    workbook.active.append(["a", "好的"])
    path = tmp_path / "kb.xlsx"
    workbook.save(path)
    with pytest.raises(KBFileError, match="missing column question") as info:
        load_kb(path)
    assert info.value.line == 1


def test_xlsx_conflicting_answers_name_both_lines(tmp_path):
    from openpyxl import Workbook

    workbook = Workbook()
    for row in (["id", "question", "answer"], ["a", "退款多久", "三天"], ["b", "运费", "包邮"],
                ["a", "钱几天到", "五天"]):
        workbook.active.append(row)
    path = tmp_path / "kb.xlsx"
    workbook.save(path)
    with pytest.raises(KBFileError) as info:
        load_kb(path)
    assert info.value.line == 4
    assert "line 4: id a: a different answer than on line 2" in str(info.value)


def test_error_means_nothing_is_returned(tmp_path):
    """One bad row among good ones: the whole file is refused, every error listed."""
    rows = "".join(f"e{i},问题{i},答案{i}\n" for i in range(50))
    path = tmp_path / "kb.csv"
    path.write_text("id,question,answer\n" + rows + "e3,问题x,另一个答案\n,孤儿问题,答案\n",
                    encoding="utf-8")
    with pytest.raises(KBFileError) as info:
        load_kb(path)
    assert [line for line, _ in info.value.errors] == [52, 53]
    assert info.value.line == 52 and "line 5" in info.value.message


def test_unknown_format_and_empty_file(tmp_path):
    with pytest.raises(KBFileError, match="unknown format"):
        load_kb(tmp_path / "kb.txt")
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    with pytest.raises(KBFileError, match="empty"):
        load_kb(empty)
