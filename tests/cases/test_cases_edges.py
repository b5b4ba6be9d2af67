"""The follow-up loop at its edges: the public results page and chart, the citizen's answer page,
the console's cases pages (scope, answer, appeal, holidays, publishing), the API and the CLI."""

from __future__ import annotations

import csv
import io
import json

import pytest
from PIL import Image

from app import accounts
from app.accounts.tokens import create_token
from app.cases import answer_case
from app.models import FollowupCase
from tests.cases.casework import COUNTY_SURVEY, SURVEY, TOWNSHIP, drain, only_case, rate, sign_in
from tests.conftest import run_cli

PASSWORD = "correct-horse-battery"
OPENID = "oCitizen_edges_0001"
COMMENT = "窗口排队一个多小时，没人管"


@pytest.fixture
def case(app, session, demo, redis_client):
    rate(app, session, redis_client, OPENID, consent=True, comment=COMMENT)
    drain(session, redis_client)
    return only_case(session)


def test_public_results_are_hidden_until_published_then_cached(client, session, case):
    assert client.get(f"/results/{SURVEY}").status_code == 404
    assert client.get("/results/no-such-survey").status_code == 404
    assert run_cli_ok(session, client, ["surveys", "publish", SURVEY]) is None
    page = client.get(f"/results/{SURVEY}")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "市直部门" in html and "差评回访" in html
    assert 'id="fig-opened">1<' in html
    assert COMMENT not in html and OPENID not in html  # counts only, no personal data
    assert page.headers["Cache-Control"].startswith("public")
    again = client.get(f"/results/{SURVEY}", headers={"If-None-Match": page.headers["ETag"]})
    assert again.status_code == 304 and again.data == b""
    chart = client.get(f"/results/{SURVEY}/chart.png")
    assert chart.status_code == 200 and chart.mimetype == "image/png"
    assert Image.open(io.BytesIO(chart.data)).size[0] == 720


def run_cli_ok(session, client, args):
    """Publish through the same service the CLI command calls (the CLI itself is tested below)."""
    from app.cases.publication import set_published
    from app.public.results import forget_results

    with client.application.app_context():
        set_published(session, args[2], True, actor="test")
        session.commit()
        forget_results(args[2])


def test_the_answer_page_and_the_rerating_belong_to_the_citizen(app, client, session, case):
    first = client.get(f"/c/{case.token}")
    assert first.status_code == 302  # identity first (OAuth in WeChat, a cookie id here)
    assert client.get("/c/not-a-token").status_code == 404
    answer_case(session, case.id, verification="属实", fix="增开窗口", reply="已增开两个窗口", actor="x")
    session.commit()
    stranger = app.test_client()
    with stranger.session_transaction() as s:
        s["wx_openid"] = "oSomeoneElse_000001"
    assert "已增开两个窗口" in stranger.get(f"/c/{case.token}").get_data(as_text=True)
    refused = stranger.post(f"/c/{case.token}", data={"rerating": "satisfied"})
    assert refused.status_code == 403 and "本人" in refused.get_data(as_text=True)
    with client.session_transaction() as s:
        s["wx_openid"] = OPENID
    assert client.post(f"/c/{case.token}", data={"rerating": "bogus"}).status_code == 400
    done = client.post(f"/c/{case.token}", data={"rerating": "satisfied"})
    assert done.status_code == 200 and "感谢您的评价" in done.get_data(as_text=True)
    assert client.post(f"/c/{case.token}", data={"rerating": "basic"}).status_code == 409
    assert only_case(session).rerating == "satisfied"


