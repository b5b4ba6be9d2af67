"""The scan pass (app/org/scan_pass.py): a scan's reply link opens the scanner's questionnaire in
WeChat's browser without the OAuth round trip, once; every other way in still goes through OAuth.
Run with the fast paths on and off (tests/public): both must answer alike."""

from __future__ import annotations

import socket
import time
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select

from app.dev.wechat_server import event_xml
from app.intake import drain
from app.intake.respondents import respondent_key
from app.models import Response
from tests.conftest import all_keys, demo_app
from tests.public.test_questionnaire import WECHAT_UA, answers, login, token_of
from tests.wechat.test_wechat_webhook import ACCOUNT, deliver, new_openid

DESKTOP_UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120 Safari/537.36"


def scanned(app, client, openid: str, scene: str = "s:demo-departments:D08", later: int = 0) -> str:
    """The reply link of a SCAN event from this follower, through the real webhook (path and query);
    `later`: seconds after now (WeChat tells two scans of one follower apart by their CreateTime)."""
    event = event_xml(ACCOUNT, openid, "SCAN", scene, create_time=int(time.time()) + later)
    reply = deliver(client, app.config["SETTINGS"], event)
    url = urlsplit(reply["Url"])
    assert url.query.startswith("p="), reply["Url"]
    return f"{url.path}?{url.query}"


def phone(app):
    """A new WeChat browser: no cookie yet."""
    return app.test_client()


def opened(browser, link: str, ua: str = WECHAT_UA):
    return browser.get(link, headers={"User-Agent": ua})


def to_oauth(response) -> bool:
    return response.status_code == 302 and "/connect/oauth2/authorize?" in response.headers["Location"]


def stored_for(session, app, openid: str) -> int:
    key = respondent_key(app.config["SETTINGS"].survey.respondent_secret, openid)
    return session.scalar(select(func.count()).select_from(Response).where(Response.respondent_key == key))


def test_the_scanner_answers_without_oauth_and_as_themselves(app, client, demo, session, redis_client):
    scanner = new_openid()
    link = scanned(app, client, scanner)
    browser = phone(app)
    page = opened(browser, link)
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "市教育局" in html and 'name="form_token"' in html
    assert 'action="/q/demo-departments/D08"' in html  # the answer goes to the plain path
    assert page.headers["Cache-Control"] == "no-store" and "session=" in page.headers["Set-Cookie"]
    assert all_keys(redis_client, "wx:pass:*") == []  # used up
    done = browser.post(
        link.partition("?")[0], data=answers(token_of(html)), headers={"User-Agent": WECHAT_UA}
    )
    assert done.status_code == 200 and "感谢您的评价" in done.get_data(as_text=True)
    # A refresh of the link: the session answers, the used pass is not asked for again.
    assert "您已经评价过了" in opened(browser, link).get_data(as_text=True)
    drain.drain_backlog(session, redis_client)
    assert stored_for(session, app, scanner) == 1  # in SQL once, under the scanner's own key
    # Through OAuth as the same person later: one answer is all they get.
    again = phone(app)
    login(again, scanner)
    assert "您已经评价过了" in again.get(link.partition("?")[0]).get_data(as_text=True)


def test_a_pass_opens_once_then_oauth(app, client, demo, redis_client):
    link = scanned(app, client, new_openid())
    assert opened(phone(app), link).status_code == 200
    assert to_oauth(opened(phone(app), link))  # the same link opened again in another browser


def test_a_browser_with_an_identity_keeps_it_and_leaves_the_pass(app, client, demo, redis_client):
    scanner = new_openid()
    link = scanned(app, client, scanner)
    friend = phone(app)
    login(friend, "o-friend-with-a-session")
    page = opened(friend, link)
    assert page.status_code == 200 and "Set-Cookie" not in page.headers
    assert len(all_keys(redis_client, "wx:pass:*")) == 1  # not taken: it is still the scanner's
    done = friend.post(link.partition("?")[0], data=answers(token_of(page.get_data(as_text=True))))
    assert done.status_code == 200
    assert opened(phone(app), link).status_code == 200  # the scanner's own open still works


