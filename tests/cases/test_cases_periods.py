"""Follow-up figures per period of the cases' opening, in the city's calendar: a case opened at 00:30
on the 1st in the city belongs to the new month (and a Monday's to the new ISO week) though in UTC
it is still the day before. Through the service, the API, both CLIs, the console and an export;
and bad periods or dimensions refused with 400, a one-line usage error (exit 2) or a ConfigError."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime, timedelta

import pytest

from app import accounts, clock, intake
from app.accounts.tokens import create_token
from app.cases import answer_case, case_figures, parse_grouping, rerate
from app.cli.cases import group as cases_group
from app.cli.tallies import group as tallies_group
from app.config import ConfigError
from app.errors import Invalid
from app.intake.respondents import respondent_key
from app.models import FollowupCase
from app.org.surveys import get_survey
from app.tally.exports import parse_schedules, write_files
from tests.cases.casework import SURVEY, drain, negative_answers, sign_in
from tests.conftest import run_cli

PASSWORD = "correct-horse-battery"


def at(day: date, hour: int, minute: int) -> datetime:
    """A moment on the city's wall clock."""
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=clock.zone())


def rate_at(app, session, redis, openid: str, dept: str, moment: datetime) -> FollowupCase:
    """A citizen's 差评 with a comment, submitted and drained while the clock stands at `moment`."""
    settings = app.config["SETTINGS"]
    with clock.pinned(moment):
        form, department = intake.load_form(session, SURVEY, dept)
        token = intake.issue_form_token(settings.app.secret_key, moment.timestamp() - 60)
        intake.record_response(session, redis, settings, form=form, department=department, openid=openid,
                               data=negative_answers(form), form_token=token)  # fmt: skip
        drain(session, redis)
    session.expire_all()
    return session.query(FollowupCase).order_by(FollowupCase.id.desc()).first()


@pytest.fixture
def spread(app, session, demo, redis_client):
    """Four cases across a month boundary and a week boundary of the survey's year, in the city."""
    year = get_survey(session, SURVEY).period_start.year
    march, monday = date(year, 3, 1), date.fromisocalendar(year, 20, 1)
    moments = {
        "feb": (at(march - timedelta(days=1), 23, 30), "D08"),
        "mar": (at(march, 0, 30), "D08"),
        "sun": (at(monday - timedelta(days=1), 23, 30), "D08"),
        "mon": (at(monday, 0, 30), "D01"),
    }
    made = {name: rate_at(app, session, redis_client, f"oPeriods_{name}_0001", dept, moment)
            for name, (moment, dept) in moments.items()}  # fmt: skip
    assert len({c.id for c in made.values()}) == 4
    settings = app.config["SETTINGS"]
    for name, days, choice in (("feb", 1, "satisfied"), ("mar", 3, "dissatisfied")):
        case, rkey = made[name], respondent_key(settings.survey.respondent_secret, f"oPeriods_{name}_0001")
        with clock.pinned(moments[name][0] + timedelta(days=days)):  # answered days after opening
            answer_case(session, case.id, verification="属实", fix="已整改", reply="已整改完毕", actor="x")
            session.commit()
            rerate(session, case.token, rkey, choice)
            session.commit()
    return year, {name: moment for name, (moment, _) in moments.items()}