def test_console_scope_answer_appeal_and_holidays(app, session, demo, redis_client):
    accounts.create_admin(session, username="city", password=PASSWORD, role="city_admin")
    accounts.create_admin(session, username="east", password=PASSWORD, role="scoped_admin", scope_code="C01")
    accounts.create_admin(session, username="west", password=PASSWORD, role="scoped_admin", scope_code="C02")
    session.commit()
    rate(app, session, redis_client, OPENID, survey=COUNTY_SURVEY, dept=TOWNSHIP, consent=False)
    drain(session, redis_client)
    case = only_case(session)

    west = app.test_client()
    token = sign_in(west, "west")
    assert f"#{case.id}" not in west.get(f"/console/cases?survey={COUNTY_SURVEY}").get_data(as_text=True)
    assert west.get(f"/console/cases/{case.id}").status_code == 403
    data = {"verification": "v", "fix": "f", "reply": "r", "csrf_token": token}
    assert west.post(f"/console/cases/{case.id}/answer", data=data).status_code == 403

    east = app.test_client()
    token = sign_in(east, "east")
    listing = east.get(f"/console/cases?survey={COUNTY_SURVEY}").get_data(as_text=True)
    assert f"#{case.id}" in listing and 'id="cases-opened">1<' in listing
    detail = east.get(f"/console/cases/{case.id}").get_data(as_text=True)
    assert "窗口排队" in detail and "市民未同意回访" in detail
    assert east.post(f"/console/cases/{case.id}/answer", data={"csrf_token": token}).status_code == 302
    assert only_case(session).status == "open"  # the form's errors are flashed, nothing changes
    east.post(f"/console/cases/{case.id}/answer", data={**data, "csrf_token": token})
    assert only_case(session).status == "closed"  # no contact: closed at once, nothing to send
    east.post(f"/console/cases/{case.id}/appeal", data={"reason": "恶意刷差评", "csrf_token": token})
    assert only_case(session).appealed_at is not None
    assert "appeal" in east.get("/console/review?queue=flagged").get_data(as_text=True)
    download = east.get(f"/console/cases/figures.csv?survey={COUNTY_SURVEY}")
    rows = list(csv.DictReader(io.StringIO(download.get_data(as_text=True).lstrip("\ufeff"))))
    assert rows[0]["department"] == TOWNSHIP and rows[0]["answered_on_time"] == "1"

    upload = {"file": (io.BytesIO("2027-10-01,假日,国庆\n".encode()), "h.csv"), "csrf_token": token}
    assert east.post("/console/holidays", data=upload).status_code == 403  # city admins only
    city = app.test_client()
    token = sign_in(city, "city")
    bad = {"file": (io.BytesIO(b"2027-13-01\n"), "h.csv"), "csrf_token": token}
    assert city.post("/console/holidays", data=bad, follow_redirects=True).status_code == 200
    good = {"file": (io.BytesIO("2027-10-01,假日,国庆\n".encode()), "h.csv"), "csrf_token": token}
    assert "国庆" in city.post("/console/holidays", data=good, follow_redirects=True).get_data(as_text=True)
    city.post(f"/console/surveys/{COUNTY_SURVEY}/publish", data={"action": "publish", "csrf_token": token})
    assert app.test_client().get(f"/results/{COUNTY_SURVEY}").status_code == 200


def test_api_cases_figures(client, session, case):
    secret = create_token(session, "platform").secret
    session.commit()
    headers = {"Authorization": f"Bearer {secret}"}
    body = client.get(f"/api/v1/cases?survey={SURVEY}", headers=headers).json
    assert body["total"]["opened"] == 1 and body["rows"][0]["department"] == "D08"
    assert (
        client.get(f"/api/v1/cases?survey={SURVEY}&opened_since=yesterday", headers=headers).status_code
        == 400
    )
    assert client.get(f"/api/v1/cases?survey={SURVEY}&bogus=1", headers=headers).status_code == 400
    assert client.get(f"/api/v1/cases?survey={SURVEY}").status_code == 401
    xlsx = client.get(f"/api/v1/cases?survey={SURVEY}&format=xlsx", headers=headers)
    assert xlsx.status_code == 200 and xlsx.data[:2] == b"PK"


