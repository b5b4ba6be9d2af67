"""Where a key path (``questions[2].options[1].score``) sits in a template's TOML text: the line a
`templates check` message points at. A plain scan of the headers and keys the schema allows, not a
second TOML parser: it finds the line of the deepest part of the path that is written down."""

from __future__ import annotations

import re

_PART = re.compile(r"([A-Za-z_]+)(?:\[(\d+)\])?")
_HEADER = re.compile(r"^\s*\[\[\s*([A-Za-z_.]+)\s*\]\]")
_KEY = re.compile(r"^\s*([A-Za-z_]+)\s*=")


def line_of(text: str, path: str) -> int | None:
    """The 1-based line of `path` in `text`, or None when not even its first part is written."""
    parts = [(m[1], int(m[2]) if m[2] is not None else None) for m in map(_PART.fullmatch, path.split("."))
             if m]  # fmt: skip
    lines = text.splitlines()
    start, end, best = 0, len(lines), None
    table = ""  # the array-of-tables header we are inside ("questions", "questions.options", ...)
    for name, index in parts:
        dotted = f"{table}.{name}" if table else name
        if index is not None:
            found = _nth_header(lines, start, end, dotted, index)
            if found is None:
                # an inline array (questions = [...], answers = [...]): its key's line
                found = _key_line(lines, start, end, name, table)
                return found + 1 if found is not None else best
            start, end = found, _block_end(lines, found + 1, end, dotted)
            best, table = found + 1, dotted
            continue
        found = _key_line(lines, start, end, name, table)
        if found is None:  # an array of tables: its first header
            found = _nth_header(lines, start, end, dotted, 0)
        return found + 1 if found is not None else best
    return best


def _nth_header(lines: list[str], start: int, end: int, dotted: str, index: int) -> int | None:
    seen = -1
    for i in range(start, end):
        m = _HEADER.match(lines[i])
        if m and m[1] == dotted:
            seen += 1
            if seen == index:
                return i
    return None


def _block_end(lines: list[str], start: int, end: int, dotted: str) -> int:
    """Where the table opened by a `[[dotted]]` header stops: the next header that is not nested in it."""
    for i in range(start, end):
        m = _HEADER.match(lines[i])
        if m and not m[1].startswith(dotted + "."):
            return i
    return end


def _key_line(lines: list[str], start: int, end: int, name: str, table: str) -> int | None:
    """A `name = ...` line of this table itself (not of a table nested in it)."""
    for i in range(start, end):
        m = _HEADER.match(lines[i])
        if m and i != start and m[1] != table:
            break  # a nested table starts: this table's own keys come before it
        k = _KEY.match(lines[i])
        if k and k[1] == name:
            return i
    return None
