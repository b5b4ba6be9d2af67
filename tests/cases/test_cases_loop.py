"""The follow-up loop's rules on real SQL and Redis: deadlines in working days, escalation by a
test clock, the answer, the notice through the fake WeChat API over HTTP (retried with backoff),
the re-rating by the same person only, appeals into integrity review, and the figures."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from rq.registry import ScheduledJobRegistry
from sqlalchemy import select

from app.cases import (
    WorkCalendar,
    answer_case,
    appeal,
    case_figures,
    escalate_overdue,
    parse_holidays,
    replace_year_holidays,
    rerate,
)
from app.clock import zone
from app.errors import Conflict, Forbidden, Invalid
from app.intake.respondents import respondent_key
from app.integrity.review import review_queue
from app.jobs.cases import notify_citizen
from app.jobs.queues import get_queue
from app.models import Department, Response
from tests.cases.casework import COUNTY_SURVEY, TOWNSHIP, drain, only_case, rate

CITY_TZ = zone()
OPENID = "oCitizen_loop_0001"


def test_deadlines_count_working_days_with_holidays_and_workdays():
    friday = datetime(2027, 1, 29, 15, 0, tzinfo=CITY_TZ)
    plain = WorkCalendar()
    assert plain.due_after(friday, 1) == datetime(2027, 2, 2, tzinfo=CITY_TZ)  # Monday, to midnight
    rows = parse_holidays("date,kind,name\n2027-02-01,假日,春节\n2027-01-30,补班,调休\n")
    calendar = WorkCalendar(frozenset(d for d, k, _ in rows if k == "holiday"),
                            frozenset(d for d, k, _ in rows if k == "workday"))  # fmt: skip
    assert calendar.due_after(friday, 1) == datetime(2027, 1, 31, tzinfo=CITY_TZ)  # Saturday 补班
    assert calendar.due_after(friday, 2) == datetime(2027, 2, 3, tzinfo=CITY_TZ)  # skips Sun and 春节
    with pytest.raises(Invalid, match="第 2 行"):
        parse_holidays("2027-01-01\n2027-13-01\n")


def test_uploaded_holidays_move_a_new_cases_deadline(app, session, demo, redis_client):
    today = datetime.now(UTC).astimezone(CITY_TZ).date()
    days = [today + timedelta(days=i) for i in range(1, 15)]
    replace_year_holidays(session, [(d, "holiday", "长假") for d in days[:10]])
    session.commit()
    rate(app, session, redis_client, OPENID, consent=True)
    drain(session, redis_client)
    case = only_case(session)
    assert case.due_at.astimezone(CITY_TZ).date() > days[9]


def test_an_unanswered_case_escalates_township_county_city(app, session, demo, redis_client):
    rate(app, session, redis_client, OPENID, survey=COUNTY_SURVEY, dept=TOWNSHIP)
    drain(session, redis_client)
    case = only_case(session)
    township = session.get(Department, case.department_id)
    assert escalate_overdue(session, working_days=5, now=case.due_at - timedelta(minutes=1)) == []
    moved = escalate_overdue(session, working_days=5, now=case.due_at + timedelta(minutes=1))
    session.commit()
    case = only_case(session)
    assert moved and case.escalation_level == 1 and case.holder_department_id == township.parent_id
    assert case.department_id == township.id  # the mark shows on the township's list too
    escalate_overdue(session, working_days=5, now=case.holder_due_at + timedelta(minutes=1))
    session.commit()
    case = only_case(session)
    assert case.escalation_level == 2 and case.holder_department_id is None  # with the city now
    assert escalate_overdue(session, working_days=5, now=case.holder_due_at + timedelta(days=30)) == []
    rows, total = case_figures(session, case.survey_id, now=case.holder_due_at)
    assert (total.opened, total.escalated, total.overdue, total.answered_on_time) == (1, 1, 1, 0)


def test_scope_answer_rerate_and_figures(app, session, demo, redis_client):
    settings = app.config["SETTINGS"]
    rate(app, session, redis_client, OPENID, consent=True)
    drain(session, redis_client)
    case = only_case(session)
    other = session.scalar(select(Department.id).where(Department.code == "D01"))
    with pytest.raises(Forbidden):
        answer_case(session, case.id, verification="a", fix="b", reply="c", actor="x", department_ids={other})
    with pytest.raises(Invalid):
        answer_case(session, case.id, verification="", fix="b", reply="c", actor="x")
    with pytest.raises(Conflict):
        rerate(session, case.token, respondent_key(settings.survey.respondent_secret, OPENID), "satisfied")
    answer_case(session, case.id, verification="属实", fix="增开窗口", reply="已增开窗口", actor="x",
                now=case.opened_at + timedelta(days=1))  # fmt: skip
    session.commit()
    with pytest.raises(Conflict):
        answer_case(session, case.id, verification="a", fix="b", reply="c", actor="x")
    with pytest.raises(Forbidden):
        rerate(
            session,
            case.token,
            respondent_key(settings.survey.respondent_secret, "oSomeoneElse"),
            "satisfied",
        )
    rkey = respondent_key(settings.survey.respondent_secret, OPENID)
    rerate(session, case.token, rkey, "basic")
    session.commit()
    with pytest.raises(Conflict):
        rerate(session, case.token, rkey, "dissatisfied")
    rows, total = case_figures(session, case.survey_id)
    assert [r.department for r in rows] == ["D08"]
    assert (total.opened, total.answered, total.answered_on_time, total.overdue) == (1, 1, 1, 0)
    assert (total.rerated, total.rerating_satisfaction, total.median_days) == (1, 100.0, 1.0)
    since = date.today() + timedelta(days=400)
    assert case_figures(session, case.survey_id, since=since)[1].opened == 0


def test_an_appeal_puts_the_response_in_the_review_queue(app, session, demo, redis_client):
    rate(app, session, redis_client, OPENID)
    drain(session, redis_client)
    case = only_case(session)
    with pytest.raises(Invalid):
        appeal(session, case.id, " ", actor="dept")
    appeal(session, case.id, "同一时段大量相同评价，疑似恶意", actor="dept")
    session.commit()
    queued = review_queue(session, "flagged")
    assert [r.id for r in queued] == [case.response_id]
    assert "appeal" in session.get(Response, case.response_id).flags
    with pytest.raises(Conflict):
        appeal(session, case.id, "again", actor="dept")


@pytest.fixture
def wechat_at(app, live_server):
    """The API client pointed at the simulator's fake WeChat API, served over loopback HTTP."""
    app.config["SETTINGS"].wechat.api_base_url = live_server.url + "/dev/wechat"
    return live_server.url