def test_buckets_follow_the_city_calendar_across_month_and_week(session, spread):
    year, moments = spread
    feb, mar = moments["feb"].astimezone(UTC), moments["mar"].astimezone(UTC)
    assert feb.date() == mar.date()  # the same UTC day, yet two months in the city
    survey = get_survey(session, SURVEY)
    later = at(date(year, 12, 1), 12, 0)
    with clock.pinned(later):
        rows, total = case_figures(session, survey.id, grouping=parse_grouping("period", "month"))
    by_month = {r.period: r for r in rows}
    assert set(by_month) == {f"{year}-02", f"{year}-03", f"{year}-05"}
    assert all(r.department == "" for r in rows)  # period only: every department together
    assert (by_month[f"{year}-02"].opened, by_month[f"{year}-02"].answered_on_time) == (1, 1)
    assert (by_month[f"{year}-02"].median_days, by_month[f"{year}-02"].rerating_satisfaction) == (1.0, 100.0)
    assert (by_month[f"{year}-03"].median_days, by_month[f"{year}-03"].rerating_satisfaction) == (3.0, 0.0)
    assert (by_month[f"{year}-05"].opened, by_month[f"{year}-05"].overdue) == (2, 2)  # open past the deadline
    assert (total.opened, total.answered, total.overdue, total.median_days) == (4, 2, 2, 2.0)

    with clock.pinned(later):
        rows, _ = case_figures(session, survey.id, grouping=parse_grouping("department,period", "week"))
    cells = {(r.department, r.period): r.opened for r in rows}
    assert cells[("D08", f"{year}-W19")] == 1 and cells[("D01", f"{year}-W20")] == 1
    assert sum(cells.values()) == 4 and all(r.department for r in rows)
    departments = [r.department for r in rows]
    assert departments == sorted(departments, key=departments.index)  # grouped by department first

    rows, total = case_figures(session, survey.id, grouping=parse_grouping(None, f"day:{year}-03"))
    assert [(r.department, r.period, r.opened) for r in rows] == [("D08", f"{year}-03-01", 1)]
    assert total.opened == 1  # the range keeps the cases opened in the city's March only
    rows, _ = case_figures(session, survey.id, grouping=parse_grouping("period", "survey"))
    assert [(r.period, r.opened) for r in rows] == [(f"{survey.period_start}..{survey.period_end}", 4)]
    rows, _ = case_figures(session, survey.id)
    assert {r.department: r.opened for r in rows} == {"D08": 3, "D01": 1}  # no period: as before
    assert "period" not in rows[0].as_dict()


def test_bad_grouping_names_the_parameter():
    for group_by, period, field in (("region", None, "group_by"), (None, "fortnight", "period"),
                                    (None, "month:2024-13", "period")):  # fmt: skip
        with pytest.raises(Invalid) as caught:
            parse_grouping(group_by, period)
        assert caught.value.field == field and field in caught.value.message
    assert parse_grouping("period", None).period.bucket == "month"  # as tallies: month by default
    assert parse_grouping(None, "week").dims == ("department", "period")


def test_api_cases_per_period(client, session, spread):
    year, _ = spread
    secret = create_token(session, "platform").secret
    session.commit()
    headers = {"Authorization": f"Bearer {secret}"}
    body = client.get(f"/api/v1/cases?survey={SURVEY}&group_by=period&period=month", headers=headers).json
    assert body["group_by"] == ["period"] and body["period"]["bucket"] == "month"
    assert [(r["period"], r["opened"]) for r in body["rows"]] == [
        (f"{year}-02", 1), (f"{year}-03", 1), (f"{year}-05", 2)
    ]  # fmt: skip
    assert "department" not in body["rows"][0] and body["total"]["opened"] == 4
    weekly = client.get(
        f"/api/v1/cases?survey={SURVEY}&period=week&department=D01&format=csv", headers=headers
    )
    rows = list(csv.DictReader(io.StringIO(weekly.get_data(as_text=True).lstrip("\ufeff"))))
    assert [(r["department"], r["period"], r["opened"]) for r in rows] == [("D01", f"{year}-W20", "1")]
    narrowed = client.get(f"/api/v1/cases?survey={SURVEY}&period=month&opened_until={year}-02-28",
                          headers=headers).json  # fmt: skip
    assert [r["period"] for r in narrowed["rows"]] == [f"{year}-02"]
    for query, field in (("period=fortnight", "period"), ("group_by=region", "group_by"),
                         ("period=month:2024-13", "period")):  # fmt: skip
        refused = client.get(f"/api/v1/cases?survey={SURVEY}&{query}", headers=headers)
        assert refused.status_code == 400 and refused.json["message"].startswith(field), refused.json


