# How a case begins: intake marks a 差评 with a comment (sealing the openid only when the citizen
# ticked 愿意接受回访), and the SQL writer opens one case per inserted response in its transaction.
from __future__ import annotations

import functools
import secrets
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.cases.calendar import load_calendar
from app.cases.contact import ContactSealer
from app.models import Department, FollowupCase

CONSENT_FIELD = "followup"  # the questionnaire's unticked checkbox 愿意接受回访


@functools.lru_cache(maxsize=4)
def _sealer(current: str, previous: str) -> ContactSealer:
    return ContactSealer(current, previous)


def sealer_for(settings) -> ContactSealer:
    return _sealer(settings.cases.contact_key, settings.cases.previous_contact_keys)


def consented(data) -> bool:
    getlist = data.getlist if hasattr(data, "getlist") else (lambda name: data.get(name) or ())
    return any(v in ("1", "on", "yes") for v in getlist(CONSENT_FIELD))


def followup_request(settings, form, answers, data, openid: str) -> dict[str, Any] | None:
    """What a submission carries for its case: None unless it is a 差评 with a comment.

    The contact (the sealed openid) is added only with consent; without it nothing about the
    person goes further than the respondent key every response has.
    """
    negative = form.negative_options
    if not negative or not any(oid in negative for _, oid, _ in answers):
        return None
    if not any(text for _, _, text in answers):
        return None
    request: dict[str, Any] = {"w": int(settings.cases.deadline_working_days)}
    sealer = sealer_for(settings)
    if consented(data) and sealer.available:
        request["c"] = sealer.seal(openid)
    return request


def open_cases(session: Session, followups: list[tuple[int, Any]]) -> list[FollowupCase]:
    """One case per (response id, submission), in the caller's transaction (the drain's)."""
    calendar = load_calendar(session)
    department_ids = {sub.department_id for _, sub in followups}
    active = set(session.scalars(select(Department.id).where(Department.id.in_(department_ids))))
    cases = []
    for response_id, sub in followups:
        if sub.department_id not in active:
            continue
        days = sub.case.get("w")
        days = days if isinstance(days, int) and 0 < days <= 60 else 5
        opened: datetime = sub.submitted_at
        due = calendar.due_after(opened, days)
        contact = sub.case.get("c")
        case = FollowupCase(
            response_id=response_id,
            survey_id=sub.survey_id,
            department_id=sub.department_id,
            holder_department_id=sub.department_id,
            status="open",
            token=secrets.token_urlsafe(18)[:24],
            opened_at=opened,
            due_at=due,
            holder_due_at=due,
            escalation_level=0,
            contact=contact if isinstance(contact, str) and contact else None,
            notify_status="none",
            notify_attempts=0,
        )
        cases.append(case)
    session.add_all(cases)
    session.flush()
    return cases
