"""The questionnaire page rendered once and filled per citizen: every citizen gets a token of
their own that works, and the page follows the survey and the department when they change."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app import intake
from app.models import Department, Question, Survey
from app.org import surveys
from tests.public.test_questionnaire import URL, answers, login, token_of


def fresh(client, openid: str):
    login(client, openid)
    return client.get(URL).get_data(as_text=True)


def forget_forms() -> None:
    """What FORM_CACHE_SECONDS does in time: the next request reads the survey from SQL."""
    intake.forms._caches.clear()


def test_each_citizen_gets_a_token_of_their_own_that_is_accepted(client, demo):
    first, second = fresh(client, "o-cache-1"), fresh(client, "o-cache-2")
    assert token_of(first) != token_of(second)
    assert first.replace(token_of(first), "") == second.replace(token_of(second), "")  # the rest is shared
    assert first.count('name="form_token"') == 1
    done = client.post(URL, data=answers(token_of(second)))
    assert done.status_code == 200 and "感谢您的评价" in done.get_data(as_text=True)


def test_page_follows_edits_of_questions_and_department_and_a_closed_survey(client, demo, session):
    before = fresh(client, "o-cache-3")
    survey = session.scalar(select(Survey).where(Survey.slug == "demo-departments"))
    question = session.scalar(select(Question).where(Question.survey_id == survey.id).order_by(Question.id))
    question.title = "您对办事窗口的总体印象如何？"
    session.scalar(select(Department).where(Department.code == "D08")).name = "市教育和体育局"
    session.commit()
    forget_forms()
    after = fresh(client, "o-cache-5")
    assert "您对办事窗口的总体印象如何？" in after and "市教育和体育局" in after
    assert question.title not in before

    surveys.close_survey(session, "demo-departments")
    session.commit()
    forget_forms()
    closed = fresh(client, "o-cache-6")
    assert "已经结束" in closed and 'name="form_token"' not in closed


def test_large_text_is_its_own_page(client, demo):
    login(client, "o-cache-7")
    large = client.get(URL + "?text=large").get_data(as_text=True)
    normal = client.get(URL + "?text=normal").get_data(as_text=True)
    assert "large-text" in large.split("<body", 1)[1][:80]
    assert "large-text" not in normal.split("<body", 1)[1][:80]
    assert "标准字号" in large and "大字模式" in normal


def test_a_page_rendered_under_a_path_prefix_is_not_served_without_it(client, demo):
    """The app mounted under a prefix (SCRIPT_NAME) links its static files under it; the cached
    page of one mount is never another's (a request naming a prefix cannot change the plain page)."""
    login(client, "o-cache-prefix")
    prefixed = client.get(URL, environ_overrides={"SCRIPT_NAME": "/evil"}).get_data(as_text=True)
    assert 'src="/evil/static/' in prefixed
    plain = fresh(client, "o-cache-plain")
    assert "/evil/" not in plain and 'src="/static/' in plain


@pytest.mark.parametrize("path", ["/q/demo-departments/D08%00", "/q/demo%00departments/D08", "/q/%0A/D08"])
def test_control_characters_in_the_address_are_a_kind_404(client, demo, path):
    """Not a database error taken for an outage (PostgreSQL refuses a NUL in text)."""
    login(client, "o-cache-nul")
    page = client.get(path)
    assert page.status_code == 404 and "没有找到" in page.get_data(as_text=True)
