"""Behind a reverse proxy: X-Forwarded-For is believed only through app.trusted_proxies, on the
questionnaire view, the submission fast path and the console sign-in alike."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app import accounts, intake
from app.config import AppSettings, ConfigError, Settings, load_settings
from app.intake.store import Submission
from app.models import AuditEntry
from app.security.client_address import client_address, parse_trusted_proxies
from tests.conftest import settings_for
from tests.public.test_questionnaire import URL, answers, login, token_of


def settings(value: str) -> Settings:
    return Settings(app=AppSettings(trusted_proxies=value))


@pytest.mark.parametrize(
    "trusted, remote, header, expected",
    [
        ("", "10.0.0.2", "198.51.100.7", "10.0.0.2"),  # no setting: the header is ignored
        ("1", "10.0.0.2", "198.51.100.7", "198.51.100.7"),
        ("1", "10.0.0.2", "6.6.6.6, 198.51.100.7", "198.51.100.7"),  # a forged left part is skipped
        ("2", "10.0.0.2", "198.51.100.7, 10.0.0.9", "198.51.100.7"),
        ("2", "10.0.0.2", "198.51.100.7", "10.0.0.2"),  # fewer hops than proxies: not theirs
        ("1", "10.0.0.2", "not-an-ip", "10.0.0.2"),
        ("10.0.0.0/8", "10.0.0.2", "6.6.6.6, 198.51.100.7, 10.1.1.1", "198.51.100.7"),
        ("10.0.0.0/8", "203.0.113.5", "198.51.100.7", "203.0.113.5"),  # not from our proxy: ignored
        ("10.0.0.0/8", "10.0.0.2", "10.0.0.3", "10.0.0.3"),  # only proxies: the farthest one
        ("10.0.0.0/8", "10.0.0.2", "junk, 10.0.0.3", "10.0.0.3"),
        ("10.0.0.0/8, fd00::/8", "fd00::1", "2001:db8::5", "2001:db8::5"),
        ("10.0.0.0/8", "10.0.0.2", "", "10.0.0.2"),
    ],
)
def test_client_address(trusted, remote, header, expected):
    environ = {"REMOTE_ADDR": remote, "HTTP_X_FORWARDED_FOR": header}
    assert client_address(environ, settings(trusted)) == expected


@pytest.mark.parametrize("value", ["10.0.0.0/33", "nginx", "11", "10.0.0.0/8,,banana"])
def test_malformed_setting_is_a_one_line_config_error(tmp_path, value):
    (tmp_path / "c.toml").write_text("")
    with pytest.raises(ConfigError, match="app.trusted_proxies"):
        load_settings(tmp_path / "c.toml", environ={"WXSURVEY_APP_TRUSTED_PROXIES": value})


def test_parse_accepts_counts_and_cidrs():
    assert parse_trusted_proxies("2").count == 2
    assert len(parse_trusted_proxies(" 10.0.0.0/8 , 192.168.1.5 ").networks) == 2


def last_ip_prefix(redis_client) -> str | None:
    (_id, fields), = redis_client.xrevrange(intake.STREAM, count=1)  # fmt: skip
    return Submission.decode(fields["p"]).meta["ip"]


@pytest.fixture
def proxied_app(tmp_path, database_url, redis_url, redis_client):
    from app import create_app
    from tests.conftest import empty_tables

    def make(trusted: str):
        app = create_app(settings_for(tmp_path, database_url, redis_url, app={"trusted_proxies": trusted}))
        app.config["TESTING"] = True
        empty_tables(app.extensions["wxsurvey_db"].engine)
        with app.app_context():
            from app.db import db
            from app.org.demo import load_demo
            from app.org.surveys import sync_templates

            sync_templates(db.session)
            load_demo(db.session, app.config["SETTINGS"].var_dir)
            db.session.commit()
        return app

    made = []
    yield lambda trusted: made.append(make(trusted)) or made[-1]
    for app in made:
        app.extensions["wxsurvey_db"].session.remove()
        app.extensions["wxsurvey_db"].engine.dispose()


@pytest.mark.parametrize("trusted, recorded", [("", "10.9.8.0/24"), ("10.0.0.0/8", "198.51.100.0/24")])
def test_submissions_record_the_client_behind_the_proxy(proxied_app, redis_client, trusted, recorded):
    app = proxied_app(trusted)
    proxy = {"REMOTE_ADDR": "10.9.8.7"}
    headers = {"X-Forwarded-For": "198.51.100.7"}
    for openid, via in (("o-fast", ""), ("o-view", "?via=view")):  # the fast path, then the Flask view
        client = app.test_client()
        login(client, openid)
        token = token_of(client.get(URL, environ_base=proxy).get_data(as_text=True))
        done = client.post(URL + via, data=answers(token), environ_base=proxy, headers=headers)
        assert done.status_code == 200
        assert last_ip_prefix(redis_client) == recorded


def test_console_login_audits_the_client_behind_the_proxy(proxied_app):
    from tests.console.test_console import PASSWORD
    from tests.console.test_console import login as console_login

    app = proxied_app("1")
    with app.app_context():
        from app.db import db

        accounts.create_admin(db.session, username="city", password=PASSWORD, role="city_admin")
        db.session.commit()
    client = app.test_client()
    client.environ_base.update(REMOTE_ADDR="10.9.8.7", HTTP_X_FORWARDED_FOR="198.51.100.7")
    assert console_login(client, "city").status_code == 302
    with app.app_context():
        from app.db import db

        entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "admin.login"))
        assert entry.ip == "198.51.100.7"
