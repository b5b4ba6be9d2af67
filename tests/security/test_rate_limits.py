"""Rate limits in Redis: per IP prefix on submissions (fast path and view) and console sign-ins,
per token on the API, per openid on the webhook; 429 + Retry-After + a kind Chinese page; and a
campaign's normal peak is never throttled."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from app import accounts, create_app, intake
from app.config import ConfigError, load_settings
from app.dev.wechat_server import event_xml, seal
from app.intake.respondents import respondent_key, scanned_recently
from tests.conftest import empty_tables, settings_for
from tests.fast.test_fast_submit import dispatched
from tests.fast.test_fast_webhook import _post, _view_client
from tests.public.test_questionnaire import URL, answers, login, token_of
from tests.wechat.test_wechat_webhook import ACCOUNT, new_openid

WINDOW = 3600


@pytest.fixture
def limited_app(tmp_path, database_url, redis_url, redis_client):
    """An app with small limits, the demo loaded."""
    made = []

    def make(**limits):
        # An hour's window: a test never straddles two windows (the counters are per fixed window).
        limits = {"window": WINDOW, **limits}
        app = create_app(settings_for(tmp_path, database_url, redis_url, limits=limits))
        app.config["TESTING"] = True
        empty_tables(app.extensions["wxsurvey_db"].engine)
        with app.app_context():
            from app.db import db
            from app.org.demo import load_demo
            from app.org.surveys import sync_templates

            sync_templates(db.session)
            load_demo(db.session, app.config["SETTINGS"].var_dir)
            db.session.commit()
        made.append(app)
        return app

    yield make
    for app in made:
        app.extensions["wxsurvey_db"].session.remove()
        app.extensions["wxsurvey_db"].engine.dispose()


def assert_kind_429(answer) -> None:
    assert answer.status_code == 429
    assert 1 <= int(answer.headers["Retry-After"]) <= WINDOW
    assert "请稍等" in answer.get_data(as_text=True)


def submit(app, openid: str, address: str, via: str = ""):
    client = app.test_client()
    login(client, openid)
    where = {"REMOTE_ADDR": address}
    token = token_of(client.get(URL, environ_base=where).get_data(as_text=True))
    return client.post(URL + via, data=answers(token), environ_base=where)


@pytest.mark.parametrize("via", ["", "?via=view"])  # the fast path, then the Flask view
def test_submissions_are_limited_per_ip_prefix(limited_app, redis_client, via):
    app = limited_app(submissions_per_prefix=3)
    for n in range(3):
        assert submit(app, f"o-{n}", f"203.0.113.{n + 1}", via).status_code == 200
    with dispatched(app) as seen:
        assert_kind_429(submit(app, "o-3", "203.0.113.200", via))  # the same /24
    assert [s for s in seen if s.startswith("POST")] == ([] if not via else [f"POST {URL}?via=view"])
    assert redis_client.xlen(intake.STREAM) == 3  # nothing stored for the refused one
    assert submit(app, "o-3", "198.51.100.1", via).status_code == 200  # another prefix
    assert redis_client.xlen(intake.STREAM) == 4


def test_a_campaign_peak_is_never_throttled(app, session, demo, redis_client):
    """1,000 submissions in one second from 100 prefixes under the default limits: all accepted."""
    from app.db import db

    settings = app.config["SETTINGS"]
    form, dept = intake.load_form(db.session, "demo-departments", "D08")
    now = datetime.now(UTC)
    kinds = []
    for n in range(1000):
        token = intake.issue_form_token(settings.app.secret_key)
        data = {q.input_name: [q.options[0].key] for q in form.questions if q.options}
        outcome = intake.record_response(
            db.session, redis_client, settings, form=form, department=dept, openid=f"o-peak-{n}", data=data,
            form_token=token, remote_addr=f"10.{n % 100}.7.{n % 250}", now=now,
        )  # fmt: skip
        kinds.append(outcome.kind)
    assert kinds.count("accepted") == 1000


def test_console_sign_in_is_limited_per_ip_prefix(limited_app):
    from tests.console.test_console import PASSWORD
    from tests.console.test_console import login as console_login

    app = limited_app(logins_per_prefix=2)
    with app.app_context():
        from app.db import db

        accounts.create_admin(db.session, username="city", password=PASSWORD, role="city_admin")
        db.session.commit()
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = "203.0.113.9"
    assert console_login(client, "city", "wrong-password-1").status_code == 403
    assert console_login(client, "city", "wrong-password-2").status_code == 403
    assert_kind_429(console_login(client, "city"))
    other = app.test_client()
    other.environ_base["REMOTE_ADDR"] = "198.51.100.9"
    assert console_login(other, "city").status_code == 302


def test_api_is_limited_per_token(limited_app):
    app = limited_app(api_per_token=2)
    with app.app_context():
        from app.db import db

        first = accounts.create_token(db.session, "platform").secret
        second = accounts.create_token(db.session, "backup").secret
        db.session.commit()
    client = app.test_client()

    def call(secret):
        return client.get("/api/v1/surveys", headers={"Authorization": f"Bearer {secret}"})

    assert call(first).status_code == call(first).status_code == 200
    limited = call(first)
    assert limited.status_code == 429 and limited.get_json()["status"] == 429
    assert 1 <= int(limited.headers["Retry-After"]) <= WINDOW
    assert call(second).status_code == 200


@pytest.mark.parametrize("via", ["fast", "view"])
def test_webhook_is_limited_per_openid(limited_app, redis_client, via):
    app = limited_app(webhook_per_openid=2)
    wechat = app.config["SETTINGS"].wechat
    client = app.test_client() if via == "fast" else _view_client(app)
    openid, now = new_openid(), int(time.time())

    def scan(code: str, at: int):  # events are told apart by sender and CreateTime
        return seal(event_xml(ACCOUNT, openid, "SCAN", f"d:{code}", create_time=at), wechat, "plaintext")

    first = scan("D08", now - 2)
    answered = _post(client, first)
    assert "<xml>" in answered.get_data(as_text=True)
    assert _post(client, first).get_data() == answered.get_data()  # WeChat's retry: not counted
    assert "<xml>" in _post(client, scan("D09", now - 1)).get_data(as_text=True)
    third = _post(client, scan("D18", now))
    assert third.status_code == 200 and third.get_data(as_text=True) == "success"
    rkey = respondent_key(app.config["SETTINGS"].survey.respondent_secret, openid)
    assert scanned_recently(redis_client, rkey, "D09") and not scanned_recently(redis_client, rkey, "D18")
    other = seal(event_xml(ACCOUNT, new_openid(), "SCAN", "d:D18"), wechat, "plaintext")
    assert "<xml>" in _post(client, other).get_data(as_text=True)


def test_limits_are_configurable_and_checked(tmp_path):
    (tmp_path / "c.toml").write_text("[limits]\nwindow = 30\napi_per_token = 0\n")
    settings = load_settings(tmp_path / "c.toml", environ={"WXSURVEY_LIMITS_LOGINS_PER_PREFIX": "5"})
    assert (settings.limits.window, settings.limits.api_per_token, settings.limits.logins_per_prefix) == (
        30,
        0,
        5,
    )
    from app.security.rate_limits import limit_for

    assert limit_for(settings, "api") is None and limit_for(settings, "login").allowed == 5
    with pytest.raises(ConfigError, match="limits.submissions_per_prefix"):
        load_settings(tmp_path / "c.toml", environ={"WXSURVEY_LIMITS_SUBMISSIONS_PER_PREFIX": "-1"})
    with pytest.raises(ConfigError, match="limits.window"):
        load_settings(tmp_path / "c.toml", environ={"WXSURVEY_LIMITS_WINDOW": "0"})
