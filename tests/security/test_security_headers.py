"""Security headers on every page (Flask's and the fast paths' answers), no inline script in any
template, HSTS only in production on https, and a CSP the console and questionnaire live with."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from app import accounts
from app.security.headers import CSP
from tests.conftest import settings_for
from tests.public.test_questionnaire import URL, answers, login, token_of

FAST_LAYER_BOTH_WAYS = True  # tests/conftest.py: with the WSGI fast paths and without
TEMPLATES = Path(__file__).resolve().parents[2] / "app" / "templates"
EXPECTED = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}


def assert_hardened(response) -> None:
    csp = response.headers.get("Content-Security-Policy", "")
    assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
    assert "unsafe-inline" not in csp.split("style-src-attr")[0], "inline script or <style> allowed"
    for name, value in EXPECTED.items():
        assert response.headers.get(name) == value, name


def test_no_template_holds_inline_script_or_style_elements():
    offenders = []
    for path in TEMPLATES.rglob("*.html"):
        text = path.read_text("utf-8")
        for match in re.finditer(r"<script\b[^>]*>", text):
            if "src=" not in match.group(0):
                offenders.append(f"{path.name}: inline <script>")
        if re.search(r"<style\b", text):
            offenders.append(f"{path.name}: <style> element")
        for match in re.finditer(r"\son[a-z]+\s*=", text):
            offenders.append(f"{path.name}: event handler attribute {match.group(0).strip()}")
        if "javascript:" in text:
            offenders.append(f"{path.name}: javascript: URL")
    assert offenders == []


def test_every_kind_of_page_is_hardened(app, client, demo, session, redis_client):
    accounts.create_admin(session, username="city", password="correct-horse-battery", role="city_admin")
    session.commit()
    for path in ("/console/login", "/no/such/page", "/healthz", "/api/v1/openapi.json", "/api/v1/surveys",
                 "/static/citizen.css", "/dev/phone", "/wechat"):  # fmt: skip
        assert_hardened(client.get(path))
    login(client)
    page = client.get(URL)
    assert page.status_code == 200
    assert_hardened(page)
    token = token_of(page.get_data(as_text=True))
    second = token_of(client.get(URL).get_data(as_text=True))
    assert_hardened(client.post(URL, data=answers(token)))  # the fast path's thanks
    assert_hardened(client.post(URL, data=answers(second)))  # the fast path's already-evaluated
    assert_hardened(client.post(URL, data=answers(token, q_overall="nope")))  # the view's 400


def test_webhook_fast_path_answers_are_hardened(app, client, demo, redis_client, fast_layer):
    from app.dev.wechat_server import event_xml, seal
    from tests.fast.test_fast_submit import dispatched
    from tests.fast.test_fast_webhook import _post
    from tests.wechat.test_wechat_webhook import ACCOUNT, new_openid

    sealed = seal(event_xml(ACCOUNT, new_openid(), "SCAN", "d:D08"), app.config["SETTINGS"].wechat, "safe")
    with dispatched(app) as seen:
        answered = _post(client, sealed)
    assert len(seen) == (0 if fast_layer else 1) and answered.status_code == 200
    assert_hardened(answered)


def test_oauth_callback_answers_are_hardened(app, client, demo, live_server, fast_layer):
    """The callback's redirect with the new session, its refresh, and its refusal, both ways."""
    from tests.fast.test_fast_callback import citizen
    from tests.public.test_oauth import add_whoami

    add_whoami(app)
    app.config["SETTINGS"].app.base_url = live_server.url
    query = citizen(app, client, "oHARDENED0001")
    for answered in (client.get("/oauth/callback?" + query), client.get("/oauth/callback?" + query)):
        assert answered.status_code == 302
        assert_hardened(answered)
    refused = app.test_client().get("/oauth/callback?" + query)
    assert refused.status_code == 400
    assert_hardened(refused)


def test_hsts_only_in_production_on_https(tmp_path, database_url, redis_url, redis_client):
    from app import create_app

    secrets = {"app": {"mode": "production", "secret_key": "s" * 32, "base_url": "https://wx.example.gov.cn"},
               "survey": {"respondent_secret": "r" * 32},
               "wechat": {"appid": "wx1", "secret": "x", "token": "t"}}  # fmt: skip
    production = create_app(settings_for(tmp_path, database_url, redis_url, **secrets))
    answer = production.test_client().get("/healthz")
    assert answer.headers["Strict-Transport-Security"].startswith("max-age=")
    assert_hardened(answer)
    dev = create_app(settings_for(tmp_path, database_url, redis_url))
    assert "Strict-Transport-Security" not in dev.test_client().get("/healthz").headers
    for made in (production, dev):
        made.extensions["wxsurvey_db"].engine.dispose()


@pytest.mark.browser
def test_console_and_questionnaire_break_no_csp_rule(app, session, demo, live_server, browser):
    """Every page a browser opens reports no CSP violation, and the console's script still runs."""
    accounts.create_admin(session, username="city", password="correct-horse-battery", role="city_admin")
    session.commit()
    context = browser.new_context(viewport={"width": 360, "height": 740}, locale="zh-CN")
    page = context.new_page()
    violations: list[str] = []
    page.on("console", lambda msg: "Content Security Policy" in msg.text and violations.append(msg.text))
    base = live_server.url
    page.goto(f"{base}/console/login")
    page.fill("input[name=username]", "city")
    page.fill("input[name=password]", "correct-horse-battery")
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/console/surveys")
    for path in ("/console/results", "/console/departments", "/console/review", "/console/audit"):
        page.goto(base + path)
    page.goto(f"{base}/console/posters")
    with page.expect_navigation():  # console.js submits the filter when its select changes
        page.select_option("select[name=kind]", "url")
    assert "kind=url" in page.url
    page.goto(f"{base}/q/demo-departments/D08")
    context.close()
    assert violations == [], CSP