def test_cli_figures_holidays_and_publish(cli_env, session, case, tmp_path):
    figures = run_cli("cases", "figures", "--survey", SURVEY, env=cli_env)
    assert figures.returncode == 0, figures.stderr
    assert json.loads(figures.stdout)["total"]["opened"] == 1
    listed = json.loads(run_cli("cases", "list", "--json", env=cli_env).stdout)
    assert listed[0]["contact_kept"] is True and OPENID not in json.dumps(listed)
    holidays = tmp_path / "holidays.csv"
    holidays.write_text("日期,类型,名称\n2027-02-10,假日,春节\n2027-02-07,补班,\n", encoding="utf-8")
    assert run_cli("cases", "holidays", "import", str(holidays), env=cli_env).stdout.startswith("2 days")
    holidays.write_text("2027-02-30\n")
    bad = run_cli("cases", "holidays", "import", str(holidays), env=cli_env)
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1 and "第 1 行" in bad.stderr
    assert run_cli("surveys", "publish", SURVEY, env=cli_env).returncode == 0
    assert run_cli("surveys", "publish", "nope", env=cli_env).returncode == 1
    assert run_cli("cases", "escalate", env=cli_env).stdout.startswith("0 cases")
    assert run_cli("cases", "rotate-key", env=cli_env).stdout.startswith("0 contacts")
    session.expire_all()
    assert session.get(FollowupCase, case.id).contact is not None


def test_scheduled_export_of_the_followup_figures(tmp_path, database_url, redis_url, redis_client):
    from pathlib import Path

    from app import create_app
    from app.config import ConfigError, load_settings
    from app.tally.exports import run_export
    from tests.conftest import empty_tables, settings_for

    entry = {"name": "cases-weekly", "cron": "0 3 * * 1", "survey": SURVEY, "format": ["csv", "json"],
             "dataset": "cases", "department": "D08"}  # fmt: skip
    settings = settings_for(tmp_path, database_url, redis_url,
                            exports={"dir": str(tmp_path / "exports"), "schedules": [entry]})  # fmt: skip
    app = create_app(settings)
    empty_tables(app.extensions["wxsurvey_db"].engine)
    with app.app_context():
        from app.db import db
        from app.org.demo import load_demo

        load_demo(db.session, settings.var_dir)
        db.session.commit()
        rate(app, db.session, redis_client, OPENID)
        drain(db.session, redis_client)
        outcome = run_export(db.session, settings, "cases-weekly", slot="s1")
        assert outcome.run.status == "ok"
    directory = Path(settings.exports.dir) / "cases-weekly"
    manifest = json.loads(next(directory.glob("*.manifest.json")).read_text())
    assert manifest["dataset"] == "cases" and manifest["total"]["opened"] == 1
    data = json.loads(
        next(p for p in directory.glob("cases-weekly-*.json") if "manifest" not in p.name).read_text()
    )
    assert data["rows"][0]["department"] == "D08"
    bad = {**entry, "group_by": "region"}
    with pytest.raises(ConfigError, match="dataset = cases"):
        load_settings(tmp_path / "config.toml", environ={}, overrides={"exports": {"schedules": [bad]}})
    app.extensions["wxsurvey_db"].engine.dispose()


def test_the_consent_box_is_in_the_page_unticked_with_its_explanation(app, client, demo):
    with client.session_transaction() as s:
        s["wx_openid"] = OPENID
    html = client.get(f"/q/{SURVEY}/D08").get_data(as_text=True)
    box = html[html.index('id="followup"') :]
    assert "愿意接受回访" in box and "不勾选则不保存任何能识别您的信息" in box
    assert 'name="followup" value="1">' in box  # unticked
    assert "data-negative" in html  # the bottom two levels are marked for the CSS that reveals the box
    app.config["SETTINGS"].cases.contact_key = ""  # production without a key: no box, no contact kept
    assert 'id="followup"' not in client.get(f"/q/{SURVEY}/D08").get_data(as_text=True)


def test_a_moment_given_in_the_city_zone_is_stored_as_the_same_instant(session, case):
    """SQLite keeps no zone: an aware moment in Asia/Shanghai is stored as UTC, not as its wall time."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from app.cases.service import _aware

    moment = datetime(2027, 3, 10, 9, 30, tzinfo=ZoneInfo("Asia/Shanghai"))  # 01:30 UTC
    answer_case(session, case.id, verification="属实", fix="增开窗口", reply="已答复", actor="x", now=moment)
    session.commit()
    session.expire_all()
    assert _aware(session.get(FollowupCase, case.id).answered_at) == moment
