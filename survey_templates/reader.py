"""The Template, and reading one: parsed TOML (or a snapshot) checked against the schema, every error with
the key path it is about. Each question is checked on its own, so `errors` can collect one error
per broken question (`templates check` lists them all); without it the first error is raised.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, NoReturn, cast

from survey_templates.schema import (
    CHOICE_KINDS,
    DEFAULT_TEXT_LENGTH,
    INDICATOR_RE,
    KEY_RE,
    KINDS,
    MAX_DESCRIPTION,
    MAX_TEXT_LENGTH,
    MAX_TITLE,
    NAME_RE,
    SCALE_POINTS,
    Condition,
    Kind,
    Option,
    Question,
    Row,
    TemplateError,
    drop_nulls,
    question_snapshot,
    scale_options,
)

_TEMPLATE_KEYS = ("name", "title", "description", "version", "questions")
_QUESTION_KEYS = (
    "key", "kind", "title", "required", "scored", "segment", "max_length", "max_choices", "options",
    "indicator", "rows", "show_if", "departments", "categories",
)  # fmt: skip
_OPTION_KEYS = ("key", "label", "score", "negative")
_ROW_KEYS = ("key", "label", "indicator")
_CONDITION_KEYS = ("question", "answers")
_ONLY_FOR_KIND = {"max_length": ("text",), "max_choices": ("multi",), "rows": ("matrix",)}
_SCORABLE = ("single", "scale", "matrix")


@dataclass(frozen=True, slots=True)
class Template:
    name: str
    title: str
    description: str
    version: int
    questions: tuple[Question, ...]

    @property
    def scored_questions(self) -> tuple[Question, ...]:
        return tuple(q for q in self.questions if q.scored)

    @property
    def segment_question(self) -> Question | None:
        return next((q for q in self.questions if q.segment), None)

    def question(self, key: str) -> Question | None:
        return next((q for q in self.questions if q.key == key), None)

    def to_snapshot(self) -> dict[str, Any]:
        """A JSON-able dict with every field spelled out (None where a field does not apply)."""
        return {
            "name": self.name,
            "title": self.title,
            "description": self.description,
            "version": self.version,
            "questions": [question_snapshot(q) for q in self.questions],
        }

    @classmethod
    def from_snapshot(cls, snapshot: Any) -> Template:
        """Rebuild (and re-validate) a template from to_snapshot()'s dict; errors name 'snapshot'."""
        return parse_template(drop_nulls(snapshot), "snapshot")


_MISSING: Any = object()


class _Table:
    """One table being read: knows its key path, rejects unknown keys, checks types."""

    __slots__ = ("data", "path", "source")

    def __init__(self, data: Any, path: str, source: str, allowed: tuple[str, ...]) -> None:
        self.path, self.source = path, source
        if not isinstance(data, dict):
            raise TemplateError(source, path, "must be a table")
        self.data: dict[str, Any] = data
        for key in data:
            if key not in allowed:
                self.fail(key, f"unknown key (expected one of: {', '.join(allowed)})")

    def fail(self, key: str, message: str) -> NoReturn:
        raise TemplateError(self.source, f"{self.path}.{key}" if self.path else key, message)

    def has(self, key: str) -> bool:
        return key in self.data

    def _get(self, key: str, default: Any) -> Any:
        if key not in self.data:
            if default is _MISSING:
                self.fail(key, "missing")
            return default
        return self.data[key]

    def boolean(self, key: str, default: bool) -> bool:
        value = self._get(key, default)
        if not isinstance(value, bool):
            self.fail(key, "must be true or false")
        return value

    def integer(self, key: str, low: int, high: int, default: Any = _MISSING) -> Any:
        value = self._get(key, default)
        if key in self.data and (type(value) is not int or not low <= value <= high):
            self.fail(key, f"must be an integer {low}..{high}")
        return value

    def text(self, key: str, limit: int, default: Any = _MISSING) -> str:
        value = self._get(key, default)
        if not isinstance(value, str):
            self.fail(key, "must be a string")
        if default is _MISSING and not value.strip():
            self.fail(key, "must not be empty")
        if len(value) > limit:
            self.fail(key, f"too long ({len(value)} characters, at most {limit})")
        return value

    def key(self, key: str, pattern: re.Pattern[str] = KEY_RE) -> str:
        value = self.text(key, 64)
        if not pattern.fullmatch(value):
            self.fail(key, f"{value!r} does not match {pattern.pattern}")
        return value

    def tables(self, key: str) -> list[Any]:
        value = self._get(key, _MISSING)
        if not isinstance(value, list):
            self.fail(key, "must be an array of tables")
        return value

    def strings(self, key: str, pattern: re.Pattern[str] | None = None) -> tuple[str, ...]:
        value = self._get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            self.fail(key, "must be an array of non-empty strings")
        if pattern is not None:
            bad = next((v for v in value if not pattern.fullmatch(v)), None)
            if bad is not None:
                self.fail(key, f"{bad!r} does not match {pattern.pattern}")
        return tuple(value)


