"""axe-core run inside a Playwright page: the file comes from tests/a11y/node_modules (installed by
`make axe`, which .ci/run calls), is injected into the page under test, and is never served by the app."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

AXE_JS = Path(__file__).resolve().parent / "node_modules" / "axe-core" / "axe.min.js"
BLOCKING = ("serious", "critical")


def axe_source() -> str:
    """axe.min.js; a skip when it is not installed, a failure when browser tests are required."""
    if not AXE_JS.is_file():
        message = f"axe-core is not installed ({AXE_JS}): run `make axe`"
        if os.environ.get("WXSURVEY_TEST_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return AXE_JS.read_text(encoding="utf-8")


def blocking_violations(page, source: str) -> list[str]:
    """The page's serious and critical axe violations, one readable line each (empty: none)."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        # evaluated through the DevTools protocol: the page's CSP (no inline script) stays on
        page.evaluate(f"() => {{ {source}\n}}")
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [
        f"{v['impact']}: {v['id']} ({v['help']}) at {', '.join(str(n['target']) for n in v['nodes'][:3])}"
        for v in result["violations"]
        if v.get("impact") in BLOCKING
    ]
