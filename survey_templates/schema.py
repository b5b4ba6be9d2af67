"""Schema of questionnaire templates: the frozen dataclasses a template is made of, and its snapshot.

Kinds: single, multi, text, scale (0-10, eleven generated options), matrix (several aspects rated
on one shared scale; each row is answered, stored and tallied as a single-choice question of its
own). Any question may carry an indicator code, a condition (`show_if`) and an audience
(`departments` / `categories`). The Template itself and its validation live in reader.py;
errors are TemplateError.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal["single", "multi", "text", "scale", "matrix"]
KINDS: tuple[Kind, ...] = ("single", "multi", "text", "scale", "matrix")
CHOICE_KINDS = ("single", "multi", "scale")  # kinds whose answers are options (a condition's target)
NAME_RE = re.compile(r"[a-z0-9_]{3,40}")
KEY_RE = re.compile(r"[a-z][a-z0-9_]{0,31}")
INDICATOR_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")
MAX_TITLE = 200
MAX_DESCRIPTION = 2000
MAX_TEXT_LENGTH = 2000
DEFAULT_TEXT_LENGTH = 500
SCALE_POINTS = range(11)  # 0..10
SCALE_DETRACTOR_MAX = 6  # 0-6 count as negative (and as detractors in the net score)


class TemplateError(ValueError):
    """A template that cannot be read or does not follow the schema.

    str() is one line: ``<file>: <key path>: <message>``; `line` is the TOML line the key path
    points at when the text is known (load_template), and located() puts it in front.
    """

    def __init__(self, source: str, path: str, message: str, line: int | None = None) -> None:
        self.source, self.path, self.message, self.line = source, path, message, line
        text = f"{source}: {path}: {message}" if path else f"{source}: {message}"
        super().__init__(" ".join(text.splitlines()))

    def located(self) -> str:
        """``<file>:<line>: <key path>: <message>`` (the line left out when unknown)."""
        where = f"{self.source}:{self.line}" if self.line else self.source
        rest = f"{self.path}: {self.message}" if self.path else self.message
        return " ".join(f"{where}: {rest}".splitlines())


@dataclass(frozen=True, slots=True)
class Option:
    key: str
    label: str
    score: int | None = None  # 0..100 on every option of a scored question, else None
    negative: bool = False  # a 差评 (negative rating)


@dataclass(frozen=True, slots=True)
class Row:
    """One aspect of a matrix question: answered and tallied as a question of its own."""

    key: str
    label: str
    indicator: str | None = None


@dataclass(frozen=True, slots=True)
class Condition:
    """Show the question only when the answer to `question` is one of `answers` (option keys)."""

    question: str
    answers: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Question:
    key: str
    kind: Kind
    title: str
    required: bool
    scored: bool = False  # feeds the satisfaction index (single, scale, matrix)
    segment: bool = False  # the respondent-type cross-tab dimension (single only)
    max_length: int | None = None  # text only
    max_choices: int | None = None  # multi only, optional
    options: tuple[Option, ...] = ()  # a matrix's shared scale; a scale's eleven points
    indicator: str | None = None  # the platform's indicator code (a matrix's rows carry their own)
    rows: tuple[Row, ...] = ()  # matrix only
    show_if: Condition | None = None
    departments: tuple[str, ...] = ()  # asked only of these departments (codes) ...
    categories: tuple[str, ...] = ()  # ... or of these categories; both empty: everyone

    def option(self, key: str) -> Option | None:
        return next((o for o in self.options if o.key == key), None)


def scale_options(scored: bool) -> tuple[Option, ...]:
    """The eleven points of a 0-10 scale: keys s0..s10, scores 0..100 when scored."""
    return tuple(
        Option(f"s{v}", str(v), v * 10 if scored else None, v <= SCALE_DETRACTOR_MAX) for v in SCALE_POINTS
    )


def question_snapshot(q: Question) -> dict[str, Any]:
    snap: dict[str, Any] = {
        "key": q.key,
        "kind": q.kind,
        "title": q.title,
        "required": q.required,
        "scored": q.scored,
        "segment": q.segment,
        "max_length": q.max_length,
        "max_choices": q.max_choices,
        "options": []
        if q.kind == "scale"  # generated again from the kind
        else [{"key": o.key, "label": o.label, "score": o.score, "negative": o.negative} for o in q.options],
    }
    # The newer keys only where they are used, so older snapshots stay exactly as they were.
    if q.indicator:
        snap["indicator"] = q.indicator
    if q.rows:
        snap["rows"] = [{"key": r.key, "label": r.label, "indicator": r.indicator} for r in q.rows]
    if q.show_if:
        snap["show_if"] = {"question": q.show_if.question, "answers": list(q.show_if.answers)}
    if q.departments:
        snap["departments"] = list(q.departments)
    if q.categories:
        snap["categories"] = list(q.categories)
    return snap


def drop_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [drop_nulls(v) for v in value]
    return value
