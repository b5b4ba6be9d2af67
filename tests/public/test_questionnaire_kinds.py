"""The questionnaire with every newer kind (department_evaluation): matrix, 0-10 scale, conditional
follow-ups and a question for some departments only; each rule checked on the server."""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest
from sqlalchemy import select

from app import intake
from app.errors import Invalid
from app.intake import drain
from app.models import Answer, Question, Response
from app.org import surveys
from tests.public.test_questionnaire import login, token_of

SLUG = "eval"
URL = f"/q/{SLUG}/D08"  # 市教育局 (政府部门): not asked the service-hall question
HALL_URL = f"/q/{SLUG}/D22"  # 市供电公司 (公共服务单位): asked it
MATRIX = ("attitude", "efficiency", "integrity", "facilities")


@pytest.fixture
def evaluation(demo, session):
    today = date.today()
    surveys.create_survey(
        session,
        slug=SLUG,
        template="department_evaluation",
        levels=["city"],
        period_start=today - timedelta(days=30),
        period_end=today + timedelta(days=30),
    )
    surveys.open_survey(session, SLUG)
    session.commit()
    return SLUG


def good(token: str, **extra) -> dict:
    data = {
        "form_token": token,
        "q_overall": "satisfied",
        "q_recommend": "s9",
        "q_respondent_type": "citizen",
    }
    data.update({f"q_{row}": "satisfied" for row in MATRIX})
    data.update(extra)
    return {k: v for k, v in data.items() if v is not None}


def test_page_shows_matrix_scale_follow_up_and_audience(client, evaluation):
    login(client)
    html = client.get(URL).get_data(as_text=True)
    matrix = html.split('<table class="matrix">', 1)[1].split("</table>", 1)[0]
    assert [h for h in re.findall(r'<th scope="col">([^<]+)</th>', matrix)] == [
        "非常满意",
        "满意",
        "基本满意",
        "不满意",
        "非常不满意",
    ]
    assert re.findall(r'<th scope="row" id="row-(\w+)">', matrix) == list(MATRIX)
    assert matrix.count('type="radio"') == 20
    assert "服务态度：非常满意" in matrix  # every cell has its own accessible name
    assert len(re.findall(r'name="q_recommend" value="s(\d+)"', html)) == 11
    follow = re.search(
        r'<fieldset class="question follow-up" data-show-if="q_overall" '
        r'data-answers="dissatisfied very_dissatisfied" id="question-reasons"',
        html,
    )
    assert follow, "the follow-up carries its condition"
    assert "「您对该部门的总体评价是」选择「不满意」或「非常不满意」时请回答" in html
    assert "q_queue_time" not in html  # a 政府部门 is not asked the service-hall question
    hall = client.get(HALL_URL).get_data(as_text=True)
    assert 'name="q_queue_time"' in hall
    numbers = re.findall(r'<span class="num">(\d+)\.</span>', hall)
    assert numbers == [str(n) for n in range(1, len(numbers) + 1)]


def test_good_answers_reach_sql_one_question_per_matrix_row(client, evaluation, session, redis_client):
    login(client)
    token = token_of(client.get(HALL_URL).get_data(as_text=True))
    data = good(
        token,
        q_overall="dissatisfied",
        q_reasons=["slow", "unclear"],
        q_queue_time="long",
        q_attitude="very_dissatisfied",
    )
    done = client.post(HALL_URL, data=data)
    assert done.status_code == 200 and "感谢您的评价" in done.get_data(as_text=True)
    drain.drain_backlog(session, redis_client)
    response = session.scalar(select(Response))
    rows = session.execute(
        select(Question.key, Question.matrix, Question.indicator)
        .join(Answer, Answer.question_id == Question.id)
        .where(Answer.response_id == response.id)
    ).all()
    got = {key: (matrix, indicator) for key, matrix, indicator in rows}
    assert got["attitude"] == ("aspects", "B01") and got["facilities"] == ("aspects", "B04")
    assert got["recommend"] == (None, "C01") and got["queue_time"] == (None, "W01")
    assert sum(1 for key, *_ in rows if key == "reasons") == 2


RULES = {
    # a follow-up answered though its condition is false (overall = satisfied)
    "follow_up_when_condition_false": (URL, {"q_reasons": "slow"}, "reasons", "不需要填写"),
    # a required follow-up skipped though its condition holds
    "follow_up_missing_when_condition_true": (
        URL,
        {"q_overall": "very_dissatisfied"},
        "reasons",
        "请至少选择一项",
    ),
    "matrix_row_missing": (URL, {"q_integrity": None}, "integrity", "请选择一项"),
    "matrix_row_two_answers": (URL, {"q_efficiency": ["satisfied", "basic"]}, "efficiency", "只能选择一项"),
    "matrix_row_forged_option": (URL, {"q_facilities": "superb"}, "facilities", "选项不存在"),
    "scale_out_of_range": (URL, {"q_recommend": "s11"}, "recommend", "选项不存在"),
    "scale_not_a_point": (URL, {"q_recommend": "9"}, "recommend", "选项不存在"),
    "scale_missing": (URL, {"q_recommend": None}, "recommend", "请选择一项"),
    "scale_two_points": (URL, {"q_recommend": ["s1", "s2"]}, "recommend", "只能选择一项"),
    "hall_question_missing_for_a_hall": (HALL_URL, {}, "queue_time", "请选择一项"),
}