def parse_template(data: Any, source: str, errors: list[TemplateError] | None = None) -> Template:
    """Validate parsed TOML (or a snapshot) and build the Template; source names it in errors.

    With `errors`, every question's first error is appended there and the first one raised at
    the end; without it the first error is raised at once.
    """
    t = _Table(data, "", source, _TEMPLATE_KEYS)
    name = t.key("name", NAME_RE)
    title = t.text("title", MAX_TITLE)
    description = t.text("description", MAX_DESCRIPTION, default="")
    version = cast(int, t.integer("version", 1, 1_000_000))
    items = t.tables("questions")
    if not items:
        t.fail("questions", "must not be empty")
    found: list[TemplateError] = [] if errors is None else errors
    questions: list[Question] = []
    seen: dict[str, str] = {}  # question and matrix-row keys -> where first used
    answerable: dict[str, Question] = {}  # keys a condition may name -> their choices
    segment_at: int | None = None
    for i, item in enumerate(items):
        path = f"questions[{i}]"
        try:
            q = _parse_question(item, path, source)
            _check_keys(q, path, source, seen)
            if q.show_if:
                _check_condition(q.show_if, answerable, f"{path}.show_if", source)
            if q.segment:
                if segment_at is not None:
                    raise TemplateError(
                        source,
                        f"{path}.segment",
                        f"only one segment question allowed per template (already questions[{segment_at}])",
                    )
                segment_at = i
        except TemplateError as exc:
            if errors is None:
                raise
            found.append(exc)
            continue
        if q.kind in CHOICE_KINDS:
            answerable[q.key] = q
        for row in q.rows:
            answerable[row.key] = q
        questions.append(q)
    if found:
        raise found[0]
    return Template(name, title, description, version, tuple(questions))


def _check_keys(q: Question, path: str, source: str, seen: dict[str, str]) -> None:
    """Question keys and matrix-row keys share one namespace: each is a form field and a SQL row."""
    keys = [(q.key, f"{path}.key")] + [(r.key, f"{path}.rows[{j}].key") for j, r in enumerate(q.rows)]
    for key, where in keys:
        if key in seen:
            first = seen[key]
            what = "row" if ".rows[" in where else "question"
            raise TemplateError(source, where, f"duplicate {what} key {key!r} (also {first})")
    for key, where in keys:
        seen[key] = where.rsplit(".key", 1)[0]


def _check_condition(cond: Condition, answerable: dict[str, Question], path: str, source: str) -> None:
    target = answerable.get(cond.question)
    if target is None:
        raise TemplateError(
            source,
            f"{path}.question",
            f"{cond.question!r} is not an earlier single, multi, scale or matrix-row question",
        )
    keys = {o.key for o in target.options}
    for j, answer in enumerate(cond.answers):
        if answer not in keys:
            raise TemplateError(
                source, f"{path}.answers[{j}]", f"{answer!r} is not an option of {cond.question!r}"
            )


