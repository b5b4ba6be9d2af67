"""Tables (tallies, the index) as JSON, CSV or XLSX bytes, for the API, the CLI and exports."""

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


def _cell(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return " ".join(str(v) for v in value)
    return value


def csv_bytes(columns: Sequence[str], rows: Sequence[dict[str, Any]]) -> bytes:
    """UTF-8 with a BOM, so that Excel opens the Chinese names correctly."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if row.get(c) is None else _cell(row.get(c)) for c in columns])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def xlsx_bytes(columns: Sequence[str], rows: Sequence[dict[str, Any]], title: str = "tallies") -> bytes:
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    sheet = book.create_sheet(title[:31] or "sheet")
    sheet.append(list(columns))
    for row in rows:
        sheet.append([_cell(row.get(c)) for c in columns])
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
