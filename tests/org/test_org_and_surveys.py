"""Org-chart and survey services: three levels, all-or-nothing imports, frozen questions."""

from __future__ import annotations

import io
from datetime import date

import pytest
from openpyxl import Workbook
from sqlalchemy import func, select

from app.errors import Conflict, Invalid, NotFound
from app.models import AuditEntry, Department, Option, Question
from app.org import departments, surveys


def xlsx_bytes(rows) -> bytes:
    book = Workbook()
    sheet = book.active
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def test_xlsx_import_resolves_parents_defined_later(session):
    data = xlsx_bytes([
        ["code", "name", "category", "level", "parent_code", "active"],
        ["K1T1", "一号镇", "乡镇", "township", "K1", "是"],
        ["K1", "一号县", "县区", "county", None, None],
    ])  # fmt: skip
    rows = departments.read_rows(data, "org.xlsx")
    report = departments.import_departments(session, rows)
    assert report.ok and sorted(report.created) == ["K1", "K1T1"]
    session.commit()
    town = departments.get_department(session, "K1T1")
    assert town.parent.code == "K1" and town.level == "township"
    assert departments.subtree_ids(session, town.parent.id) == {town.id, town.parent.id}


def test_import_reports_every_bad_row_and_writes_nothing(session):
    rows = departments.read_rows(
        "code,name,category,level,parent_code,active\n"
        "A1,甲局,政府部门,city,,\n"
        "A1,甲局重复,政府部门,city,,\n"
        "T1,某镇,乡镇,township,A1,\n"
        "C1,某县,县区,county,A1,\n"
        "Z1,,政府部门,city,,\n"
        "Z2,乙局,政府部门,city,,maybe\n".encode(),
        "org.csv",
    )
    report = departments.import_departments(session, rows)
    lines = [line for line, _ in report.errors]
    assert lines == [3, 4, 5, 6, 7]
    assert session.scalar(select(func.count()).select_from(Department)) == 0
    assert session.scalar(select(func.count()).select_from(AuditEntry)) == 0


@pytest.mark.parametrize(
    ("data", "name", "message"),
    [
        (b"", "org.csv", "空"),
        (b"foo,bar\n1,2\n", "org.csv", "缺少列"),
        (b"PK\x03\x04not really", "org.xlsx", "XLSX"),
        (b"a", "org.pdf", "CSV 或 XLSX"),
        (b"\xff\xfe\x00\x00\xc3\x28", "org.csv", None),
    ],
)
def test_unreadable_files_are_refused_clearly(data, name, message):
    with pytest.raises(Invalid) as info:
        departments.read_rows(data, name)
    if message:
        assert message in info.value.message


def test_level_rules(session):
    departments.create_department(session, code="C1", name="某县", category="县区", level="county")
    with pytest.raises(Invalid, match="乡镇必须隶属"):
        departments.create_department(session, code="T1", name="某镇", category="乡镇", level="township")
    with pytest.raises(Invalid, match="不应有上级"):
        departments.create_department(session, code="D1", name="某局", category="政府部门", level="city",
                                      parent_code="C1")  # fmt: skip
    with pytest.raises(Invalid, match="已被使用"):
        departments.create_department(session, code="C1", name="又一个县", category="县区", level="county")
    with pytest.raises(NotFound):
        departments.get_department(session, "NOPE")


def test_survey_freezes_questions_and_follows_its_life(session, demo):
    survey = surveys.create_survey(session, slug="t2027", template="department_satisfaction",
                                   period_start=date(2027, 1, 1), period_end=date(2027, 12, 31))  # fmt: skip
    session.commit()
    keys = [q.key for q in survey.questions]
    assert keys[0] == "overall" and "respondent_type" in keys and "suggestion" in keys
    overall = survey.questions[0]
    assert [o.label for o in overall.options] == ["非常满意", "满意", "基本满意", "不满意", "非常不满意"]
    assert [o.score for o in overall.options] == [100, 80, 60, 30, 0]
    assert survey.snapshot["questions"][0]["key"] == "overall"

    snapshot = dict(survey.snapshot)
    snapshot["questions"] = [q for q in snapshot["questions"] if q["key"] != "suggestion"]
    surveys.update_questions(session, "t2027", snapshot)
    session.commit()
    assert "suggestion" not in [q.key for q in surveys.get_survey(session, "t2027").questions]
    assert (
        session.scalar(select(func.count()).select_from(Question).where(Question.survey_id == survey.id)) == 6
    )

    surveys.open_survey(session, "t2027")
    with pytest.raises(Conflict, match="不能再修改"):
        surveys.update_questions(session, "t2027", snapshot)
    surveys.close_survey(session, "t2027")
    surveys.open_survey(session, "t2027")  # reopening a closed survey is allowed
    with pytest.raises(Invalid, match="结束日期"):
        surveys.create_survey(session, slug="t2", template="department_satisfaction",
                              period_start=date(2027, 2, 1), period_end=date(2027, 1, 1))  # fmt: skip
    assert session.scalar(select(func.count()).select_from(Option)) > 0


def test_acceptance_depends_on_status_period_level_and_activity(session, demo):
    survey = surveys.get_survey(session, demo.survey_slug)
    city = departments.get_department(session, "D08")
    county = departments.get_department(session, "C01")
    today = survey.period_start
    assert surveys.accepting_state(survey, city, today) is None
    assert surveys.accepting_state(survey, county, today) == "not_covered"
    assert surveys.accepting_state(survey, city, date(today.year + 1, 1, 1)) == "closed"
    departments.set_active(session, "D08", False)
    assert surveys.accepting_state(survey, city, today) == "department_inactive"
    assert len(surveys.survey_departments(session, survey)) == 24


def test_demo_is_idempotent(app, session, demo):
    from app.org.demo import load_demo

    before = session.scalar(select(func.count()).select_from(Department))
    again = load_demo(session, app.config["SETTINGS"].var_dir)
    session.commit()
    assert before == 25 + 6 + 18
    assert session.scalar(select(func.count()).select_from(Department)) == before
    assert again.admin_password == demo.admin_password
    assert {s.slug for s in surveys.list_surveys(session)} == {"demo-departments", "demo-counties"}
    categories = {d.category for d in departments.list_departments(session) if d.level == "city"}
    assert len(categories) == 4
