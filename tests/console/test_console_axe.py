"""axe-core in headless Chromium over the console's main pages (desktop and phone widths): no
serious or critical accessibility violation."""

from __future__ import annotations

from datetime import date

import pytest

from app import accounts
from app.org import surveys
from app.org.departments import get_department
from tests.a11y.axe import axe_source, blocking_violations
from tests.factories import add_response

pytestmark = pytest.mark.browser
PASSWORD = "correct-horse-battery"
PAGES = ["surveys", "surveys/demo-departments", "surveys/demo-departments/preview", "results",
         "results?survey=demo-departments", "departments", "departments/D08", "departments/import",
         "posters?survey=demo-departments", "review", "menu", "audit", "surveys/eval",
         "surveys/eval/preview", "results?survey=eval"]  # fmt: skip


def test_console_main_pages_have_no_serious_violations(app, session, demo, live_server, browser):
    axe = axe_source()
    accounts.create_admin(session, username="city", password=PASSWORD, role="city_admin")
    survey = surveys.create_survey(session, slug="eval", template="department_evaluation", levels=["city"],
                                   period_start=date(2026, 1, 1), period_end=date(2026, 12, 31))  # fmt: skip
    answers = {row: "basic" for row in ("attitude", "efficiency", "integrity", "facilities")}
    answers.update(overall="satisfied", recommend="s9", respondent_type="citizen")
    add_response(session, survey, get_department(session, "D08"), answers)
    session.commit()
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN")
    page = context.new_page()
    base = live_server.url
    found: dict[str, list[str]] = {}
    try:
        page.goto(f"{base}/console/login")
        found["login"] = blocking_violations(page, axe)
        page.fill("input[name=username]", "city")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"{base}/console/surveys")
        for width in (1280, 360):
            page.set_viewport_size({"width": width, "height": 900})
            for path in PAGES:
                response = page.goto(f"{base}/console/{path}")
                assert response is not None and response.status == 200, path
                found[f"{path} @{width}"] = blocking_violations(page, axe)
    finally:
        context.close()
    bad = {page: v for page, v in found.items() if v}
    assert not bad, "\n".join(f"{page}: {line}" for page, lines in bad.items() for line in lines)
