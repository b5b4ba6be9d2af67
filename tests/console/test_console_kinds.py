"""The console with a survey of every newer kind: its page, preview, question editor (a matrix
row keeps its matrix; removing a follow-up's target is refused) and results with answers."""

from __future__ import annotations

from app.org.departments import get_department
from app.org.surveys import get_survey
from tests.console.test_console import admins, city, post  # noqa: F401  (fixtures)
from tests.factories import add_response


def test_every_kind_in_the_console(city, session):  # noqa: F811
    form = {"template": "department_evaluation", "slug": "e2030", "title": "2030年民意调查",
            "period_start": "2030-01-01", "period_end": "2030-12-31", "levels": "city"}  # fmt: skip
    assert post(city, "/console/surveys", form).status_code == 302
    page = city.get("/console/surveys/e2030").get_data(as_text=True)
    assert "0-10 分" in page and "矩阵" in page and "指标 B01" in page
    preview = city.get("/console/surveys/e2030/preview")
    assert preview.status_code == 200 and "服务态度" in preview.get_data(as_text=True)
    survey = get_survey(session, "e2030")
    snapshot = survey.snapshot["questions"]
    data = {f"q{i}-title": q["title"] for i, q in enumerate(snapshot)}
    data |= {f"q{i}-required": "1" for i, q in enumerate(snapshot) if q["required"]}
    data["q2-title"] = "请为以下方面打分"
    assert post(city, "/console/surveys/e2030/questions", data).status_code == 302
    session.expire_all()
    survey = get_survey(session, "e2030")
    rows = [q for q in survey.questions if q.matrix == "aspects"]
    assert [q.indicator for q in rows] == ["B01", "B02", "B03", "B04"]
    assert survey.snapshot["questions"][2]["title"] == "请为以下方面打分"
    refused = post(city, "/console/surveys/e2030/questions", {**data, "q0-delete": "1"})
    assert refused.status_code == 400 and "show_if" in refused.get_data(as_text=True)
    answers = {row: "satisfied" for row in ("attitude", "efficiency", "integrity", "facilities")}
    answers.update(overall="satisfied", recommend="s8", respondent_type="citizen")
    add_response(session, survey, get_department(session, "D08"), answers)
    session.commit()
    results = city.get("/console/results?survey=e2030")
    html = results.get_data(as_text=True)
    assert results.status_code == 200 and "服务态度" in html and "分指标结果" in html
    assert "<code>B01</code>" in html and "8.00（8.00–8.00）" in html and "+0.0" in html  # one 8: neither
