"""WeChat's OAuth callback coming back to a questionnaire answers with the questionnaire itself (one
round trip less for the phone): the layer (app/fast/callback.py) exactly as the view, the code sent
once; whatever else the questionnaire would say (an earlier answer, a text size asked for) is the
view's, at the callback's address. The browser's address bar then shows the questionnaire's."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from app import intake
from tests.fast.test_fast_callback import app_paths, session_of
from tests.fast.test_fast_questionnaire import assert_same_page_and_cookie
from tests.fast.test_fast_submit import dispatched
from tests.fast.test_fast_webhook import _view_client
from tests.public.test_questionnaire import URL, WECHAT_UA, answers, token_of


def to_callback(browser, openid: str) -> str:
    """A new citizen opening the questionnaire in WeChat's browser, sent through the (simulated)
    OAuth; the callback's address WeChat sends the browser back to, without the host."""
    to_oauth = browser.get(URL, headers={"User-Agent": WECHAT_UA})
    assert to_oauth.status_code == 302
    authorize = to_oauth.headers["Location"].partition("#")[0] + f"&openid={openid}"
    back = requests.get(authorize, allow_redirects=False)
    assert back.status_code == 302
    return urlsplit(back.headers["Location"])._replace(scheme="", netloc="").geturl()


def code_of(callback: str) -> str:
    return parse_qs(urlsplit(callback).query)["code"][0]


def test_the_callback_answers_with_the_questionnaire_as_the_view_does(app, client, demo, wechat):
    view = _view_client(app)
    fast_back, view_back = to_callback(client, "oFAST_form_01"), to_callback(view, "oFAST_form_01v")
    with dispatched(app) as seen:
        fast = client.get(fast_back, headers={"User-Agent": WECHAT_UA})
    slow = view.get(view_back, headers={"User-Agent": WECHAT_UA})
    assert app_paths(seen) == [], "the callback went through Flask's dispatch"
    assert fast.status == slow.status == "200 OK" and "Location" not in fast.headers
    assert_same_page_and_cookie(fast, slow)
    assert "请为「" in fast.get_data(as_text=True) and f'action="{URL}"' in fast.get_data(as_text=True)
    kept = session_of(app, fast)
    assert kept["wx_openid"] == "oFAST_form_01" and "wx_oauth_state" not in kept
    assert sorted(wechat.codes) == sorted(code_of(back) for back in (fast_back, view_back))

    # Both answers are taken, by the address the form names.
    for browser, page in ((client, fast), (view, slow)):
        done = browser.post(URL, data=answers(token_of(page.get_data(as_text=True))))
        assert done.status_code == 200 and "感谢您的评价" in done.get_data(as_text=True)


def test_an_earlier_answer_is_the_views_page_with_the_layers_one_exchange(app, client, demo, wechat):
    first = to_callback(client, "oFAST_form_02")
    page = client.get(first, headers={"User-Agent": WECHAT_UA})
    assert client.post(URL, data=answers(token_of(page.get_data(as_text=True)))).status_code == 200
    again = app.test_client()  # the same citizen on another phone, later
    back = to_callback(again, "oFAST_form_02")
    with dispatched(app) as seen:
        answered = again.get(back, headers={"User-Agent": WECHAT_UA})
    assert len(app_paths(seen)) == 1 and answered.status_code == 200
    html = answered.get_data(as_text=True)
    assert "已经评价过" in html and "form_token" not in html
    assert session_of(app, answered)["wx_openid"] == "oFAST_form_02"
    assert wechat.codes.count(code_of(back)) == 1


@pytest.mark.parametrize("layer", [True, False], ids=["layer", "view"])
def test_a_text_size_in_the_callback_is_the_views_to_keep(app, client, demo, wechat, redis_client, layer):
    browser = client if layer else _view_client(app)
    back = to_callback(browser, "oFAST_form_03")
    with dispatched(app) as seen:
        page = browser.get(back + "&text=large", headers={"User-Agent": WECHAT_UA})
    assert len(app_paths(seen)) == 1 and page.status_code == 200  # (the view, both ways)
    assert session_of(app, page)["large_text"] is True and "标准字号" in page.get_data(as_text=True)
    assert len(wechat.codes) == 1
    done = browser.post(URL, data=answers(token_of(page.get_data(as_text=True))))
    assert done.status_code == 200 and redis_client.xlen(intake.STREAM) == 1
