"""The questionnaire page over HTTP: form, inline errors, thanks, already evaluated, closed, bad input."""

from __future__ import annotations

import re

import pytest

from app import intake
from app.intake import drain
from app.org import surveys

URL = "/q/demo-departments/D08"
WECHAT_UA = (
    "Mozilla/5.0 (Linux; Android 13; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/116.0 "
    "Mobile Safari/537.36 MicroMessenger/8.0.47.2560(0x28002F35) WeChat/arm64 NetType/WIFI Language/zh_CN"
)


def login(client, openid: str = "o-page") -> None:
    with client.session_transaction() as sess:
        sess["wx_openid"] = openid
        sess["wx_channel"] = "wechat"


def token_of(html: str) -> str:
    return re.search(r'name="form_token" value="([^"]+)"', html).group(1)


def answers(token: str, **extra) -> dict:
    data = {
        "form_token": token, "q_overall": "satisfied", "q_service_attitude": "basic",
        "q_efficiency": "satisfied", "q_openness": "very_satisfied", "q_integrity": "satisfied",
        "q_respondent_type": "enterprise",
    }  # fmt: skip
    data.update(extra)
    return {k: v for k, v in data.items() if v is not None}


def test_form_thanks_then_already(client, demo, session, redis_client):
    login(client)
    page = client.get(URL)
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "市教育局" in html and "<fieldset" in html and "大字模式" in html
    token = token_of(html)
    done = client.post(URL, data=answers(token, q_suggestion="窗口服务很耐心"))
    assert done.status_code == 200 and "感谢您的评价" in done.get_data(as_text=True)
    again = client.post(URL, data=answers(token))  # a resend of the same form
    assert again.status_code == 200 and "感谢您的评价" in again.get_data(as_text=True)
    second = client.post(URL, data=answers(token_of(html.replace(token, intake.issue_form_token("x")))))
    assert second.status_code == 400  # a token not signed by us
    later = client.get(URL)
    assert "您已经评价过了" in later.get_data(as_text=True)
    drain.drain_backlog(session, redis_client)
    assert client.get(URL).status_code == 200
    redis_client.flushdb()  # the done key gone: SQL still knows
    assert "您已经评价过了" in client.get(URL).get_data(as_text=True)


def test_second_form_gets_already_page(client, demo):
    login(client)
    first = token_of(client.get(URL).get_data(as_text=True))
    second = token_of(client.get(URL).get_data(as_text=True))
    assert client.post(URL, data=answers(first)).status_code == 200
    refused = client.post(URL, data=answers(second))
    assert refused.status_code == 409 and "您已于" in refused.get_data(as_text=True)


def test_inline_errors_keep_answers(client, demo, redis_client):
    login(client)
    token = token_of(client.get(URL).get_data(as_text=True))
    page = client.post(URL, data=answers(token, q_overall=None, q_suggestion="长" * 501))
    html = page.get_data(as_text=True)
    assert page.status_code == 400
    assert "请选择一项" in html and "请不要超过 500 个字" in html
    assert re.search(r'value="enterprise"\s+checked', html)  # kept
    assert redis_client.xlen(intake.STREAM) == 0


@pytest.mark.parametrize(
    "url, data, status",
    [
        ("/q/no-such-survey/D08", {}, 404),
        ("/q/demo-departments/NOPE", {}, 404),
        ("/q/demo-departments/C01", {}, 409),  # a county in the city-department survey: forged pair
        (URL, {"q_unknown": "x"}, 400),
        (URL, {"q_overall": "not-an-option"}, 400),
        (URL, {"form_token": "tampered"}, 400),
    ],
)
def test_bad_input_is_4xx_and_stores_nothing(client, demo, redis_client, url, data, status):
    login(client)
    token = token_of(client.get(URL).get_data(as_text=True))
    response = client.post(url, data={**answers(token), **data})
    assert response.status_code == status
    assert "Traceback" not in response.get_data(as_text=True)
    assert redis_client.xlen(intake.STREAM) == 0


def test_tampered_session_is_refused(client, demo, redis_client):
    login(client)
    token = token_of(client.get(URL).get_data(as_text=True))
    cookie = client.get_cookie("session")
    client.set_cookie("session", cookie.value[:-4] + "AAAA")
    response = client.post(URL, data=answers(token))
    assert response.status_code == 403 and "请重新" in response.get_data(as_text=True)
    assert redis_client.xlen(intake.STREAM) == 0


def test_closed_survey_and_inactive_department(client, demo, session):
    login(client)
    surveys.close_survey(session, "demo-departments")
    session.commit()
    intake.forms._caches.clear()
    page = client.get(URL)
    assert page.status_code == 200 and "已经结束" in page.get_data(as_text=True)
    assert client.post(URL, data={}).status_code == 409


def test_large_text_mode(client, demo):
    login(client)
    html = client.get(URL + "?text=large").get_data(as_text=True)
    assert 'class=" large-text"' in html or "large-text" in html.split("<body", 1)[1][:80]


@pytest.mark.browser
def test_phone_in_wechat_answers_and_sees_thanks_then_already(browser, live_server, demo, artifacts):
    context = browser.new_context(
        viewport={"width": 360, "height": 740}, user_agent=WECHAT_UA, locale="zh-CN"
    )
    page = context.new_page()
    try:
        # The session as WeChat OAuth leaves it (identity's own flow is tested with the simulator).
        page.goto(live_server.url + "/healthz")
        with live_server.server.app.test_request_context():
            from flask import session as flask_session

            app = live_server.server.app
            flask_session["wx_openid"] = "o-browser"
            flask_session["wx_channel"] = "wechat"
            cookie = app.session_interface.get_signing_serializer(app).dumps(dict(flask_session))
        context.add_cookies([{"name": "session", "value": cookie, "url": live_server.url}])
        page.goto(live_server.url + URL)
        assert page.evaluate("document.documentElement.scrollWidth") <= 360
        page.screenshot(path=str(artifacts / "questionnaire-360.png"), full_page=True)
        page.click("text=提交评价")
        assert "请选择一项" in page.content()
        for key in ("overall", "service_attitude", "efficiency", "openness", "integrity"):
            page.check(f"input[name=q_{key}][value=satisfied]")
        page.check("input[name=q_respondent_type][value=citizen]")
        page.fill("textarea[name=q_suggestion]", "办事很方便，谢谢！")
        page.click("text=提交评价")
        page.wait_for_selector("text=感谢您的评价")
        page.screenshot(path=str(artifacts / "questionnaire-thanks-360.png"), full_page=True)
        page.goto(live_server.url + URL)
        page.wait_for_selector("text=您已经评价过了")
        page.screenshot(path=str(artifacts / "questionnaire-already-360.png"), full_page=True)
    finally:
        context.close()
