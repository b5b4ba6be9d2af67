"""Shared steps of the follow-up tests: a citizen's 差评 through the real intake and drain."""

from __future__ import annotations

import re
import time

from sqlalchemy import select
from werkzeug.datastructures import MultiDict

from app import intake
from app.intake.drain import drain_backlog
from app.models import FollowupCase

SURVEY, CITY_DEPT = "demo-departments", "D08"
PASSWORD = "correct-horse-battery"
COUNTY_SURVEY, TOWNSHIP = "demo-counties", "C01T1"


def negative_answers(form, comment: str = "窗口排队一个多小时，没人管", consent: bool = False) -> MultiDict:
    data = MultiDict()
    for q in form.questions:
        if q.kind == "single":
            negative = [o for o in q.options if o.negative]
            data.add(q.input_name, (negative or list(q.options))[-1].key)
    if comment:
        data.add("q_suggestion", comment)
    if consent:
        data.add("followup", "1")
    return data


def rate(app, session, redis, openid: str, *, survey=SURVEY, dept=CITY_DEPT, data=None, **kw):
    settings = app.config["SETTINGS"]
    form, department = intake.load_form(session, survey, dept)
    token = intake.issue_form_token(settings.app.secret_key, time.time() - 30)
    return intake.record_response(
        session, redis, settings, form=form, department=department, openid=openid,
        data=data if data is not None else negative_answers(form, **kw), form_token=token,
    )  # fmt: skip


def drain(session, redis) -> None:
    drain_backlog(session, redis, max_seconds=5)


def only_case(session) -> FollowupCase:
    session.expire_all()
    cases = list(session.scalars(select(FollowupCase)))
    assert len(cases) == 1
    return cases[0]


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def sign_in(client, username: str, password: str = PASSWORD) -> str:
    """Sign in to the console; the CSRF token of the cases page."""
    token = csrf_of(client.get("/console/login").get_data(as_text=True))
    client.post("/console/login", data={"username": username, "password": password, "csrf_token": token})
    return csrf_of(client.get("/console/cases").get_data(as_text=True))
