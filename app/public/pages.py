# The thanks and already-evaluated pages of a submission, rendered once per distinct content and
# then served from memory (shared by the questionnaire view and the submission fast path).
from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from app import clock

RENDERED_PAGES_MAX = 4096  # bounded: cleared when full (the date in the pages changes daily)
_rendered: dict[tuple, str] = {}


def outcome_page(outcome, form, dept, large_text: bool, render: Callable[[str, str], str]) -> tuple[int, str]:
    """(status, page) of a recorded submission: thanks (accepted or resent, 200) or already
    evaluated (409), for this survey, department and date. `render(template, when)` makes the page
    (in a request context) the first time; after that it is one dict lookup instead of Jinja."""
    if outcome.kind == "already":
        template, status, when = "public/already.html", 409, local_date(outcome.submitted_at)
    else:
        template, status = "public/thanks.html", 200
        when = local_date(outcome.submitted_at or clock.now())
    key = (template, form.id, form.title, dept.id, dept.name, when, large_text)
    body = _rendered.get(key)
    if body is None:
        if len(_rendered) >= RENDERED_PAGES_MAX:
            _rendered.clear()
        body = _rendered[key] = render(template, when)
    return status, body


def local_date(moment: datetime) -> str:
    """A moment as the city's calendar date, the way citizens read it: 2026年11月27日."""
    day = moment.astimezone(clock.zone())
    return f"{day.year}年{day.month}月{day.day}日"
