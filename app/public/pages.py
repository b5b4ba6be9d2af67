# The questionnaire page, and the thanks and already-evaluated pages of a submission, rendered once
# per distinct content and then served from memory (shared by the questionnaire view and the
# submission fast path); only the form token is filled in per citizen.
from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import datetime

from app import clock

RENDERED_PAGES_MAX = 4096  # bounded: cleared when full (the date in the pages changes daily)
_rendered: dict[tuple, str] = {}
# Where the form token goes in a cached questionnaire: random per process, so no survey text can
# contain it; the page is cut there once and joined around each citizen's token.
TOKEN_SLOT = "wxsurvey-form-token-" + secrets.token_hex(8)
_questionnaires: dict[tuple, tuple[object, object, str, str]] = {}


def questionnaire_page(form, dept, large_text: bool, token: str, render: Callable[[str], str],
                       variant: object = None) -> str:  # fmt: skip
    """The empty questionnaire of this survey and department with `token` in its form: rendered
    by `render(token)` once per (survey, department, text size, variant), again whenever the
    survey's frozen questions or the department change (an admin edited a draft, renamed the
    department...), then two string joins per citizen instead of Jinja.
    `variant` names anything else the page shows that is not in form or dept (settings)."""
    key = (form.id, dept.id, large_text, variant)
    held = _questionnaires.get(key)
    if held is not None and (held[0] is form or held[0] == form) and (held[1] is dept or held[1] == dept):
        if held[0] is not form or held[1] is not dept:  # equal content, newer objects: hit by identity next
            held = _questionnaires[key] = (form, dept, held[2], held[3])
        return held[2] + token + held[3]
    html = render(TOKEN_SLOT)
    head, slot, tail = html.partition(TOKEN_SLOT)
    if not slot or TOKEN_SLOT in tail:  # the template does not show the token exactly once
        return render(token)
    if len(_questionnaires) >= RENDERED_PAGES_MAX:
        _questionnaires.clear()
    _questionnaires[key] = (form, dept, head, tail)
    return head + token + tail


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
