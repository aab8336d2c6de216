"""POST /api/v1/knowledge/import refuses what POST /api/v1/knowledge refuses.

Every entry of a YAML, CSV or XLSX file passes the API's checks (types, lengths,
counts, the id's format, no NUL); a file with a bad entry lands nothing and names
the line, in the reader's language. A file YAML cannot read is told in our words,
never the parser's.
"""

from __future__ import annotations

import io

import pytest

from meiqia.models import KnowledgeEntry

ZH = {"Accept-Language": "zh-CN"}


def _import(api, content: bytes | str, name: str, headers=None):
    raw = content.encode("utf-8") if isinstance(content, str) else content
    return api.post("/api/v1/knowledge/import", data={"file": (io.BytesIO(raw), name)},
                    content_type="multipart/form-data", headers=headers or {})


def _refused(response) -> dict:
    assert response.status_code == 422, response.get_json()
    error = response.get_json()["error"]
    assert error["field"] == "file"
    return error


def test_yaml_values_the_api_refuses_are_refused_by_line(api):
    yaml_text = ("- id: ok-entry\n  questions: [好的]\n  answer: 好\n"
                 "- {id: 中文 id, questions: [问], answer: 答}\n"
                 "- {id: nul, questions: [null, \"a\\0b\"], answer: 答}\n"
                 "- {id: none-q, questions: [null, 好], answer: 答}\n"
                 "- {id: list-answer, questions: [问], answer: [答]}\n"
                 "- {id: dict-cat, questions: [问], answer: 答, category: {a: 1}}\n"
                 "- {id: maybe, questions: [问], answer: 答, enabled: 也许}\n")
    en = _refused(_import(api, yaml_text, "kb.yaml"))["message"]
    assert en == ("file: kb.yaml: line 4: key: has the wrong format; "
                  "line 5: id nul: questions[1]: contains a NUL character or a lone "
                  "surrogate, which is not text; "
                  "line 6: id none-q: questions[0]: expected string; "
                  "line 7: id list-answer: answer: expected string; "
                  "line 8: id dict-cat: category: expected string; "
                  "line 9: id maybe: enabled: expected boolean")
    zh = _refused(_import(api, yaml_text, "kb.yaml", ZH))
    assert zh["message"] == ("文件：kb.yaml：第 4 行：问答 ID：格式不正确；"
                             "第 5 行：id nul：问题（第 2 项）：包含 NUL 字符或不成对的代理字符，不是有效的文本；"
                             "第 6 行：id none-q：问题（第 1 项）：应为文本；"
                             "第 7 行：id list-answer：答案：应为文本；"
                             "第 8 行：id dict-cat：分类：应为文本；"
                             "第 9 行：id maybe：启用：应为布尔值")
    assert zh["message_en"] == en
    assert KnowledgeEntry.select().count() == 0  # all or nothing


def test_the_example_entry_of_the_report_is_refused(api):
    yaml_text = '- {id: 中文 id, questions: [null, "a\\0b"], answer: [答], category: {a: 1}, enabled: 也许}\n'
    error = _refused(_import(api, yaml_text, "kb.yaml", ZH))
    assert error["message"] == "文件：kb.yaml：第 1 行：问答 ID：格式不正确"
    assert KnowledgeEntry.select().count() == 0


@pytest.mark.parametrize(("row", "problem"), [
    ("long-q,{q},答", "id long-q: questions[0]: at most 500 characters"),
    ("long-a,问,{a}", "id long-a: answer: at most 5000 characters (the longest chat message)"),
    ("long-c,问,答,{c}", "id long-c: category: at most 80 characters"),
    ("中文 id,问,答", "key: has the wrong format"),
])
def test_csv_limits_are_the_apis(api, row, problem):
    row = row.format(q="问" * 501, a="答" * 5001, c="类" * 81)
    text = "id,question,answer,category\nfine,好的,好\n" + row + "\n"
    error = _refused(_import(api, text, "kb.csv"))
    assert error["message"] == f"file: kb.csv: line 3: {problem}"
    assert KnowledgeEntry.select().count() == 0


def test_more_questions_than_the_api_takes(api):
    rows = "".join(f"many,问题{n},{'答' if n == 0 else ''}\n" for n in range(101))
    error = _refused(_import(api, "id,question,answer\n" + rows, "kb.csv", ZH))
    assert error["message"] == "文件：kb.csv：第 2 行：id many：问题：最多 100 项"
    yaml_text = "- id: many\n  answer: 答\n  questions:\n" + "".join(
        f"  - 问题{n}\n" for n in range(200))
    error = _refused(_import(api, yaml_text, "kb.yaml"))
    assert error["message"] == "file: kb.yaml: line 1: id many: questions: at most 100 items"
    assert KnowledgeEntry.select().count() == 0


def test_xlsx_rows_pass_the_same_checks(api, tmp_path):
    from openpyxl import Workbook

    workbook = Workbook()
    sheet = workbook.active
    sheet.append(["id", "question", "answer"])
    sheet.append(["fine", "好的", "好"])
    sheet.append(["long-a", "问", "答" * 5001])
    path = tmp_path / "kb.xlsx"
    workbook.save(path)
    error = _refused(_import(api, path.read_bytes(), "kb.xlsx"))
    assert error["message"] == ("file: kb.xlsx: line 3: id long-a: answer: at most 5000 "
                                "characters (the longest chat message)")
    zh = _refused(_import(api, path.read_bytes(), "kb.xlsx", ZH))["message"]
    assert zh == "文件：kb.xlsx：第 3 行：id long-a：答案：最多 5000 个字符（一条聊天消息的上限）"
    assert KnowledgeEntry.select().count() == 0


def test_limits_the_api_accepts_import(api):
    text = ("id,question,answer,category\n"
            f"edge,{'问' * 500},{'答' * 5000},{'类' * 80}\n"
            "edge,问题二,,\n"
            "year,12306,答,\n")
    response = _import(api, text, "kb.csv")
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["created"] == 2
    yaml_text = "- {id: 12306, questions: [12306, 火车票], answer: 2024, enabled: false}\n"
    assert _import(api, yaml_text, "kb.yaml").status_code == 200
    entry = KnowledgeEntry.get(KnowledgeEntry.key == "12306")
    assert (entry.questions, entry.answer, entry.enabled) == (["12306", "火车票"], "2024", False)


@pytest.mark.parametrize(("yaml_text", "en", "zh"), [
    ("- id: a\n  questions: [问\n", "file: kb.yaml: line 3: not valid YAML: check the "
     "indentation, quotes and colons", "文件：kb.yaml：第 3 行：不是有效的 YAML：请检查缩进、引号和冒号"),
    ("- !!python/object:os.system {}\n", "file: kb.yaml: line 1: not valid YAML: a tag (!!…) "
     "that is not plain text, numbers or lists",
     "文件：kb.yaml：第 1 行：不是有效的 YAML：含有不是普通文本、数字或列表的标签（!!…）"),
])
def test_bad_yaml_is_told_in_our_words(api, yaml_text, en, zh):
    english = _refused(_import(api, yaml_text, "kb.yaml"))["message"]
    assert english == en
    chinese = _refused(_import(api, yaml_text, "kb.yaml", ZH))["message"]
    assert chinese == zh
    for message in (english, chinese):
        for internal in ("expected", "constructor", "tag:yaml.org", "<stream end>", "flow"):
            assert internal not in message.replace("expected a list", "")
