"""The department_evaluation questionnaire (matrix, 0-10 scale, a follow-up, a question for service
halls) answered in headless Chromium at 360 px, with and without JavaScript, then its tallies per
indicator pulled through the API; axe-core finds no serious or critical violation on the pages."""

from __future__ import annotations

import re

import pytest
import requests

from app.accounts.tokens import create_token
from app.intake import drain
from app.org import surveys
from app.tally.verify import verify_tallies
from tests.a11y.axe import axe_source, blocking_violations
from tests.factories import open_evaluation

pytestmark = pytest.mark.browser
WECHAT_UA = (
    "Mozilla/5.0 (Linux; Android 13; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/116.0 "
    "Mobile Safari/537.36 MicroMessenger/8.0.47.2560(0x28002F35) WeChat/arm64 NetType/WIFI Language/zh_CN"
)
MATRIX = ("attitude", "efficiency", "integrity", "facilities")


@pytest.fixture
def evaluation(demo, session):
    open_evaluation(session)
    session.commit()


def phone(browser, live_server, openid: str, javascript: bool = True):
    """A 360 px WeChat browser whose session holds `openid`, as the OAuth step leaves it."""
    context = browser.new_context(
        viewport={"width": 360, "height": 740},
        user_agent=WECHAT_UA,
        locale="zh-CN",
        java_script_enabled=javascript,
    )
    app = live_server.server.app
    with app.test_request_context():
        cookie = app.session_interface.get_signing_serializer(app).dumps(
            {"wx_openid": openid, "wx_channel": "wechat"}
        )
    context.add_cookies([{"name": "session", "value": cookie, "url": live_server.url}])
    return context


def fits(page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 360, f"{page.url} scrolls sideways at 360 px ({width} px)"


def fill_matrix(page, choice: str = "satisfied") -> None:
    for row in MATRIX:
        page.locator(f"input[name=q_{row}][value={choice}]").check()


def test_every_new_kind_with_javascript(browser, live_server, evaluation, artifacts):
    axe = axe_source()
    context = phone(browser, live_server, "o-js")
    page = context.new_page()
    try:
        page.goto(live_server.url + "/q/eval/D22")  # a 公共服务单位: asked the service-hall question too
        fits(page)
        follow_up = page.locator("#question-reasons")
        assert follow_up.is_hidden()  # no poor rating yet: the follow-up is not shown
        assert blocking_violations(page, axe) == []
        page.locator("input[name=q_overall][value=dissatisfied]").check()
        follow_up.wait_for(state="visible")
        page.locator("input[name=q_reasons][value=slow]").check()
        fill_matrix(page)
        page.locator("input[name=q_attitude][value=very_dissatisfied]").check()
        page.locator("label.point", has_text=re.compile(r"^\s*3\s*$")).click()
        page.locator("input[name=q_queue_time][value=long]").check()
        page.locator("input[name=q_respondent_type][value=citizen]").check()
        page.locator("#question-aspects").screenshot(path=str(artifacts / "matrix-360.png"))
        page.screenshot(path=str(artifacts / "questionnaire-kinds-360.png"), full_page=True)
        assert blocking_violations(page, axe) == []
        page.locator("input[name=q_overall][value=satisfied]").check()
        follow_up.wait_for(state="hidden")  # the rating is no longer poor: the reason is not sent
        page.click("text=提交评价")
        page.wait_for_selector("text=感谢您的评价")
        fits(page)
        assert blocking_violations(page, axe) == []
    finally:
        context.close()


def test_every_new_kind_without_javascript(browser, live_server, evaluation, session, redis_client):
    context = phone(browser, live_server, "o-nojs", javascript=False)
    page = context.new_page()
    try:
        page.goto(live_server.url + "/q/eval/D08?text=large")  # large-text mode at 360 px
        fits(page)
        follow_up = page.locator("#question-reasons")
        assert follow_up.is_visible()  # every follow-up shown, with when to answer it
        assert "选择「不满意」或「非常不满意」时请回答" in follow_up.inner_text()
        assert page.locator("input[name=q_queue_time]").count() == 0  # not a service hall
        page.locator("input[name=q_overall][value=very_satisfied]").check()
        page.locator("input[name=q_reasons][value=other]").check()  # answered though not asked
        fill_matrix(page, "very_satisfied")
        page.locator("label.point", has_text=re.compile(r"^\s*10\s*$")).click()
        page.locator("input[name=q_respondent_type][value=enterprise]").check()
        page.click("text=提交评价")
        page.wait_for_selector("#error-reasons")
        assert "不需要填写" in page.locator("#error-reasons").inner_text()
        assert page.locator("input[name=q_recommend][value=s10]").is_checked()  # answers kept
        fits(page)
        page.locator("input[name=q_reasons][value=other]").uncheck()
        page.click("text=提交评价")
        page.wait_for_selector("text=感谢您的评价")
    finally:
        context.close()
    drain.drain_backlog(session, redis_client)
    assert verify_tallies(session, surveys.get_survey(session, "eval")) == []  # recount from raw answers

    secret = create_token(session, "platform").secret
    session.commit()
    api = requests.get(
        live_server.url + "/api/v1/tallies",
        params={"survey": "eval", "group_by": "department,indicator,option", "indicator": "B01,C01"},
        headers={"Authorization": f"Bearer {secret}"},
        timeout=10,
    ).json()
    assert api["responses"] == 1
    assert [(r["department"], r["indicator"], r["option"], r["count"]) for r in api["rows"]] == [
        ("D08", "B01", "very_satisfied", 1),
        ("D08", "C01", "s10", 1),
    ]
    index = requests.get(
        live_server.url + "/api/v1/index",
        params={"survey": "eval", "group_by": "indicator", "department": "D08", "indicator": "C01"},
        headers={"Authorization": f"Bearer {secret}"},
        timeout=10,
    ).json()
    assert [(r["indicator"], r["mean"], r["net_score"]) for r in index["rows"]] == [("C01", 10.0, 100.0)]


def test_large_text_questionnaire_is_accessible(browser, live_server, evaluation, artifacts):
    axe = axe_source()
    context = phone(browser, live_server, "o-large")
    page = context.new_page()
    try:
        page.goto(live_server.url + "/q/eval/D17?text=large")
        fits(page)
        page.screenshot(path=str(artifacts / "questionnaire-kinds-large-360.png"), full_page=True)
        assert blocking_violations(page, axe) == []
        page.click("text=提交评价")  # the page with its errors shown
        page.wait_for_selector("#error-summary")
        fits(page)
        assert blocking_violations(page, axe) == []
    finally:
        context.close()
