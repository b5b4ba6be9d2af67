"""A new citizen in WeChat's browser (headless Chromium at 360 px): the questionnaire's link, WeChat's
OAuth (the simulator inside the app), and the callback answering with the questionnaire itself; its
script then puts the questionnaire's own address in the address bar, so a reload, the back button
or WeChat's share menu never meet the spent code."""

from __future__ import annotations

import pytest

from tests.public.test_questionnaire import URL, answers
from tests.public.test_questionnaire_kinds_browser import WECHAT_UA, fits

pytestmark = pytest.mark.browser
CHOICES = {name: value for name, value in answers("").items() if name != "form_token"}


def test_the_callbacks_questionnaire_takes_its_own_address(browser, live_server, demo, artifacts):
    live_server.server.app.config["SETTINGS"].app.base_url = live_server.url
    viewport = {"width": 360, "height": 740}
    context = browser.new_context(viewport=viewport, user_agent=WECHAT_UA, locale="zh-CN")
    page = context.new_page()
    seen: list[str] = []
    page.on("response", lambda response: seen.append(f"{response.status} {response.url}"))
    page.goto(live_server.url + URL)
    page.wait_for_url(live_server.url + URL)
    callback = [line for line in seen if "/oauth/callback?" in line]
    assert len(callback) == 1 and callback[0].startswith("200 "), seen  # the form came with the callback
    assert page.locator("h1").inner_text().startswith("请为「")
    fits(page)
    page.screenshot(path=str(artifacts / "callback-questionnaire-360.png"), full_page=True)

    page.reload()  # the questionnaire's address: the form again, no second code exchange
    assert page.url == live_server.url + URL and page.locator("form.questionnaire").count() == 1
    assert len([line for line in seen if "/oauth/callback?" in line]) == 1
    for name, value in CHOICES.items():
        page.locator(f"input[name={name}][value={value}]").check()
    page.locator("form.questionnaire button[type=submit]").click()
    page.wait_for_load_state()
    assert "感谢您的评价" in page.content()
    context.close()