def test_the_notice_reaches_the_fake_wechat_and_closes_the_case(app, session, demo, redis_client, wechat_at):
    import json

    rate(app, session, redis_client, OPENID, consent=True)
    drain(session, redis_client)
    case = only_case(session)
    answer_case(session, case.id, verification="属实", fix="增开窗口", reply="已增开窗口", actor="x")
    session.commit()
    assert notify_citizen(case.id) == "sent"
    sent = [json.loads(m) for m in redis_client.lrange("wx:sim:template_messages", 0, -1)]
    assert [m["touser"] for m in sent] == [OPENID]
    assert sent[0]["url"].endswith(f"/c/{case.token}")
    case = only_case(session)
    assert (case.status, case.notify_status, case.contact) == ("closed", "sent", None)
    assert notify_citizen(case.id) == "nothing to send"  # a duplicate job sends nothing twice


def test_a_failed_send_is_retried_with_backoff_and_never_loses_the_case(app, session, demo, redis_client):
    settings = app.config["SETTINGS"]
    settings.wechat.api_base_url = "http://127.0.0.1:9/dev/wechat"  # nothing listens there
    settings.cases.notify_retries = 2
    rate(app, session, redis_client, OPENID, consent=True)
    drain(session, redis_client)
    case = only_case(session)
    answer_case(session, case.id, verification="属实", fix="增开窗口", reply="已增开窗口", actor="x")
    session.commit()
    assert notify_citizen(case.id) == "retrying"
    registry = ScheduledJobRegistry(queue=get_queue("wechat"))
    assert len(registry.get_job_ids()) == 1
    scheduled = registry.get_scheduled_time(registry.get_job_ids()[0])
    assert timedelta(seconds=25) < scheduled.replace(tzinfo=UTC) - datetime.now(UTC) <= timedelta(seconds=30)
    assert notify_citizen(case.id) == "failed"
    case = only_case(session)
    assert (case.status, case.notify_status, case.notify_attempts) == ("answered", "failed", 2)
    assert case.reply == "已增开窗口" and case.contact  # the answer stays; a resend can try again