@pytest.mark.parametrize("url, change, key, message", RULES.values(), ids=RULES.keys())
def test_each_rule_is_refused_on_the_server(client, evaluation, redis_client, url, change, key, message):
    login(client)
    token = token_of(client.get(url).get_data(as_text=True))
    page = client.post(url, data=good(token, **change))
    html = page.get_data(as_text=True)
    assert page.status_code == 400, html
    error = re.search(rf'id="error-{key}">([^<]*)', html) or re.search(
        r'id="error-aspects">([^<]*)', html
    )  # a matrix row's error is shown on its matrix
    assert error and message in error.group(1), html
    assert redis_client.xlen(intake.STREAM) == 0


@pytest.mark.parametrize(
    "change",
    [
        {"q_queue_time": "short"},  # asked only of service halls: forged for 市教育局
        {"q_aspects": "satisfied"},  # the matrix itself is no field
        {"q_attitude_extra": "x"},
    ],
)
def test_tampered_fields_are_refused(client, evaluation, redis_client, change):
    login(client)
    token = token_of(client.get(URL).get_data(as_text=True))
    page = client.post(URL, data=good(token, **change))
    assert page.status_code == 400 and "未知题目" in page.get_data(as_text=True)
    assert redis_client.xlen(intake.STREAM) == 0


def test_follow_up_answered_when_its_condition_holds(client, evaluation):
    login(client)
    token = token_of(client.get(URL).get_data(as_text=True))
    done = client.post(URL, data=good(token, q_overall="very_dissatisfied", q_reasons="attitude"))
    assert done.status_code == 200 and "感谢您的评价" in done.get_data(as_text=True)


def test_parse_answers_follows_conditions_on_a_matrix_row_and_a_scale(evaluation, session):
    """Conditions on a matrix row and on a scale's points, through the form model directly."""
    from app.intake.forms import FormOption, FormQuestion, SurveyForm
    from app.intake.shape import Condition, build_blocks

    opts = (FormOption(1, "good", "好"), FormOption(2, "bad", "差"))
    row = FormQuestion(1, "speed", "single", "效率", True, True, None, None, opts, matrix="m")
    scale = FormQuestion(
        2,
        "nps",
        "scale",
        "推荐",
        True,
        False,
        None,
        None,
        tuple(FormOption(10 + v, f"s{v}", str(v)) for v in range(11)),
    )
    why = FormQuestion(
        3, "why", "text", "为什么", True, False, 100, None, (), show_if=Condition("speed", frozenset({"bad"}))
    )
    low = FormQuestion(
        4,
        "low",
        "text",
        "低分原因",
        False,
        False,
        100,
        None,
        (),
        show_if=Condition("nps", frozenset({"s0", "s1"})),
    )
    questions = (row, scale, why, low)
    form = SurveyForm(
        1,
        "x",
        "x",
        "",
        "open",
        date.today(),
        date.today(),
        (),
        questions,
        None,
        build_blocks(questions, {"speed": "矩阵"}),
    )
    assert [type(b).__name__ for b in form.blocks] == [
        "FormMatrix",
        "FormQuestion",
        "FormQuestion",
        "FormQuestion",
    ]
    ok = intake.parse_answers(
        form, {"q_speed": ["bad"], "q_nps": ["s1"], "q_why": ["慢"], "q_low": ["贵"]}, 500
    )
    assert ok == [(1, 2, None), (2, 11, None), (3, None, "慢"), (4, None, "贵")]
    with pytest.raises(Invalid) as err:
        intake.parse_answers(
            form, {"q_speed": ["good"], "q_nps": ["s9"], "q_why": ["慢"], "q_low": ["贵"]}, 500
        )
    assert set(err.value.errors) == {"why", "low"}
    with pytest.raises(Invalid) as err:
        intake.parse_answers(form, {"q_speed": ["bad"], "q_nps": ["s9"]}, 500)
    assert set(err.value.errors) == {"why"}  # required once its condition holds; `low` is optional


def test_straight_lining_counts_the_questions_asked_of_the_department(evaluation, session):
    """A service-hall question that is scored but not asked of 市教育局 does not hide straight-lining."""
    from app.intake.forms import FormQuestion, load_form
    from app.intake.shape import Audience

    form, dept = load_form(session, SLUG, "D08")
    rows = [q for q in form.questions if q.scored]
    same = [(q.id, q.option_ids["satisfied"], None) for q in rows]
    assert intake.straightlined(form, same, 4, dept)
    hall = FormQuestion(999, "hall", "single", "窗口", True, True, None, None, rows[0].options,
                        audience=Audience(frozenset({"D17"})))  # fmt: skip
    wider = type(form)(form.id, form.slug, form.title, form.description, form.status, form.period_start,
                       form.period_end, form.levels, (*form.questions, hall), form.segment_question_id,
                       form.blocks)  # fmt: skip
    assert intake.straightlined(wider, same, 4, dept)
    assert not intake.straightlined(wider, same, 4)  # without the department every scored question counts
