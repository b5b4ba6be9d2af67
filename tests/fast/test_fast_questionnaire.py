"""The questionnaire fast path (app/fast/questionnaire.py): the empty questionnaire of a citizen with
an identity, answered exactly as the Flask view answers it (status line, every header in order,
the body but for the citizen's own token), without Flask's dispatch; everything else goes to the view."""

from __future__ import annotations

import logging
import re

import requests
from sqlalchemy import select

from app import intake
from app.fast import page as fast_page
from app.models import Department, Question, Survey
from app.org import surveys
from tests.fast.test_fast_submit import dispatched
from tests.fast.test_fast_webhook import _view_client
from tests.public.test_questionnaire import URL, answers, login, token_of
from tests.public.test_questionnaire_cache import forget_forms


def both(app, client, path: str = URL, **kwargs):
    """The same request answered by the app (its layers) and by the Flask view alone, with the
    same session cookie: (layer's response, view's response, paths Flask dispatched for the layer)."""
    view = _view_client(app)
    cookie = client.get_cookie("session")
    if cookie is not None:
        view.set_cookie("session", cookie.value)
    with dispatched(app) as seen:
        fast = client.get(path, **kwargs)
    slow = view.get(path, **kwargs)
    return fast, slow, seen


def without_token(response) -> bytes:
    html = response.get_data(as_text=True)
    return re.sub(r'name="form_token" value="[^"]+"', 'name="form_token" value=""', html).encode()


def assert_same_page_and_cookie(fast, slow) -> None:
    """Headers (names, values, order) but the session cookie's timestamp, which may be a second
    apart, and the body but the token."""
    fast_headers, slow_headers = fast.headers.to_wsgi_list(), slow.headers.to_wsgi_list()
    assert [n for n, _ in fast_headers] == [n for n, _ in slow_headers]
    for (name, fast_value), (_, slow_value) in zip(fast_headers, slow_headers, strict=True):
        if name == "Set-Cookie":  # its timestamp may be a second apart
            assert fast_value.split(";", 1)[1] == slow_value.split(";", 1)[1]
        else:
            assert fast_value == slow_value, name
    assert without_token(fast) == without_token(slow)


def assert_same_raw(fast, slow) -> None:
    """Status line, headers (names, values, order) and body but the token: byte for byte."""
    assert fast.status == slow.status
    assert fast.headers.to_wsgi_list() == slow.headers.to_wsgi_list()
    assert without_token(fast) == without_token(slow)


def test_the_page_bypasses_flask_and_is_the_views(app, client, demo, redis_client):
    login(client, "o-fast-page-1")
    fast, slow, seen = both(app, client)
    assert seen == [], "the questionnaire went through Flask's dispatch"
    assert fast.status_code == 200 and 'name="form_token"' in fast.get_data(as_text=True)
    assert_same_raw(fast, slow)
    headers = dict(fast.headers)
    assert headers["Cache-Control"] == "no-store" and headers["Vary"] == "Cookie"
    assert "Set-Cookie" not in headers and "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    # Each page's token is the citizen's own, and either is accepted.
    fast_token, view_token = token_of(fast.get_data(as_text=True)), token_of(slow.get_data(as_text=True))
    assert fast_token != view_token
    assert client.post(URL, data=answers(fast_token)).status_code == 200


def test_large_text_and_shared_links(app, client, demo):
    login(client, "o-fast-page-2")
    with dispatched(app) as seen:
        client.get(URL + "?text=large")  # the view keeps the size in the session
    assert seen == [f"GET {URL}?text=large"]
    fast, slow, seen = both(app, client)
    assert seen == [] and "large-text" in fast.get_data(as_text=True).split("<body", 1)[1][:80]
    assert_same_raw(fast, slow)
    # WeChat adds from=... to a shared link: the view ignores it, so does the layer.
    fast, slow, seen = both(app, client, URL + "?from=singlemessage&isappinstalled=0")
    assert seen == [] and fast.status_code == 200
    assert_same_raw(fast, slow)