def _parse_question(data: Any, path: str, source: str) -> Question:
    t = _Table(data, path, source, _QUESTION_KEYS)
    key = t.key("key")
    kind = t.text("kind", 10)
    if kind not in KINDS:
        t.fail("kind", f"must be one of {', '.join(KINDS)}")
    title = t.text("title", MAX_TITLE)
    required = t.boolean("required", kind != "text")
    scored = t.boolean("scored", False)
    segment = t.boolean("segment", False)
    if scored and kind not in _SCORABLE:
        t.fail("scored", "only a single-choice, scale or matrix question can be scored")
    if segment and kind != "single":
        t.fail("segment", "only a single-choice question can be the segment")
    if scored and segment:
        t.fail("segment", "a segment question cannot also be scored")
    for attr, only in _ONLY_FOR_KIND.items():
        if t.has(attr) and kind not in only:
            t.fail(attr, f"only allowed on a {only[0]} question")
    if t.has("indicator") and kind == "matrix":
        t.fail("indicator", "not allowed on a matrix: give each of its rows an indicator")
    indicator = t.key("indicator", INDICATOR_RE) if t.has("indicator") else None
    show_if = _parse_condition(t.data["show_if"], f"{path}.show_if", source) if t.has("show_if") else None
    if show_if and segment:
        t.fail("show_if", "the segment question is asked of everyone")
    extra: dict[str, Any] = {
        "indicator": indicator,
        "show_if": show_if,
        "departments": t.strings("departments"),
        "categories": t.strings("categories"),
    }
    if kind == "text":
        if t.data.get("options", []) != []:
            t.fail("options", "not allowed on a text question")
        max_length = t.integer("max_length", 1, MAX_TEXT_LENGTH, DEFAULT_TEXT_LENGTH)
        return Question(key, "text", title, required, max_length=max_length, **extra)
    if kind == "scale":
        if t.data.get("options", []) != []:
            t.fail("options", "not allowed on a scale question (its points are 0 to 10)")
        return Question(key, "scale", title, required, scored, options=scale_options(scored), **extra)
    options = _parse_options(t, path, source, kind, scored)
    rows: tuple[Row, ...] = ()
    if kind == "matrix":
        items = t.tables("rows")
        if not items:
            t.fail("rows", "a matrix question needs at least 1 row")
        rows = tuple(_parse_row(item, f"{path}.rows[{j}]", source) for j, item in enumerate(items))
    max_choices = t.integer("max_choices", 1, len(options), None) if kind == "multi" else None
    return Question(
        key,
        cast(Kind, kind),
        title,
        required,
        scored,
        segment,
        max_choices=max_choices,
        options=options,
        rows=rows,
        **extra,
    )


def _parse_options(t: _Table, path: str, source: str, kind: str, scored: bool) -> tuple[Option, ...]:
    items = t.tables("options")
    what = "matrix" if kind == "matrix" else f"{kind}-choice"
    if len(items) < 2:
        t.fail("options", f"a {what} question needs at least 2 options")
    options: list[Option] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(items):
        opath = f"{path}.options[{i}]"
        option = _parse_option(item, opath, source, scored)
        if option.key in seen:
            raise TemplateError(
                source,
                f"{opath}.key",
                f"duplicate option key {option.key!r} (also options[{seen[option.key]}])",
            )
        seen[option.key] = i
        options.append(option)
    return tuple(options)


def _parse_option(data: Any, path: str, source: str, scored: bool) -> Option:
    t = _Table(data, path, source, _OPTION_KEYS)
    key = t.key("key")
    label = t.text("label", MAX_TITLE)
    if scored and not t.has("score"):
        t.fail("score", "missing (required on every option of a scored question)")
    if not scored and t.has("score"):
        t.fail("score", "not allowed: the question is not scored")
    score = t.integer("score", 0, 100, None)
    return Option(key, label, score, t.boolean("negative", False))


def _parse_row(data: Any, path: str, source: str) -> Row:
    t = _Table(data, path, source, _ROW_KEYS)
    key = t.key("key")
    label = t.text("label", MAX_TITLE)
    indicator = t.key("indicator", INDICATOR_RE) if t.has("indicator") else None
    return Row(key, label, indicator)


def _parse_condition(data: Any, path: str, source: str) -> Condition:
    t = _Table(data, path, source, _CONDITION_KEYS)
    question = t.key("question")
    raw = t._get("answers", [])
    if not isinstance(raw, list) or not raw:
        t.fail("answers", "must be a non-empty array of option keys (or of 0..10 for a scale)")
    answers: list[str] = []
    for j, value in enumerate(raw):
        if type(value) is int and value in SCALE_POINTS:
            value = f"s{value}"  # a scale's point, written as its number
        if not isinstance(value, str) or not KEY_RE.fullmatch(value):
            raise TemplateError(source, f"{path}.answers[{j}]", "must be an option key or a number 0..10")
        answers.append(value)
    return Condition(question, tuple(answers))
