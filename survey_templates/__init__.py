# Questionnaire templates: TOML data files in this directory, their schema (schema.py) and
# loader. Pure Python, stdlib only; must not import `app`. Surveys store to_snapshot() so a
# later template edit never changes a running survey.
from __future__ import annotations

import os
import tomllib
from pathlib import Path

from .schema import Option, Question, Template, TemplateError, parse_template

__all__ = [
    "Option",
    "Question",
    "Template",
    "TemplateError",
    "builtin_dir",
    "load_builtin",
    "load_directory",
    "load_template",
]


def builtin_dir() -> Path:
    return Path(__file__).resolve().parent


def load_template(path: str | os.PathLike[str]) -> Template:
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8-sig")  # tolerate a BOM from Windows editors
    except OSError as exc:
        raise TemplateError(path.name, "", f"cannot read: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise TemplateError(path.name, "", f"not valid UTF-8 (byte {exc.start})") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise TemplateError(path.name, "", f"invalid TOML: {exc}") from exc
    return parse_template(data, path.name)


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
