"""One city clock: on a UTC host at 00:30 city time (16:30 UTC the day before), a survey's first
and last day are open for the webhook and the questionnaire alike, the day after its last and
the day before its first are closed for both, and the answer's day in SQL is the city's."""

from __future__ import annotations

import re
import time
from datetime import date, datetime, timedelta
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import pytest

from app import clock
from app.config import ConfigError, load_settings
from app.dev.wechat_server import event_xml, open_reply, seal
from app.intake import drain
from app.intake import forms as intake_forms
from app.org.surveys import create_survey, open_survey
from app.tally.report import tally_dict, tally_report

CITY = ZoneInfo("Asia/Shanghai")
FIRST, LAST = date(2027, 3, 10), date(2027, 3, 12)
SLUG = "clock-test"
ANSWERS = {
    "q_overall": "satisfied", "q_service_attitude": "basic", "q_efficiency": "satisfied",
    "q_openness": "very_satisfied", "q_integrity": "satisfied", "q_respondent_type": "citizen",
}  # fmt: skip


@pytest.fixture
def utc_host(monkeypatch):
    """The host's own zone is UTC, 8 hours behind the city's."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def survey(app, session, demo):
    created = create_survey(
        session, slug=SLUG, template="department_satisfaction", period_start=FIRST, period_end=LAST,
        levels=["city"],
    )  # fmt: skip
    open_survey(session, SLUG)
    session.commit()
    return created


def city_time(day: date, hour: int, minute: int) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=CITY)


def webhook_open(client, settings, openid: str) -> bool:
    xml = event_xml("gh_0123456789ab", openid, "SCAN", f"s:{SLUG}:D08", create_time=int(time.time()))
    sealed = seal(xml, settings.wechat, "plaintext")
    response = client.post("/wechat?" + urlencode(sealed.params), data=sealed.body, content_type="text/xml")
    assert response.status_code == 200
    reply = open_reply(response.get_data(as_text=True), settings.wechat)
    return f"/q/{SLUG}/D08" in (reply.get("Url") or reply["Content"])  # a card's link, or a text's


def questionnaire_open(client, openid: str) -> bool:
    with client.session_transaction() as sess:
        sess["wx_openid"], sess["wx_channel"] = openid, "wechat"
    intake_forms._caches.clear()
    html = client.get(f"/q/{SLUG}/D08").get_data(as_text=True)
    return 'name="form_token"' in html


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (city_time(FIRST, 0, 30), True),  # the first day, 16:30 UTC the day before
        (city_time(LAST, 0, 30), True),  # the last day
        (city_time(LAST, 23, 30), True),  # late on the last day: 15:30 UTC, same UTC date
        (city_time(LAST + timedelta(days=1), 0, 30), False),  # the day after, still LAST in UTC
        (city_time(FIRST - timedelta(days=1), 23, 30), False),  # the evening before
    ],
)
def test_webhook_and_questionnaire_agree_on_the_city_day(
    utc_host, app, client, session, survey, moment, expected
):
    settings = app.config["SETTINGS"]
    assert time.localtime().tm_gmtoff == 0  # the host really is on UTC
    with clock.pinned(moment):
        assert clock.today() == moment.date()
        assert webhook_open(client, settings, f"oCLOCK{moment:%d%H}") is expected
        assert questionnaire_open(client, f"o-clock-{moment:%d%H}") is expected


def test_an_answer_at_0030_city_time_counts_on_the_city_day(
    utc_host, app, client, session, survey, redis_client
):
    with clock.pinned(city_time(FIRST, 0, 30)):
        with client.session_transaction() as sess:
            sess["wx_openid"], sess["wx_channel"] = "o-first-minute", "wechat"
        intake_forms._caches.clear()
        html = client.get(f"/q/{SLUG}/D08").get_data(as_text=True)
        token = re.search(r'name="form_token" value="([^"]+)"', html).group(1)
        done = client.post(f"/q/{SLUG}/D08", data={**ANSWERS, "form_token": token})
        assert "感谢您的评价" in done.get_data(as_text=True)
    drain.drain_backlog(session, redis_client)
    # From the daily tally rows (the day computed in Python) and from the raw answers (in SQL).
    for segment in (None, "overall"):
        report = tally_dict(
            tally_report(session, SLUG, group_by="period,segment", period="day", segment=segment)
        )
        assert [(row["period"], row["count"]) for row in report["rows"]] == [(FIRST.isoformat(), 1)], segment


def test_timezone_setting_is_checked(tmp_path):
    (tmp_path / "c.toml").write_text("")
    env = {"WXSURVEY_APP_VAR_DIR": str(tmp_path)}
    assert load_settings(tmp_path / "c.toml", environ=env).app.timezone == "Asia/Shanghai"
    with pytest.raises(ConfigError, match="app.timezone: not a time zone: 'Mars/Olympus'"):
        load_settings(tmp_path / "c.toml", environ={**env, "WXSURVEY_APP_TIMEZONE": "Mars/Olympus"})
