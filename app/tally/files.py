"""Tables (tallies, the index) as JSON, CSV or XLSX bytes, for the API, the CLI, the console and exports.

Every download goes through here, so this is the one place that keeps spreadsheet formulas out:
a text cell that a spreadsheet would read as a formula (it starts with = + - @, a tab or a carriage
return, or their full-width forms) is written as an inert string: quote-prefixed text in XLSX,
prefixed with an apostrophe in CSV. Numbers stay numbers.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any

FORMATS = {
    "json": "application/json",
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
# What a spreadsheet takes for the start of a formula (OWASP's list, plus the full-width forms a
# Chinese input method types and some spreadsheets fold to ASCII).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n", "＝", "＋", "－", "＠")


def _cell(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return " ".join(str(v) for v in value)
    return value


def is_formula_like(value: Any) -> bool:
    """A text value a spreadsheet could run: it starts with one of FORMULA_STARTS."""
    return isinstance(value, str) and value.startswith(FORMULA_STARTS)


def _csv_cell(value: Any) -> Any:
    value = "" if value is None else _cell(value)
    return "'" + value if is_formula_like(value) else value


def csv_bytes(columns: Sequence[str], rows: Sequence[dict[str, Any]]) -> bytes:
    """UTF-8 with a BOM, so that Excel opens the Chinese names correctly."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([_csv_cell(c) for c in columns])
    for row in rows:
        writer.writerow([_csv_cell(row.get(c)) for c in columns])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def xlsx_bytes(columns: Sequence[str], rows: Sequence[dict[str, Any]], title: str = "tallies") -> bytes:
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell

    book = Workbook(write_only=True)
    sheet = book.create_sheet(title[:31] or "sheet")

    def inert(value: Any) -> Any:
        value = _cell(value)
        if not is_formula_like(value):
            return value
        cell = WriteOnlyCell(sheet, value=value)
        cell.data_type = "s"  # openpyxl would store a leading "=" as a formula
        cell.quotePrefix = True  # and Excel keeps it text when the cell is edited
        return cell

    sheet.append([inert(c) for c in columns])
    for row in rows:
        sheet.append([inert(row.get(c)) for c in columns])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def json_bytes(document: Any) -> bytes:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"), sort_keys=False).encode("utf-8")


def render(fmt: str, document: dict[str, Any], columns: Sequence[str], rows_key: str = "rows") -> bytes:
    """The document as JSON, or its rows as a CSV/XLSX table."""
    if fmt == "json":
        return json_bytes(document)
    if fmt == "csv":
        return csv_bytes(columns, document[rows_key])
    if fmt == "xlsx":
        return xlsx_bytes(columns, document[rows_key])
    raise ValueError(f"unknown format {fmt!r}")
