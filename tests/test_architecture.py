"""The house rules of issue #11, checked on the code itself: no import cycles at run time (imports
for the type checker only are left out), small modules, few loose files in app/, a header on
every module. The layers themselves are import-linter contracts in pyproject.toml (`make lint`)."""

from __future__ import annotations

import ast
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("app", "handlers", "qr", "survey_templates")


def sources():
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" not in path.parts:
                yield path


def test_no_import_cycles_between_modules():
    graph = grimp.build_graph(*PACKAGES, include_external_packages=False, exclude_type_checking_imports=True)
    cycles = []
    for module in graph.modules:
        for imported in graph.find_modules_directly_imported_by(module):
            if graph.chain_exists(importer=imported, imported=module):
                cycles.append(f"{module} <-> {imported}")
    assert cycles == []


def test_no_module_over_400_lines():
    long = {str(p.relative_to(ROOT)): n for p in sources() if (n := len(p.read_text().splitlines())) > 400}
    assert long == {}


def test_at_most_12_python_files_loose_in_app():
    loose = sorted(p.name for p in (ROOT / "app").glob("*.py"))
    assert len(loose) <= 12, loose


def test_every_module_says_what_it_is_for():
    bare = []
    for path in sources():
        text = path.read_text()
        if not text.strip():
            continue
        if ast.get_docstring(ast.parse(text)) is None and not text.lstrip().startswith("#"):
            bare.append(str(path.relative_to(ROOT)))
    assert bare == []