def test_a_pass_leads_only_to_its_own_questionnaire(app, client, demo, redis_client):
    link = scanned(app, client, new_openid())
    elsewhere = link.replace("/D08?", "/D09?")
    assert to_oauth(opened(phone(app), elsewhere))
    assert all_keys(redis_client, "wx:pass:*") == []  # used up where it did not lead
    assert to_oauth(opened(phone(app), link))


@pytest.mark.parametrize(
    "query", ["p=", "p=short", "p=" + "A" * 22, "p=" + "%E4%B8%AD" * 8, "p=../../etc&p=x", "p=" + "A" * 500]
)
def test_a_bad_or_unknown_pass_is_oauth_not_an_error(app, demo, query):
    response = opened(phone(app), f"/q/demo-departments/D08?{query}")
    assert to_oauth(response)


def test_head_and_post_spend_no_pass(app, client, demo, redis_client):
    link = scanned(app, client, new_openid())
    assert phone(app).head(link, headers={"User-Agent": WECHAT_UA}).status_code == 302
    posted = phone(app).post(link, data=answers("x"), headers={"User-Agent": WECHAT_UA})
    assert posted.status_code == 403  # no identity: "please come in again", the pass untouched
    assert len(all_keys(redis_client, "wx:pass:*")) == 1
    assert opened(phone(app), link).status_code == 200


def test_a_scanner_who_answered_sees_the_already_page(app, client, demo, session, redis_client):
    scanner = new_openid()
    first = phone(app)
    page = opened(first, scanned(app, client, scanner))
    assert (
        first.post(page.request.path, data=answers(token_of(page.get_data(as_text=True)))).status_code == 200
    )
    again = opened(phone(app), scanned(app, client, scanner, later=2))  # scans again, a new browser
    assert again.status_code == 200 and "您已经评价过了" in again.get_data(as_text=True)
    assert "session=" in again.headers["Set-Cookie"]  # the identity is kept all the same


def test_a_closed_survey_leaves_the_pass(app, client, demo, session, redis_client):
    from app.org import surveys

    link = scanned(app, client, new_openid())
    surveys.close_survey(session, "demo-departments")
    session.commit()
    closed = opened(phone(app), link)
    assert closed.status_code == 200 and "已经结束" in closed.get_data(as_text=True)
    assert len(all_keys(redis_client, "wx:pass:*")) == 1


def test_outside_wechat_the_pass_is_not_taken(tmp_path, database_url, redis_url, queue_url, redis_client):
    """Production (no simulator): a forwarded link opened in a desktop browser gets "open in
    WeChat"; in WeChat's browser the same link opens the questionnaire."""
    with demo_app(tmp_path, database_url, redis_url, queue_url, wechat={"simulator": False}) as app:
        link = scanned(app, app.test_client(), new_openid())
        desktop = opened(phone(app), link, DESKTOP_UA)
        assert desktop.status_code == 200 and "请在微信中打开" in desktop.get_data(as_text=True)
        assert len(all_keys(redis_client, "wx:pass:*")) == 1
        assert opened(phone(app), link).status_code == 200


def test_no_redis_at_the_form_is_oauth(tmp_path, app, client, demo, database_url, queue_url):
    """The pass cannot be read (Redis unreachable): the citizen goes through OAuth, never a 500."""
    from app import create_app
    from tests.conftest import settings_for

    link = scanned(app, client, new_openid())
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        dead = f"redis://127.0.0.1:{unused.getsockname()[1]}/0"
    (tmp_path / "cut").mkdir()
    cut_off = create_app(settings_for(tmp_path / "cut", database_url, dead, queue_url))
    try:
        response = opened(cut_off.test_client(), link)
        assert to_oauth(response), response.status_code
    finally:
        cut_off.extensions["wxsurvey_db"].engine.dispose()


def test_passes_can_be_turned_off(tmp_path, database_url, redis_url, queue_url, redis_client):
    with demo_app(tmp_path, database_url, redis_url, queue_url, wechat={"scan_pass_seconds": 0}) as app:
        scan = event_xml(ACCOUNT, new_openid(), "SCAN", "d:D08")
        reply = deliver(app.test_client(), app.config["SETTINGS"], scan)
        assert reply["Url"] == "http://wx.test/q/demo-departments/D08"
        assert all_keys(redis_client, "wx:pass:*") == []