def test_the_page_follows_an_edited_draft_and_a_closed_survey(app, client, demo, session):
    login(client, "o-fast-page-3")
    before, _, _ = both(app, client)
    survey = session.scalar(select(Survey).where(Survey.slug == "demo-departments"))
    question = session.scalar(select(Question).where(Question.survey_id == survey.id).order_by(Question.id))
    question.title = "您对窗口办事的总体感受如何？"
    session.scalar(select(Department).where(Department.code == "D08")).name = "市教育和体育局"
    session.commit()
    forget_forms()  # what FORM_CACHE_SECONDS does in time
    fast, slow, seen = both(app, client)
    assert seen == [] and "您对窗口办事的总体感受如何？" in fast.get_data(as_text=True)
    assert "市教育和体育局" in fast.get_data(as_text=True)
    assert without_token(fast) != without_token(before)
    assert_same_raw(fast, slow)

    surveys.close_survey(session, "demo-departments")
    session.commit()
    forget_forms()
    fast, slow, seen = both(app, client)
    assert seen == [f"GET {URL}?"], "a closed survey is the view's to answer"
    closed = fast.get_data(as_text=True)
    assert "已经结束" in closed and 'name="form_token"' not in closed
    assert_same_raw(fast, slow)


def test_everything_else_is_handed_to_the_view(app, client, demo, redis_client):
    # No identity yet: the view begins it (OAuth in WeChat, the dev identity here).
    fast, slow, seen = both(app, client)
    assert len(seen) == 1 and fast.status_code == slow.status_code == 302
    login(client, "o-fast-page-4")
    token = token_of(client.get(URL).get_data(as_text=True))
    assert client.post(URL, data=answers(token)).status_code == 200
    fast, slow, seen = both(app, client)  # answered already
    assert seen == [f"GET {URL}?"] and fast.status_code == 200 and "您已于" in fast.get_data(as_text=True)
    assert_same_raw(fast, slow)
    for path in ("/q/no-such-survey/D08", "/q/demo-departments/NOPE"):
        fast, slow, seen = both(app, client, path)
        assert len(seen) == 1 and fast.status_code == slow.status_code == 404
    login(client, "o-fast-page-5")
    with dispatched(app) as seen:
        head = client.head(URL)
        odd_query = client.get(URL, environ_overrides={"QUERY_STRING": "from=\xff"})
    assert len(seen) == 2 and head.status_code == 200 and odd_query.status_code == 400
    cookie = client.get_cookie("session")
    client.set_cookie("session", cookie.value[:-4] + "AAAA")
    fast, slow, seen = both(app, client)
    assert len(seen) == 1 and fast.status_code == 302  # a forged cookie is no identity


