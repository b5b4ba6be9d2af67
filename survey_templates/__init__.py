# Questionnaire templates: TOML data files in this directory, their schema (schema.py) and
# loader. Pure Python, stdlib only; must not import `app`. Surveys store to_snapshot() so a
# later template edit never changes a running survey.
from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path

from .lines import line_of
from .reader import Template, parse_template
from .schema import Condition, Option, Question, Row, TemplateError, scale_options

__all__ = [
    "Condition",
    "Option",
    "Question",
    "Row",
    "Template",
    "TemplateError",
    "builtin_dir",
    "load_builtin",
    "load_directory",
    "load_template",
    "scale_options",
    "template_errors",
]


def builtin_dir() -> Path:
    return Path(__file__).resolve().parent


def load_template(path: str | os.PathLike[str]) -> Template:
    """The template in a TOML file; TemplateError (with the line it is about) otherwise."""
    errors, template = _read(Path(path))
    if errors or template is None:
        raise errors[0]
    return template


def template_errors(path: str | os.PathLike[str]) -> list[TemplateError]:
    """Every error of a template file (one per broken question at most), each with its line."""
    try:
        return _read(Path(path))[0]
    except TemplateError as exc:
        return [exc]


def _read(path: Path) -> tuple[list[TemplateError], Template | None]:
    try:
        text = path.read_bytes().decode("utf-8-sig")  # tolerate a BOM from Windows editors
    except OSError as exc:
        raise TemplateError(path.name, "", f"cannot read: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise TemplateError(path.name, "", f"not valid UTF-8 (byte {exc.start})") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = getattr(exc, "lineno", None) or _line_in_message(str(exc))
        raise TemplateError(path.name, "", f"invalid TOML: {exc}", line) from exc
    errors: list[TemplateError] = []
    try:
        template = parse_template(data, path.name, errors)
    except TemplateError as exc:
        errors = errors or [exc]
        template = None
    for error in errors:
        error.line = line_of(text, error.path) if error.path else None
    return errors, template


def _line_in_message(message: str) -> int | None:
    match = re.search(r"at line (\d+)", message)
    return int(match[1]) if match else None


def load_directory(directory: str | os.PathLike[str]) -> dict[str, Template]:
    """Every *.toml in directory, keyed by name; each name must equal its file's stem."""
    templates: dict[str, Template] = {}
    for path in sorted(Path(directory).glob("*.toml")):
        template = load_template(path)
        if template.name != path.stem:
            raise TemplateError(path.name, "name", f"{template.name!r} must match the file name")
        templates[template.name] = template
    return templates


def load_builtin() -> dict[str, Template]:
    return load_directory(builtin_dir())
