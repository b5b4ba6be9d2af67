"""The WeChat simulator: the phone page over real HTTP, and in headless Chromium the whole way
phone page → scan → reply bubble → tap → fake OAuth → questionnaire."""

from __future__ import annotations

import importlib.util
import re

import pytest
import requests

from app.intake.respondents import respondent_key, scanned_recently


@pytest.fixture
def sim(app, live_server, demo):
    app.config["SETTINGS"].app.base_url = live_server.url
    return live_server


def test_phone_page_scan_text_and_menu_over_http(sim, redis_client, app):
    http = requests.Session()
    page = http.get(sim.url + "/dev/phone")
    assert page.status_code == 200 and "扫一扫" in page.text and "市教育局（D08）" in page.text
    openid = http.cookies.get("wxsim_openid")
    assert openid and openid.startswith("oSIM")
    for mode in ("plaintext", "compatible", "safe"):
        http.post(sim.url + "/dev/phone/scan", data={"scene": "s:demo-departments:D08", "mode": mode})
    chat = http.get(sim.url + "/dev/phone").text
    assert chat.count('<a class="card"') == 3 and chat.count("<strong>请为「市教育局」评价</strong>") == 3
    assert chat.count("欢迎关注") == 1  # the first scan subscribed; later ones are SCAN events
    assert "/dev/open?url=" in chat
    picture = re.search(r'<img src="(/cards/D08\.png\?v=\w+)"', chat).group(1)
    png = http.get(sim.url + picture)
    assert png.status_code == 200 and png.headers["Content-Type"] == "image/png"
    assert png.content.startswith(b"\x89PNG") and "immutable" in png.headers["Cache-Control"]
    secret = app.config["SETTINGS"].survey.respondent_secret
    assert scanned_recently(redis_client, respondent_key(secret, openid), "D08")
    http.post(sim.url + "/dev/phone/send", data={"text": "税务局"})
    http.post(sim.url + "/dev/phone/menu", data={"key": "HELP"})
    chat = http.get(sim.url + "/dev/phone").text
    assert "市税务局" in chat and "使用帮助" in chat
    assert http.post(sim.url + "/dev/phone/scan", data={"scene": "", "mode": "safe"}).status_code == 400
    assert http.post(sim.url + "/dev/phone/menu", data={"key": ""}).status_code == 400
    # a scanned simulator QR (its content is /dev/phone?ticket=…) preselects its scene
    from app.wechat_api import WeChatApi

    ticket = WeChatApi(app.config["SETTINGS"], redis_client).create_permanent_ticket("s:demo-counties:C03")
    chosen = http.get(ticket.url).text
    assert re.search(r'value="s:demo-counties:C03" selected', chosen)


def test_simulator_is_absent_in_production(tmp_path, database_url, redis_url, redis_client):
    from app import create_app
    from tests.conftest import settings_for

    settings = settings_for(
        tmp_path,
        database_url,
        redis_url,
        app={"mode": "production", "secret_key": "x" * 32, "base_url": "https://wx.test"},
        survey={"respondent_secret": "y" * 32},
        wechat={"appid": "wxprod", "secret": "s", "token": "t"},
    )
    app = create_app(settings)
    client = app.test_client()
    assert client.get("/dev/phone").status_code == 404
    assert client.get("/dev/wechat/connect/oauth2/authorize").status_code == 404
    app.extensions["wxsurvey_db"].engine.dispose()


@pytest.mark.browser
def test_phone_to_questionnaire_in_chromium(sim, browser, artifacts, redis_client, app):
    context = browser.new_context(viewport={"width": 360, "height": 740}, locale="zh-CN")
    page = context.new_page()
    try:
        page.goto(sim.url + "/dev/phone")
        page.select_option("#scene", "s:demo-departments:D08")
        page.select_option("select[name=mode]", "safe")
        page.click("#scan")
        card = page.locator(".account .card").last
        card.wait_for(timeout=10_000)
        assert "市教育局" in card.inner_text()
        page.wait_for_function("() => [...document.images].every(i => i.complete && i.naturalWidth > 0)")
        page.screenshot(path=str(artifacts / "simulator-phone-360.png"), full_page=True)
        card.click()
        # The reply's scan pass opens the questionnaire at once (no OAuth round trip).
        page.wait_for_url(re.compile(r".*/q/demo-departments/D08\?p=[A-Za-z0-9_-]{22}$"), timeout=15_000)
        openid = next(c["value"] for c in context.cookies() if c["name"] == "wxsim_openid")
        secret = app.config["SETTINGS"].survey.respondent_secret
        assert scanned_recently(redis_client, respondent_key(secret, openid), "D08")
        assert redis_client.keys("wx:pass:*") == []  # the pass was taken
        if importlib.util.find_spec("app.public.questionnaire") is not None:
            page.get_by_text("市教育局").first.wait_for(timeout=10_000)
        page.screenshot(path=str(artifacts / "simulator-questionnaire-360.png"), full_page=True)
    finally:
        context.close()