def test_a_failure_in_the_layer_is_the_views_to_answer(app, client, demo, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("the cached page is broken")

    monkeypatch.setattr(fast_page, "empty_page", broken)
    login(client, "o-fast-page-6")
    caplog.set_level(logging.INFO)
    fast, slow, seen = both(app, client)
    assert seen == [f"GET {URL}?"] and fast.status_code == 200
    assert_same_raw(fast, slow)
    assert [r.getMessage() for r in caplog.records if r.name == "app.fast.questionnaire"] == [
        "questionnaire: RuntimeError in the fast path; the view takes the request"
    ]
    assert not [r for r in caplog.records if r.exc_info]


def test_a_new_citizen_in_wechat_is_sent_to_oauth_as_by_the_view(app, client, demo):
    from tests.fast.test_fast_callback import assert_same_raw, session_of
    from tests.public.test_questionnaire import WECHAT_UA

    fast, slow, seen = both(app, client, headers={"User-Agent": WECHAT_UA})
    assert seen == [], "the way to OAuth went through Flask's dispatch"
    assert fast.status == slow.status == "302 FOUND"
    fast_session, slow_session = session_of(app, fast), session_of(app, slow)
    fast_state, slow_state = fast_session.pop("wx_oauth_state"), slow_session.pop("wx_oauth_state")
    assert fast_session == slow_session == {"wx_return_to": URL}
    assert_same_raw(app, fast, slow, states=(fast_state, slow_state))
    assert "state=" + fast_state in fast.headers["Location"]
    assert "redirect_uri=http%3A%2F%2Fwx.test%2Foauth%2Fcallback" in fast.headers["Location"]

    # A session of its own is kept (large text chosen before), and the view takes what it must.
    client.get(URL + "?text=large", headers={"User-Agent": WECHAT_UA})
    fast, _, seen = both(app, client, headers={"User-Agent": WECHAT_UA})
    assert seen == [] and session_of(app, fast)["large_text"] is True
    with dispatched(app) as seen:
        with_query = client.get(URL + "?from=timeline", headers={"User-Agent": WECHAT_UA})
        unknown = client.get("/q/demo-departments/NOPE", headers={"User-Agent": WECHAT_UA})
        desktop = client.get(URL, headers={"User-Agent": "Mozilla/5.0 (X11; Linux x86_64)"})  # dev identity
    assert len(seen) == 3 and desktop.status_code == 302 and with_query.status_code == 302
    assert unknown.status_code == 404


def test_the_whole_journey_through_the_layers(app, client, demo, live_server, redis_client):
    """Open, OAuth (the simulator over loopback HTTP), the callback answering with the form, the
    answer: Flask dispatches none of the app's requests; the answer is accepted once. A refresh of
    the callback's address goes to the questionnaire's, the code never sent again."""
    from tests.public.test_questionnaire import WECHAT_UA

    app.config["SETTINGS"].app.base_url = live_server.url
    with dispatched(app) as seen:
        to_oauth = client.get(URL, headers={"User-Agent": WECHAT_UA})
        authorize = to_oauth.headers["Location"].partition("#")[0] + "&openid=oJOURNEY_fast_01"
        back = requests.get(authorize, allow_redirects=False).headers["Location"]
        page = client.get(back.removeprefix(live_server.url), headers={"User-Agent": WECHAT_UA})
        assert page.status_code == 200 and "Location" not in page.headers
        refreshed = client.get(back.removeprefix(live_server.url), headers={"User-Agent": WECHAT_UA})
        done = client.post(URL, data=answers(token_of(page.get_data(as_text=True))))
    assert [line for line in seen if not line.startswith("GET /dev/wechat/")] == []
    assert refreshed.status_code == 302 and refreshed.headers["Location"] == URL
    assert done.status_code == 200 and "感谢您的评价" in done.get_data(as_text=True)
    assert redis_client.xlen(intake.STREAM) == 1


def test_a_scan_pass_is_taken_by_the_layer_as_by_the_view(app, client, demo, redis_client):
    """A scanner's first open of the reply's link: the layer takes the pass and answers with the
    questionnaire and the new session cookie exactly as the view does (tests/public/test_scan_pass.py
    has the pass's rules, both ways)."""
    from tests.fast.test_fast_callback import session_of
    from tests.public.test_questionnaire import WECHAT_UA
    from tests.public.test_scan_pass import scanned

    fast_link, view_link = (
        scanned(app, client, "oFAST_pass_01"),
        scanned(app, client, "oFAST_pass_01", later=2),
    )
    with dispatched(app) as seen:
        fast = app.test_client().get(fast_link, headers={"User-Agent": WECHAT_UA})
    slow = _view_client(app).get(view_link, headers={"User-Agent": WECHAT_UA})
    assert seen == [], "the scan pass went through Flask's dispatch"
    assert fast.status == slow.status == "200 OK"
    assert_same_page_and_cookie(fast, slow)
    assert (
        session_of(app, fast) == session_of(app, slow) == {"wx_openid": "oFAST_pass_01", "wx_channel": "dev"}
    )
    assert without_token(fast) == without_token(slow)
