"""The whole 差评 loop in headless Chromium: a citizen rates 非常不满意 with a comment and consent on
the simulated phone; the township's admin answers in the console; the phone receives the WeChat
template message, opens the answer and re-rates; the figures move; an unanswered case escalates
when a test clock passes its deadline; the published results page reads well at 360 px.
Screenshots (test-artifacts/): cases-console-*.png, results-public-360.png (kept in docs/screenshots)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from app import accounts
from app.cases.publication import set_published
from app.jobs.cases import escalate_cases
from app.jobs.queues import get_queue
from app.jobs.worker import WxsurveyWorker
from app.models import FollowupCase
from app.org.departments import get_department
from app.org.surveys import get_survey
from app.redis_store import redis_store
from tests.cases.casework import COUNTY_SURVEY, TOWNSHIP, drain, rate
from tests.factories import random_load

pytestmark = pytest.mark.browser
PASSWORD = "correct-horse-battery"
COMMENT = "办证窗口中午没人，等了两个小时"


@pytest.fixture
def stack(app, session, demo, live_server):
    app.config["SETTINGS"].app.base_url = live_server.url  # links and the fake WeChat API
    accounts.create_admin(
        session, username="town", password=PASSWORD, role="scoped_admin", scope_code=TOWNSHIP
    )
    accounts.create_admin(
        session, username="county", password=PASSWORD, role="scoped_admin", scope_code="C01"
    )
    session.commit()
    return live_server.url


def sign_in(page, base: str, username: str) -> None:
    page.goto(f"{base}/console/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/console/surveys")


def fits_360(page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 360, f"{page.url} scrolls sideways at 360 px ({width} px)"


def test_the_whole_followup_loop(stack, app, session, browser, artifacts, redis_client):
    base = stack
    phone_context = browser.new_context(viewport={"width": 360, "height": 740}, locale="zh-CN")
    desk_context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN")
    phone, desk = phone_context.new_page(), desk_context.new_page()
    desk.on("dialog", lambda dialog: dialog.accept())
    try:
        # The citizen scans the township's code and opens the questionnaire from the reply.
        phone.goto(f"{base}/dev/phone")
        phone.select_option("#scene", f"s:{COUNTY_SURVEY}:{TOWNSHIP}")
        phone.click("#scan")
        phone.locator(".account .card").last.click()  # the reply is a card (图文消息)
        phone.wait_for_url(re.compile(rf".*/q/{COUNTY_SURVEY}/{TOWNSHIP}(\?p=[\w-]+)?(#.*)?$"))
        consent = phone.locator("#followup")
        assert consent.is_hidden()  # appears only after a 差评 or a comment (CSS :has, no script)
        for question in phone.locator("fieldset.question:not(#followup)").all():
            negative = question.locator("input[data-negative]")
            if negative.count():
                negative.last.check()
            elif question.locator("input[type=radio]").count():
                question.locator("input[type=radio]").first.check()
        assert consent.is_visible()
        assert not phone.locator("input[name=followup]").is_checked()  # unticked by default
        phone.fill("textarea[name=q_suggestion]", COMMENT)
        phone.check("input[name=followup]")
        phone.click("button[type=submit]:has-text('提交评价')")
        phone.get_by_text("感谢您的评价").wait_for()
        drain(session, redis_client)
        case = session.query(FollowupCase).one()
        assert case.contact is not None

        # The township's admin answers in the console.
        sign_in(desk, base, "town")
        desk.goto(f"{base}/console/cases?survey={COUNTY_SURVEY}")
        assert desk.locator("#cases-opened").inner_text() == "1"
        desk.click(f"#case-{case.id} a")
        assert COMMENT in desk.locator("#case-comment").inner_text()
        desk.fill("textarea[name=verification]", "经核实，中午窗口确实无人值守。")
        desk.fill("textarea[name=fix]", "已安排午间轮岗，公示值班电话。")
        desk.fill("textarea[name=reply]", "感谢您的反馈，窗口午间已有专人值守。")
        desk.click("button:has-text('提交答复')")
        desk.get_by_text("正在通过公众号通知市民").wait_for()

        # The notice job (the RQ worker) sends the template message through the fake WeChat API.
        WxsurveyWorker([get_queue("wechat")], connection=redis_store.raw).work(burst=True)
        session.expire_all()
        case = session.get(FollowupCase, case.id)
        assert (case.status, case.notify_status, case.contact) == ("closed", "sent", None), case.notify_error

        # The phone has the message; the citizen opens the answer and re-rates.
        phone.goto(f"{base}/dev/phone")
        message = phone.locator(".account .bubble", has_text="模板消息").last
        assert "已有答复" in message.inner_text()
        message.get_by_text("查看答复并评价").click()
        phone.wait_for_url(re.compile(r".*/c/[\w-]+$"))
        assert "午间已有专人值守" in phone.locator("#case-reply").inner_text()
        fits_360(phone)
        phone.screenshot(path=str(artifacts / "case-answer-360.png"), full_page=True)
        phone.check("input[value=satisfied]")
        phone.click("button:has-text('提交评价')")
        phone.get_by_text("感谢您的评价").wait_for()

        # The figures move.
        desk.goto(f"{base}/console/cases?survey={COUNTY_SURVEY}")
        assert desk.locator("#cases-on-time").inner_text() == "1"
        assert desk.locator("#cases-satisfaction").inner_text() == "100.0%"

        # A second 差评 nobody answers escalates once the test clock passes its deadline.
        rate(app, session, redis_client, "oSecondCitizen_0001", survey=COUNTY_SURVEY, dept=TOWNSHIP)
        drain(session, redis_client)
        late = session.query(FollowupCase).filter(FollowupCase.status == "open").one()
        assert escalate_cases(now=late.due_at - timedelta(minutes=1)) == 0
        assert escalate_cases(now=late.due_at + timedelta(minutes=1)) == 1
        desk.reload()
        assert "已升级至东湖区" in desk.locator(f"#case-{late.id}").inner_text()  # the township's mark
        assert desk.locator("#cases-escalated").inner_text() == "1"
        desk.screenshot(path=str(artifacts / "cases-console-1280.png"), full_page=True)
        desk.set_viewport_size({"width": 360, "height": 740})
        fits_360(desk)
        desk.screenshot(path=str(artifacts / "cases-console-360.png"), full_page=True)
        county = desk_context.browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN")
        county_page = county.new_page()
        sign_in(county_page, base, "county")
        county_page.goto(f"{base}/console/cases?survey={COUNTY_SURVEY}&status=escalated")
        assert "已升级至东湖区" in county_page.locator(f"#case-{late.id}").inner_text()  # and the county's
        county.close()

        # The published results page, on the phone (with enough answers elsewhere to rank).
        survey = get_survey(session, COUNTY_SURVEY)
        ranked = [get_department(session, code) for code in ("C01", "C02", "C03", "C01T2")]
        random_load(session, survey, ranked, 240)
        set_published(session, COUNTY_SURVEY, True, actor="test")
        session.commit()
        phone.goto(f"{base}/results/{COUNTY_SURVEY}")
        assert phone.locator("#fig-opened").inner_text() == "2"
        assert phone.locator("#fig-escalated").inner_text() == "1"
        assert phone.locator("#fig-satisfaction").inner_text() == "100.0%"
        assert COMMENT not in phone.content()
        fits_360(phone)
        phone.screenshot(path=str(artifacts / "results-public-360.png"), full_page=True)
    finally:
        phone_context.close()
        desk_context.close()
