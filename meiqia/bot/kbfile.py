"""Knowledge-base files: YAML, CSV and XLSX in, the same three out (DESIGN §6).

YAML is a list of entries ``{id, questions, answer, category?, tags?}`` (the
first question is the standard one). CSV and XLSX have the columns
``id,question,answer`` (optional ``category``, ``tags``): rows sharing an id add
similar questions and the answer may be given once. Every problem is collected
with its line number and reported at once, so a file imports whole or not at all.
Spreadsheets saved by Excel in China are often GBK: the encoding is detected.
Written cells that look like formulas are neutralised (``meiqia.spreadsheets``)
and restored when read back, so a file round-trips.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

from meiqia.spreadsheets import restore

REQUIRED_COLUMNS = ("id", "question", "answer")
MAX_ERRORS_SHOWN = 20


@dataclass
class KBEntry:
    id: str
    questions: list[str]
    answer: str
    category: str = ""
    tags: list[str] = field(default_factory=list)
    enabled: bool = True
    #: Where the entry starts in its file (None: not from a file, or unknown), for
    #: the problems the importer finds in it (``services.knowledge.import_file``).
    line: int | None = field(default=None, compare=False, repr=False)


class KBFileError(ValueError):
    """The file has problems; ``errors`` lists every ``(line, message)`` pair.

    ``line`` and ``message`` are those of the first problem (``line`` is None
    for problems of the whole file), for callers that show one.
    """

    def __init__(self, path: str, errors: list[tuple[int | None, str]]) -> None:
        self.path = path
        self.errors = errors
        self.line, self.message = errors[0] if errors else (None, "invalid file")
        lines = [
            (f"line {line}: {message}" if line else message)
            for line, message in errors[:MAX_ERRORS_SHOWN]
        ]
        more = len(errors) - MAX_ERRORS_SHOWN
        if more > 0:
            lines.append(f"… and {more} more")
        super().__init__(f"{Path(path).name}: " + "; ".join(lines))


#: Encodings charset-normalizer may pick when neither UTF-8 nor GB18030 decodes:
#: Big5 (Taiwan, Hong Kong) and UTF-16/32 without a BOM. Western code pages are
#: left out on purpose: they decode any bytes and would import garbage.
FALLBACK_ENCODINGS = ["big5", "big5hkscs", "utf_16", "utf_32"]


def decode(raw: bytes, path: str) -> str:
    """UTF-8 (with or without BOM), UTF-16 with BOM, else GB18030 (a superset of
    GBK, what Excel in China saves), else Big5/UTF-16 detected by charset-normalizer.
    """
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return raw.decode("utf-16")
        except UnicodeDecodeError:
            pass
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    from charset_normalizer import from_bytes

    best = from_bytes(raw, cp_isolation=FALLBACK_ENCODINGS).best()
    if best is not None and best.encoding and best.chaos < 0.2:
        return str(best)
    raise KBFileError(
        path,
        [(None, "cannot read the text encoding: save the file as UTF-8 (or GBK)")],
    )


def _text(value: Any) -> Any:
    """A YAML value that stands for text, as text: a string trimmed, a number
    spelled out (``id: 12306``). Anything else (null, true, a list, a mapping) is
    left as it is, so the entry's checks refuse it as the API would
    (``questions[0]: expected string``) instead of storing ``"None"`` or a
    Python repr."""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


def _split_tags(value: Any) -> list[Any]:
    if isinstance(value, list):
        return [_text(v) for v in value if not isinstance(v, str) or v.strip()]
    if not value:
        return []
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        return value  # not text: the entry's checks refuse it
    text = str(value).replace("，", ",").replace("；", ",").replace(";", ",")
    return [part.strip() for part in text.split(",") if part.strip()]


def _from_rows(rows: list[tuple[int, dict[str, Any]]], path: str,
               columns: list[str]) -> list[KBEntry]:
    errors: list[tuple[int | None, str]] = []
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise KBFileError(
            path,
            [(1, f"missing column {', '.join(missing)} (the header needs id,question,answer)")],
        )
    entries: dict[str, KBEntry] = {}
    answer_line: dict[str, int] = {}
    for line, row in rows:
        key = str(row.get("id") or "").strip()
        question = " ".join(str(row.get("question") or "").split())
        answer = str(row.get("answer") or "").strip()
        if not key and not question and not answer:
            continue
        if not key:
            errors.append((line, "the id is empty"))
            continue
        if not question:
            errors.append((line, f"id {key}: the question is empty"))
            continue
        entry = entries.get(key)
        if entry is None:
            entry = entries[key] = KBEntry(id=key, questions=[], answer="", line=line)
        if question not in entry.questions:
            entry.questions.append(question)
        if answer:
            if entry.answer and entry.answer != answer:
                errors.append(
                    (line, f"id {key}: a different answer than on line {answer_line[key]}")
                )
            elif not entry.answer:
                entry.answer = answer
                answer_line[key] = line
        if row.get("category") and not entry.category:
            entry.category = str(row["category"]).strip()
        if row.get("tags"):
            entry.tags = sorted(set(entry.tags) | set(_split_tags(row["tags"])))
    for key, entry in entries.items():
        if not entry.answer:
            errors.append((None, f"id {key}: no answer on any of its rows"))
    if errors:
        raise KBFileError(path, errors)
    return list(entries.values())


def _read_csv(path: str) -> list[KBEntry]:
    text = decode(Path(path).read_bytes(), path)
    reader = csv.reader(io.StringIO(text))
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        raise KBFileError(path, [(None, "the file is empty")]) from None
    rows = []
    for index, values in enumerate(reader, start=2):
        rows.append((index, dict(zip(header, [restore(v) for v in values], strict=False))))
    return _from_rows(rows, path, header)


def _read_xlsx(path: str) -> list[KBEntry]:
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable workbook
        # Not the reader's own words: they name library internals and paths.
        raise KBFileError(path, [(None, "not a readable XLSX file (save it again from "
                                        "Excel or WPS as .xlsx)")]) from exc
    sheet = workbook.worksheets[0]
    values = sheet.iter_rows(values_only=True)
    try:
        header = [str(h or "").strip().lower() for h in next(values)]
    except StopIteration:
        raise KBFileError(path, [(None, "the sheet is empty")]) from None
    rows = []
    for index, cells in enumerate(values, start=2):
        rows.append((index, dict(zip(header, ["" if c is None else restore(c) for c in cells],
                                     strict=False))))
    workbook.close()
    return _from_rows(rows, path, header)


def _read_yaml(path: str) -> list[KBEntry]:
    import yaml

    text = decode(Path(path).read_bytes(), path)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        # Our words, never the parser's ("expected the node content, but found
        # '<stream end>'", "could not determine a constructor for the tag …").
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = getattr(mark, "line", None)
        if isinstance(exc, yaml.constructor.ConstructorError):
            message = "not valid YAML: a tag (!!…) that is not plain text, numbers or lists"
        else:
            message = "not valid YAML: check the indentation, quotes and colons"
        raise KBFileError(path, [(line + 1 if isinstance(line, int) else None,
                                  message)]) from None
    if not isinstance(data, list):
        raise KBFileError(path, [(1, "expected a list of entries")])
    lines = _yaml_item_lines(text)
    errors: list[tuple[int | None, str]] = []
    entries: list[KBEntry] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(data):
        line = lines[index] if index < len(lines) else None
        if not isinstance(item, dict):
            errors.append((line, "an entry must be a mapping with id, questions, answer"))
            continue
        key = _text(item.get("id"))
        questions = item.get("questions")
        if not isinstance(questions, list):
            questions = [] if questions is None else [questions]
        answer = _text(item.get("answer"))
        if key is None or key == "":
            errors.append((line, "the id is empty"))
            continue
        if isinstance(key, str):
            if key in seen:
                errors.append((line, f"id {key} repeats the entry of line {seen[key]}"))
                continue
            seen[key] = line or 0
        # Text is tidied (spaces collapsed, repeats dropped); anything else is kept
        # for the entry's checks to refuse.
        clean = [" ".join(q.split()) if isinstance(q, str) else _text(q) for q in questions
                 if not isinstance(q, str) or q.strip()]
        if not clean:
            errors.append((line, f"id {key}: no questions"))
            continue
        if answer is None or answer == "":
            errors.append((line, f"id {key}: no answer"))
            continue
        category = _text(item.get("category"))
        entries.append(KBEntry(
            id=key, questions=_unique(clean), answer=answer,
            category="" if category is None else category,
            tags=_split_tags(item.get("tags")),
            enabled=item.get("enabled", True), line=line,
        ))
    if errors:
        raise KBFileError(path, errors)
    return entries


def _unique(values: list[Any]) -> list[Any]:
    """``values`` without repeats, first kept (unhashable ones kept as they are)."""
    seen: set[Any] = set()
    out = []
    for value in values:
        if isinstance(value, str):
            if value in seen:
                continue
            seen.add(value)
        out.append(value)
    return out


def _yaml_item_lines(text: str) -> list[int]:
    """Line numbers of the top-level list items, for error messages."""
    return [n for n, line in enumerate(text.splitlines(), start=1) if line.startswith("- ")]


def load_kb(path: str | Path) -> list[KBEntry]:
    """Read a KB file by its ending; raise KBFileError naming every problem."""
    path = str(path)
    suffix = Path(path).suffix.lower()
    if suffix in {".yaml", ".yml"}:
        entries = _read_yaml(path)
    elif suffix == ".csv":
        entries = _read_csv(path)
    elif suffix == ".xlsx":
        entries = _read_xlsx(path)
    else:
        raise KBFileError(path, [(None, "unknown format: use .yaml, .csv or .xlsx")])
    if not entries:
        raise KBFileError(path, [(None, "no entries in the file")])
    return entries


def _rows(entries: list[KBEntry]) -> list[list[str]]:
    rows = []
    for entry in entries:
        for index, question in enumerate(entry.questions):
            first = index == 0
            rows.append([
                entry.id, question, entry.answer if first else "",
                entry.category if first else "", ",".join(entry.tags) if first else "",
            ])
    return rows


HEADER = ["id", "question", "answer", "category", "tags"]


def write_csv(entries: list[KBEntry], path: str | Path) -> None:
    """CSV with formula-like cells neutralised (an entry may be a visitor's question)."""
    from meiqia.spreadsheets import csv_writer

    # utf-8-sig so Excel opens Chinese text correctly.
    with open(path, "w", encoding="utf-8-sig", newline="") as fh:
        writer = csv_writer(fh)
        writer.writerow(HEADER)
        writer.writerows(_rows(entries))


def write_xlsx(entries: list[KBEntry], path: str | Path) -> None:
    """XLSX of string cells, formula-like ones neutralised; control characters XML
    cannot hold are dropped (an entry typed with one must still export)."""
    from openpyxl import Workbook

    from meiqia.spreadsheets import xlsx_cells

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("knowledge")
    sheet.append(HEADER)
    for row in _rows(entries):
        sheet.append(xlsx_cells(sheet, row))
    workbook.save(path)


def write_yaml(entries: list[KBEntry], path: str | Path) -> None:
    import yaml

    data = []
    for entry in entries:
        item: dict[str, Any] = {"id": entry.id, "questions": entry.questions,
                                "answer": entry.answer}
        if entry.category:
            item["category"] = entry.category
        if entry.tags:
            item["tags"] = entry.tags
        if not entry.enabled:
            item["enabled"] = False
        data.append(item)
    with open(path, "w", encoding="utf-8") as fh:
        yaml.safe_dump(data, fh, allow_unicode=True, sort_keys=False, width=100)
