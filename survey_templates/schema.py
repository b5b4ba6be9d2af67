"""Schema of questionnaire templates: frozen dataclasses and the validator that builds them.

Every validation failure raises TemplateError whose str is one line:
``<file>: <key path>: <message>``, e.g. ``x.toml: questions[2].options[1].score: must be an
integer 0..100``. Array indexes in key paths count from 0.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal, NoReturn, cast

Kind = Literal["single", "multi", "text"]
KINDS: tuple[Kind, ...] = ("single", "multi", "text")
NAME_RE = re.compile(r"[a-z0-9_]{3,40}")
KEY_RE = re.compile(r"[a-z][a-z0-9_]{0,31}")
MAX_TITLE = 200
MAX_DESCRIPTION = 2000
MAX_TEXT_LENGTH = 2000
DEFAULT_TEXT_LENGTH = 500

_TEMPLATE_KEYS = ("name", "title", "description", "version", "questions")
_QUESTION_KEYS = (
    "key",
    "kind",
    "title",
    "required",
    "scored",
    "segment",
    "max_length",
    "max_choices",
    "options",
)
_OPTION_KEYS = ("key", "label", "score", "negative")
_ONLY_FOR_KIND = {"max_length": "text", "max_choices": "multi"}


class TemplateError(ValueError):
    """A template that cannot be read or does not follow the schema."""

    def __init__(self, source: str, path: str, message: str) -> None:
        self.source, self.path, self.message = source, path, message
        text = f"{source}: {path}: {message}" if path else f"{source}: {message}"
        super().__init__(" ".join(text.splitlines()))


@dataclass(frozen=True, slots=True)
class Option:
    key: str
    label: str
    score: int | None = None  # 0..100 on every option of a scored question, else None
    negative: bool = False  # a 差评 (negative rating)


@dataclass(frozen=True, slots=True)
class Question:
    key: str
    kind: Kind
    title: str
    required: bool
    scored: bool = False  # feeds the satisfaction index (single only)
    segment: bool = False  # the respondent-type cross-tab dimension (single only)
    max_length: int | None = None  # text only
    max_choices: int | None = None  # multi only, optional
    options: tuple[Option, ...] = ()

    def option(self, key: str) -> Option | None:
        return next((o for o in self.options if o.key == key), None)


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
            "questions": [
                {
                    "key": q.key,
                    "kind": q.kind,
                    "title": q.title,
                    "required": q.required,
                    "scored": q.scored,
                    "segment": q.segment,
                    "max_length": q.max_length,
                    "max_choices": q.max_choices,
                    "options": [
                        {"key": o.key, "label": o.label, "score": o.score, "negative": o.negative}
                        for o in q.options
                    ],
                }
                for q in self.questions
            ],
        }

    @classmethod
    def from_snapshot(cls, snapshot: Any) -> Template:
        """Rebuild (and re-validate) a template from to_snapshot()'s dict; errors name 'snapshot'."""
        return parse_template(_drop_nulls(snapshot), "snapshot")


def _drop_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value]
    return value


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


def parse_template(data: Any, source: str) -> Template:
    """Validate parsed TOML (or a snapshot) and build the Template; source names it in errors."""
    t = _Table(data, "", source, _TEMPLATE_KEYS)
    name = t.key("name", NAME_RE)
    title = t.text("title", MAX_TITLE)
    description = t.text("description", MAX_DESCRIPTION, default="")
    version = cast(int, t.integer("version", 1, 1_000_000))
    items = t.tables("questions")
    if not items:
        t.fail("questions", "must not be empty")
    questions: list[Question] = []
    seen: dict[str, int] = {}
    segment_at: int | None = None
    for i, item in enumerate(items):
        path = f"questions[{i}]"
        q = _parse_question(item, path, source)
        if q.key in seen:
            raise TemplateError(
                source, f"{path}.key", f"duplicate question key {q.key!r} (also questions[{seen[q.key]}])"
            )
        seen[q.key] = i
        if q.segment:
            if segment_at is not None:
                raise TemplateError(
                    source,
                    f"{path}.segment",
                    f"only one segment question allowed per template (already questions[{segment_at}])",
                )
            segment_at = i
        questions.append(q)
    return Template(name, title, description, version, tuple(questions))


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
    for flag, on, what in (("scored", scored, "be scored"), ("segment", segment, "be the segment")):
        if on and kind != "single":
            t.fail(flag, f"only a single-choice question can {what}")
    if scored and segment:
        t.fail("segment", "a segment question cannot also be scored")
    for attr, only in _ONLY_FOR_KIND.items():
        if t.has(attr) and kind != only:
            t.fail(attr, f"only allowed on a {only} question")
    if kind == "text":
        if t.data.get("options", []) != []:
            t.fail("options", "not allowed on a text question")
        max_length = t.integer("max_length", 1, MAX_TEXT_LENGTH, DEFAULT_TEXT_LENGTH)
        return Question(key, "text", title, required, max_length=max_length)
    items = t.tables("options")
    if len(items) < 2:
        t.fail("options", f"a {kind}-choice question needs at least 2 options")
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
    max_choices = t.integer("max_choices", 1, len(options), None) if kind == "multi" else None
    return Question(
        key,
        cast(Kind, kind),
        title,
        required,
        scored,
        segment,
        max_choices=max_choices,
        options=tuple(options),
    )


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
