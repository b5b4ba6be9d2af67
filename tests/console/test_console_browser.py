"""The console in headless Chromium: sign in, create a department, download and decode its
poster, open a survey, watch a response reach the results, scope and CSRF refusals, and
screenshots of the main pages at desktop and phone widths (saved under test-artifacts/)."""

from __future__ import annotations

import io

import pytest
import zxingcpp
from PIL import Image

from app import accounts
from app.org.departments import get_department
from app.org.surveys import get_survey
from tests.factories import add_response

pytestmark = pytest.mark.browser
PASSWORD = "correct-horse-battery"
ANSWERS = {"overall": "very_satisfied", "service_attitude": "satisfied", "efficiency": "satisfied"}


@pytest.fixture
def console(app, session, demo, live_server, browser):
    accounts.create_admin(session, username="city", password=PASSWORD, role="city_admin")
    accounts.create_admin(session, username="east", password=PASSWORD, role="scoped_admin", scope_code="C01")
    session.commit()
    context = browser.new_context(
        viewport={"width": 1280, "height": 900}, accept_downloads=True, locale="zh-CN"
    )
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())
    yield page, live_server.url
    context.close()


def sign_in(page, base: str, username: str) -> None:
    page.goto(f"{base}/console/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/console/surveys")


def shoot(page, artifacts, name: str) -> None:
    page.screenshot(path=str(artifacts / f"console-{name}-{page.viewport_size['width']}.png"), full_page=True)


def test_admin_runs_a_campaign_in_the_browser(console, session, artifacts):
    page, base = console
    page.goto(f"{base}/console/login")
    shoot(page, artifacts, "login")
    sign_in(page, base, "city")
    shoot(page, artifacts, "surveys")

    # Create a department through the form.
    page.goto(f"{base}/console/departments")
    form = page.locator("form[action$='/console/departments']")
    form.locator("input[name=code]").fill("D26")
    form.locator("input[name=name]").fill("市数据局")
    form.locator("select[name=level]").select_option("city")
    form.locator("select[name=category]").select_option("政府部门")
    form.locator("button[type=submit]").click()
    page.wait_for_url(f"{base}/console/departments/D26")
    assert page.locator("h1").inner_text().startswith("市数据局")
    page.goto(f"{base}/console/departments")
    shoot(page, artifacts, "departments")

    # Download its poster and read the code back.
    page.goto(f"{base}/console/posters?survey=demo-departments")
    shoot(page, artifacts, "posters")
    row = page.locator("tr", has_text="市数据局")
    with page.expect_download() as info:
        row.locator("a.download").click()
    png = open(info.value.path(), "rb").read()
    codes = [c.text for c in zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))]
    assert codes == ["http://wx.test/q/demo-departments/D26"]

    # Create a survey as a draft, preview it, and open it.
    page.goto(f"{base}/console/surveys")
    create = page.locator("form[action$='/console/surveys']")
    create.locator("input[name=slug]").fill("browser-survey")
    create.locator("input[name=title]").fill("浏览器测试调查")
    create.locator("button[type=submit]").click()
    page.wait_for_url(f"{base}/console/surveys/browser-survey")
    assert "草稿" in page.locator("h1").inner_text()
    page.goto(f"{base}/console/surveys/browser-survey/preview")
    shoot(page, artifacts, "preview")
    page.goto(f"{base}/console/surveys/browser-survey")
    page.click("button:has-text('开始调查')")
    page.wait_for_selector("h1 .badge.open")
    shoot(page, artifacts, "survey")

    # A response submitted to the new department shows up in the results.
    page.goto(f"{base}/console/results?survey=demo-departments")
    assert page.locator("#count-responses").inner_text() == "0"
    add_response(session, get_survey(session, "demo-departments"), get_department(session, "D26"), ANSWERS)
    session.commit()
    page.reload()
    assert page.locator("#count-responses").inner_text() == "1"
    assert page.locator("tr", has_text="市数据局").locator(".bar .point").count() == 1
    assert "非常满意" in page.locator(".option-bars").first.inner_text()
    shoot(page, artifacts, "results")
    page.goto(f"{base}/console/review")
    shoot(page, artifacts, "review")
    page.goto(f"{base}/console/audit")
    assert "department.create" in page.content()
    shoot(page, artifacts, "audit")

    # The same pages at a phone's width.
    page.set_viewport_size({"width": 360, "height": 740})
    for path, name in [("surveys", "surveys"), ("departments", "departments"), ("results", "results"),
                       ("posters", "posters"), ("surveys/browser-survey/preview", "preview"),
                       ("review", "review")]:  # fmt: skip
        page.goto(f"{base}/console/{path}")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 360, f"{path} scrolls sideways at 360 px ({width} px)"
        shoot(page, artifacts, name)


def test_scope_and_csrf_are_enforced_in_the_browser(console, session):
    page, base = console
    sign_in(page, base, "east")
    own = page.goto(f"{base}/console/departments/C01T1")
    assert own.status == 200
    other = page.goto(f"{base}/console/departments/C02")
    assert other.status == 403 and "不在您的管辖范围内" in page.content()

    # A form whose CSRF token was removed is refused and changes nothing.
    page.goto(f"{base}/console/departments/C01T1")
    page.evaluate("document.querySelectorAll('input[name=csrf_token]').forEach(e => e.remove())")
    with page.expect_navigation() as nav:
        page.click("button:has-text('停用该单位')")
    assert nav.value.status == 400
    session.expire_all()
    assert get_department(session, "C01T1").active