def test_both_clis_per_period(runner, session, spread, tmp_path):
    year, _ = spread
    result = runner.invoke(
        cases_group, ["figures", "--survey", SURVEY, "--by", "period", "--period", "quarter"]
    )
    assert result.exit_code == 0, result.output
    assert [(r["period"], r["opened"]) for r in json.loads(result.output)["rows"]] == [
        (f"{year}-Q1", 2), (f"{year}-Q2", 2)
    ]  # fmt: skip
    args = ["--survey", SURVEY, "--dataset", "cases", "--by", "department,period", "--period", "month"]
    text = runner.invoke(tallies_group, [*args, "--format", "csv"]).output
    rows = list(csv.DictReader(io.StringIO(text.lstrip("\ufeff"))))
    assert list(rows[0])[:5] == ["department", "department_name", "category", "level", "period"]
    assert {(r["department"], r["period"]): int(r["opened"]) for r in rows} == {
        ("D08", f"{year}-02"): 1, ("D08", f"{year}-03"): 1, ("D08", f"{year}-05"): 1,
        ("D01", f"{year}-05"): 1,
    }  # fmt: skip
    plain = json.loads(runner.invoke(tallies_group, ["--survey", SURVEY, "--dataset", "cases"]).output)
    assert plain["group_by"] == ["department"] and plain["total"]["opened"] == 4


def test_cli_bad_options_are_one_line_usage_errors(cli_env, session, demo):
    for args, fragment in (
        (["tallies", "--survey", SURVEY, "--dataset", "cases", "--period", "fortnight"], "'--period'"),
        (
            ["tallies", "--survey", SURVEY, "--dataset", "cases", "--by", "region"],
            "unknown dimension 'region'",
        ),
        (["tallies", "--survey", SURVEY, "--dataset", "cases", "--segment", "x"], "--segment is not used"),
        (["tallies", "--survey", SURVEY, "--dataset", "bogus"], "'--dataset'"),
        (["tallies", "--survey", SURVEY, "--period", "fortnight"], "'--period'"),
        (["cases", "figures", "--survey", SURVEY, "--period", "week:2024-W99"], "'--period'"),
    ):
        result = run_cli(*args, env=cli_env)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2, (args, result.stderr)
        assert len(lines) == 1 and lines[0].startswith("wxsurvey: error: ") and fragment in lines[0], lines


def test_console_and_export_per_period(app, session, spread, tmp_path):
    year, _ = spread
    accounts.create_admin(session, username="city", password=PASSWORD, role="city_admin")
    session.commit()
    city = app.test_client()
    sign_in(city, "city")
    html = city.get(f"/console/cases?survey={SURVEY}&period=month").get_data(as_text=True)
    assert f'<td class="period">{year}-03</td>' in html and 'value="month" selected' in html
    download = city.get(f"/console/cases/figures.csv?survey={SURVEY}&period=week")
    rows = list(csv.DictReader(io.StringIO(download.get_data(as_text=True).lstrip("\ufeff"))))
    assert ("D01", f"{year}-W20") in {(r["department"], r["period"]) for r in rows}
    assert city.get(f"/console/cases?survey={SURVEY}&period=fortnight").status_code == 400

    entry = {"name": "cases-monthly", "interval": 3600, "survey": SURVEY, "format": ["json", "csv"],
             "dataset": "cases", "group_by": "period", "period": "month"}  # fmt: skip
    (schedule,) = parse_schedules([entry])
    write_files(session, schedule, tmp_path, "stamp")
    data = json.loads((tmp_path / "cases-monthly-stamp.json").read_text())
    assert [(r["period"], r["opened"]) for r in data["rows"]] == [
        (f"{year}-02", 1), (f"{year}-03", 1), (f"{year}-05", 2)
    ]  # fmt: skip
    manifest = json.loads((tmp_path / "cases-monthly-stamp.manifest.json").read_text())
    assert manifest["group_by"] == ["period"] and manifest["period"]["bucket"] == "month"
    header = (tmp_path / "cases-monthly-stamp.csv").read_text(encoding="utf-8-sig").splitlines()[0]
    assert header.startswith("period,opened,")
    with pytest.raises(ConfigError, match=r"\.group_by: unknown dimension 'region' .*dataset = cases"):
        parse_schedules([{**entry, "group_by": "region"}])
    with pytest.raises(ConfigError, match=r"\.period: .*fortnight"):
        parse_schedules([{**entry, "period": "fortnight"}])
