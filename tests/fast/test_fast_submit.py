"""The submission fast path (app/fast/submit.py): it answers ordinary submissions exactly as
the questionnaire view would, without Flask's request dispatch, and hands everything else over."""

from __future__ import annotations

from contextlib import contextmanager

import pytest
from flask import request_started

from app import intake
from app.fast import forms as fast_paths
from app.public import pages
from tests.public.test_questionnaire import URL, answers, login, token_of


@contextmanager
def dispatched(app):
    """The requests Flask itself dispatched (the fast path's answers never reach request_started)."""
    seen: list[str] = []

    def record(sender, **extra):
        from flask import request

        query = request.environ.get("QUERY_STRING", "")  # raw: a query that is not UTF-8 is a test case
        seen.append(f"{request.method} {request.path}?{query}")

    request_started.connect(record, app)
    try:
        yield seen
    finally:
        request_started.disconnect(record, app)


def test_ordinary_submissions_bypass_flask_and_match_the_view(app, client, demo, redis_client):
    login(client)
    token = token_of(client.get(URL).get_data(as_text=True))
    with dispatched(app) as seen:
        fast = client.post(URL, data=answers(token, q_suggestion="很好"))
        fast_resend = client.post(URL, data=answers(token))
    assert seen == [], "an ordinary submission went through Flask's dispatch"
    assert fast.status_code == fast_resend.status_code == 200
    assert "感谢您的评价" in fast.get_data(as_text=True)
    assert redis_client.xlen(intake.STREAM) == 1  # the resend counted once
    # The view's answer to the same resend (a query string sends it past the fast path): the same page.
    with dispatched(app) as seen:
        view_resend = client.post(URL + "?via=view", data=answers(token))
    assert len(seen) == 1
    assert view_resend.status_code == 200 and view_resend.get_data() == fast.get_data()
    for name in ("Content-Type", "Cache-Control"):
        assert fast.headers[name] == view_resend.headers[name]
    assert "Cookie" in fast.headers["Vary"] and "Cookie" in view_resend.headers["Vary"]
    assert "Set-Cookie" not in fast.headers


def test_already_evaluated_page_is_the_views(app, client, demo, redis_client):
    login(client)
    first = token_of(client.get(URL).get_data(as_text=True))
    second = token_of(client.get(URL).get_data(as_text=True))
    third = token_of(client.get(URL).get_data(as_text=True))
    assert client.post(URL, data=answers(first)).status_code == 200
    with dispatched(app) as seen:
        fast = client.post(URL, data=answers(second))
    assert seen == [] and fast.status_code == 409 and "您已于" in fast.get_data(as_text=True)
    view = client.post(URL + "?via=view", data=answers(third))
    assert view.status_code == 409 and view.get_data() == fast.get_data()


def test_pages_render_in_large_text_mode_on_first_use(app, client, demo):
    pages._rendered.clear()  # the first thanks page of this process is rendered by the fast path
    login(client)
    client.get(URL + "?text=large")
    token = token_of(client.get(URL).get_data(as_text=True))
    with dispatched(app) as seen:
        done = client.post(URL, data=answers(token))
    assert seen == [] and done.status_code == 200
    assert "large-text" in done.get_data(as_text=True).split("<body", 1)[1][:120]


def test_everything_else_is_handed_to_the_view(app, client, demo, redis_client):
    login(client)
    token = token_of(client.get(URL).get_data(as_text=True))
    with dispatched(app) as seen:
        invalid = client.post(URL, data=answers(token, q_overall="not-an-option"))
        multipart = client.post(URL, data=answers(token), content_type="multipart/form-data")
        bad_utf8 = client.post(
            URL, data=b"q_overall=%FF&form_token=x\xff", content_type="application/x-www-form-urlencoded"
        )
    assert invalid.status_code == 400 and "所选的选项不存在" in invalid.get_data(as_text=True)
    assert multipart.status_code == 200  # the view reads multipart forms too: accepted
    assert bad_utf8.status_code == 400
    assert len(seen) == 3
    cookie = client.get_cookie("session")
    client.set_cookie("session", cookie.value[:-4] + "AAAA")
    with dispatched(app) as seen:
        tampered = client.post(URL, data=answers(token))
    assert seen == [f"POST {URL}?"] and tampered.status_code == 403
    client.delete_cookie("session")
    assert client.post(URL, data=answers(token)).status_code == 403
    assert redis_client.xlen(intake.STREAM) == 1  # the multipart one


@pytest.mark.parametrize(
    "body",
    [
        b"q_a=1&q_b=2&form_token=abc.def",
        b"q_suggestion=%E6%9C%8D%E5%8A%A1%E5%BE%88%E5%A5%BD+%21&q_a=very_satisfied",
        "q_suggestion=服务很好".encode(),
        b"q_multi=a&q_multi=b&q_multi=&q_multi",
        b"&&q_a=1&&=orphan&q_b==x=y&",
        b"q%5Fa=1&q+b=2&q_c=%ZZ&q_d=%E6%9C&q_e=100%",
        b"",
    ],
)
def test_form_fields_are_what_werkzeug_reads(body):
    from werkzeug import Request

    werkzeug = Request.from_values(data=body, content_type="application/x-www-form-urlencoded", method="POST")
    assert fast_paths.form_fields(body) == werkzeug.form.to_dict(flat=False)


def test_a_body_that_is_not_utf8_goes_to_the_view():
    assert fast_paths.form_fields("q_suggestion=很好".encode("gbk")) is None
