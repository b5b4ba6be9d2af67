"""The admin console over the Flask test client: sign-in, CSRF, roles and scope, departments,
surveys, results and integrity review (real SQL and Redis; both engines when configured)."""

from __future__ import annotations

import io
import re

import pytest
from sqlalchemy import func, select

from app import accounts
from app.models import AuditEntry, Department, Response, TallyRow
from app.org.departments import get_department
from app.org.surveys import get_survey
from tests.factories import add_response

PASSWORD = "correct-horse-battery"
ANSWERS = {"overall": "very_satisfied", "service_attitude": "satisfied", "efficiency": "basic"}


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "page has no CSRF field"
    return match.group(1)


def login(client, username: str, password: str = PASSWORD):
    token = csrf_of(client.get("/console/login").get_data(as_text=True))
    return client.post(
        "/console/login", data={"username": username, "password": password, "csrf_token": token}
    )


def post(client, path: str, data: dict | None = None, **kwargs):
    """POST a console form with the session's CSRF token, as the page would."""
    page = client.get("/console/departments").get_data(as_text=True)
    return client.post(path, data={**(data or {}), "csrf_token": csrf_of(page)}, **kwargs)


@pytest.fixture
def admins(session, demo):
    accounts.create_admin(session, username="city", password=PASSWORD, role="city_admin")
    accounts.create_admin(session, username="east", password=PASSWORD, role="scoped_admin", scope_code="C01")
    accounts.create_admin(session, username="look", password=PASSWORD, role="viewer")
    session.commit()


@pytest.fixture
def city(client, admins):
    assert login(client, "city").status_code == 302
    return client


def test_console_requires_login_and_rejects_bad_passwords(client, admins):
    response = client.get("/console/departments")
    assert response.status_code == 302 and "/console/login" in response.headers["Location"]
    bad = login(client, "city", "wrong-password-1")
    assert bad.status_code == 403 and "用户名或密码错误" in bad.get_data(as_text=True)
    good = login(client, "city")
    assert good.status_code == 302
    assert client.get("/console/departments").status_code == 200
    cookie = good.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_login_locks_after_repeated_failures(client, admins):
    for _ in range(5):
        login(client, "east", "not-the-password")
    locked = login(client, "east")  # the right password, but too late
    # The same answer as an unknown name (tests/security/test_console_hardening.py): no probing.
    assert locked.status_code == 403 and "用户名或密码错误" in locked.get_data(as_text=True)


def test_login_redirects_only_inside_the_console(client, admins):
    token = csrf_of(client.get("/console/login").get_data(as_text=True))
    data = {"username": "city", "password": PASSWORD, "csrf_token": token}
    response = client.post("/console/login?next=//evil.example/x", data=data)
    assert response.headers["Location"].endswith("/console/")


def test_logout_revokes_the_session_cookie(city, app):
    cookie = city.get_cookie("session").value
    post(city, "/console/logout")
    assert city.get("/console/departments").status_code == 302
    replay = app.test_client()
    replay.set_cookie("session", cookie)
    assert replay.get("/console/departments").status_code == 302


def test_post_without_csrf_token_is_refused(city, session):
    before = session.scalar(select(func.count(Department.id)))
    response = city.post(
        "/console/departments",
        data={"code": "X1", "name": "无令牌局", "category": "政府部门", "level": "city"},
    )
    assert response.status_code == 400
    assert "安全令牌" in response.get_data(as_text=True)
    wrong = city.post("/console/departments", data={"code": "X1", "name": "n", "csrf_token": "forged"})
    assert wrong.status_code == 400
    assert session.scalar(select(func.count(Department.id))) == before


def test_scoped_admin_sees_only_their_subtree(client, admins):
    login(client, "east")
    assert client.get("/console/departments/C01T1").status_code == 200
    assert client.get("/console/departments/C02").status_code == 403
    assert client.get("/console/departments/D08").status_code == 403
    assert client.get("/console/posters/demo-counties/C02T1.png").status_code == 403
    assert client.get("/console/results?survey=demo-counties&county=C02").status_code == 403
    tree = client.get("/console/departments").get_data(as_text=True)
    assert "东湖区" in tree and "西山区" not in tree and "市教育局" not in tree
    # Actions outside the scope are refused too, not only pages.
    assert post(client, "/console/departments/C02T1/active", {"active": "0"}).status_code == 403
    assert (
        post(
            client,
            "/console/departments",
            {"code": "X9", "name": "新镇", "category": "乡镇", "level": "township", "parent_code": "C02"},
        ).status_code
        == 403
    )
    assert post(client, "/console/surveys/demo-counties/close").status_code == 403
    created = post(
        client,
        "/console/departments",
        {
            "code": "C01T9",
            "name": "东湖区新城街道",
            "category": "乡镇",
            "level": "township",
            "parent_code": "C01",
        },
    )
    assert created.status_code == 302


def test_viewer_reads_but_cannot_act(client, admins, session):
    login(client, "look")
    assert client.get("/console/departments/D08").status_code == 200
    assert post(client, "/console/departments/D08/active", {"active": "0"}).status_code == 403
    assert post(client, "/console/review/1", {"decision": "reject", "reason": "x"}).status_code == 403
    assert client.get("/console/audit").status_code == 403
    assert get_department(session, "D08").active


def test_departments_create_edit_deactivate(city, session):
    response = post(
        city,
        "/console/departments",
        {"code": "D26", "name": "市数据局", "category": "政府部门", "level": "city"},
    )
    assert response.status_code == 302
    page = city.get("/console/departments").get_data(as_text=True)
    assert "市数据局" in page and "D26" in page
    bad = post(
        city, "/console/departments", {"code": "D26", "name": "重复", "category": "政府部门", "level": "city"}
    )
    assert bad.status_code == 400 and "已被使用" in bad.get_data(as_text=True)
    assert (
        post(city, "/console/departments/D26", {"name": "市大数据局", "category": "政府部门"}).status_code
        == 302
    )
    assert post(city, "/console/departments/D26/active", {"active": "0"}).status_code == 302
    session.expire_all()
    dept = get_department(session, "D26")
    assert (dept.name, dept.active) == ("市大数据局", False)
    assert (
        session.scalar(
            select(AuditEntry.actor).where(
                AuditEntry.action == "department.create", AuditEntry.target == "D26"
            )
        )
        == "city"
    )


def test_department_import_previews_then_writes(city, session):
    bad_csv = "编码,名称,类别,层级,上级编码\nD30,市档案馆,政府部门,市直部门,\nT99,孤镇,乡镇,乡镇,NOPE\n"
    preview = post(
        city,
        "/console/departments/import",
        {"file": (io.BytesIO(bad_csv.encode()), "org.csv")},
        content_type="multipart/form-data",
    )
    html = preview.get_data(as_text=True)
    assert preview.status_code == 400 and "上级编码 NOPE 不存在" in html and "确认导入" not in html
    assert session.scalar(select(Department.id).where(Department.code == "D30")) is None

    good_csv = (
        "编码,名称,类别,层级,上级编码\nD30,市档案馆,政府部门,市直部门,\nD08,市教育局,政府部门,市直部门,\n"
    )
    preview = post(
        city,
        "/console/departments/import",
        {"file": (io.BytesIO(good_csv.encode()), "org.csv")},
        content_type="multipart/form-data",
    )
    html = preview.get_data(as_text=True)
    assert preview.status_code == 200 and "确认导入" in html
    assert session.scalar(select(Department.id).where(Department.code == "D30")) is None  # preview only
    token = re.search(r'name="token" value="([^"]+)"', html).group(1)
    assert post(city, "/console/departments/import/confirm", {"token": token}).status_code == 302
    assert get_department(session, "D30").name == "市档案馆"
    # A token is good for one confirmation.
    assert post(city, "/console/departments/import/confirm", {"token": token}).status_code == 400


def test_import_of_a_broken_file_is_a_clear_400(city):
    response = post(
        city,
        "/console/departments/import",
        {"file": (io.BytesIO(b"PK\x03\x04garbage"), "org.xlsx")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 400 and "XLSX" in response.get_data(as_text=True)


def test_survey_create_edit_open_close(city, session):
    form = {
        "template": "department_satisfaction",
        "slug": "s2030",
        "title": "2030年测试调查",
        "period_start": "2030-01-01",
        "period_end": "2030-12-31",
        "levels": "city",
    }
    assert post(city, "/console/surveys", form).status_code == 302
    page = city.get("/console/surveys/s2030/questions").get_data(as_text=True)
    assert "q0-title" in page
    survey = get_survey(session, "s2030")
    data = {f"q{i}-title": q["title"] for i, q in enumerate(survey.snapshot["questions"])}
    data |= {f"q{i}-required": "1" for i, q in enumerate(survey.snapshot["questions"]) if q["required"]}
    data["q0-title"] = "您对该部门的总体评价是？"
    last = len(survey.snapshot["questions"]) - 1
    data[f"q{last}-delete"] = "1"
    assert post(city, "/console/surveys/s2030/questions", data).status_code == 302
    session.expire_all()
    survey = get_survey(session, "s2030")
    assert survey.questions[0].title == "您对该部门的总体评价是？"
    assert len(survey.questions) == last
    preview = city.get("/console/surveys/s2030/preview").get_data(as_text=True)
    assert "您对该部门的总体评价是？" in preview and 'class="phone"' in preview
    assert post(city, "/console/surveys/s2030/open").status_code == 302
    assert city.get("/console/surveys/s2030/questions").status_code == 400  # no edits once open
    assert post(city, "/console/surveys/s2030/close").status_code == 302
    session.expire_all()
    assert get_survey(session, "s2030").status == "closed"
    bad = post(city, "/console/surveys", {**form, "period_start": "not-a-date"})
    assert bad.status_code == 400


def test_results_show_a_submitted_response_within_scope(client, admins, session):
    survey = get_survey(session, "demo-counties")
    east_town, west_town = get_department(session, "C01T1"), get_department(session, "C02T1")
    answers = {q.key: q.options[0].key for q in survey.questions if q.kind == "single"}
    add_response(session, survey, east_town, answers)
    add_response(session, survey, west_town, answers)
    add_response(session, survey, west_town, answers)
    session.commit()
    login(client, "east")
    page = client.get("/console/results?survey=demo-counties").get_data(as_text=True)
    assert re.search(r'id="count-responses">1<', page), "a scoped admin counts only their subtree"
    assert "东湖区东湖街道" in page and "西山区西山街道" not in page
    csv_text = client.get("/console/results/download?survey=demo-counties&format=csv&group_by=department")
    assert csv_text.status_code == 200 and "C01T1" in csv_text.get_data(as_text=True)
    assert "C02T1" not in csv_text.get_data(as_text=True)
    data = client.get(
        "/console/results/download?survey=demo-counties&format=json&group_by=department"
    ).get_json()
    assert data["responses"] == 1 and data["rows"][0]["department"] == "C01T1"
    xlsx = client.get("/console/results/download?survey=demo-counties&format=xlsx")
    assert xlsx.status_code == 200 and xlsx.data[:2] == b"PK"
    assert client.get("/console/results?survey=demo-counties&period=garbage").status_code == 400


def test_results_filters_by_category_and_county(city, session):
    survey = get_survey(session, "demo-departments")
    add_response(session, survey, get_department(session, "D08"), ANSWERS)
    add_response(session, survey, get_department(session, "D01"), ANSWERS)
    session.commit()
    page = city.get("/console/results?survey=demo-departments&category=政府部门").get_data(as_text=True)
    assert re.search(r'id="count-responses">1<', page)
    assert "市教育局" in page and "市委组织部" not in page
    assert city.get("/console/results?county=D08").status_code == 400  # not a county


def count_rows(session, survey_id: int, status: str) -> int:
    return session.scalar(
        select(func.coalesce(func.sum(TallyRow.count), 0)).where(
            TallyRow.survey_id == survey_id, TallyRow.status == status, TallyRow.question_id == 0
        )
    )


def test_review_moves_tally_counts_and_records_the_decision(city, session):
    survey = get_survey(session, "demo-departments")
    held = add_response(session, survey, get_department(session, "D08"), ANSWERS, status="quarantined")
    held.flags = ["straightline"]
    session.commit()
    page = city.get("/console/review").get_data(as_text=True)
    assert f"response-{held.id}" in page and "straightline" in page
    no_reason = post(city, f"/console/review/{held.id}", {"decision": "accept", "reason": " "})
    assert no_reason.status_code == 302
    session.expire_all()
    assert session.get(Response, held.id).status == "quarantined"
    assert (
        post(
            city, f"/console/review/{held.id}", {"decision": "accept", "reason": "核实为真实市民"}
        ).status_code
        == 302
    )
    session.expire_all()
    assert session.get(Response, held.id).status == "counted"
    assert count_rows(session, survey.id, "quarantined") == 0
    assert count_rows(session, survey.id, "counted") == 1
    assert (
        post(
            city, f"/console/review/{held.id}", {"decision": "reject", "reason": "同一设备重复提交"}
        ).status_code
        == 302
    )
    session.expire_all()
    assert count_rows(session, survey.id, "counted") == 0
    assert count_rows(session, survey.id, "rejected") == 1
    entries = session.scalars(select(AuditEntry).where(AuditEntry.action.like("response.%"))).all()
    assert [(e.action, e.detail["reason"]) for e in entries] == [
        ("response.accept", "核实为真实市民"),
        ("response.reject", "同一设备重复提交"),
    ]
    audit_page = city.get("/console/audit?action=response").get_data(as_text=True)
    assert "同一设备重复提交" in audit_page


def test_scoped_admin_cannot_review_another_countys_response(client, admins, session):
    survey = get_survey(session, "demo-counties")
    answers = {q.key: q.options[0].key for q in survey.questions if q.kind == "single"}
    other = add_response(session, survey, get_department(session, "C02T1"), answers, status="quarantined")
    session.commit()
    login(client, "east")
    assert f"response-{other.id}" not in client.get("/console/review").get_data(as_text=True)
    assert (
        post(client, f"/console/review/{other.id}", {"decision": "reject", "reason": "x"}).status_code == 403
    )
    session.expire_all()
    assert session.get(Response, other.id).status == "quarantined"


def test_unknown_pages_are_kind_404s(city):
    assert city.get("/console/surveys/nope").status_code == 404
    assert city.get("/console/departments/NOPE").status_code == 404
    assert city.get("/console/posters/batches/posters-nope").status_code == 404


def test_poster_page_offers_the_code_kind_and_links_follow_it(city, live_server, app):
    import io

    import zxingcpp
    from PIL import Image

    app.config["SETTINGS"].app.base_url = live_server.url  # the simulator creates WeChat codes
    page = city.get("/console/posters?survey=demo-departments&kind=wechat").get_data(as_text=True)
    assert 'value="wechat" selected' in page
    assert "/console/posters/demo-departments/D08.png?kind=wechat" in page
    wechat_png = city.get("/console/posters/demo-departments/D08.png?kind=wechat").data
    url_png = city.get("/console/posters/demo-departments/D08.png?kind=url").data
    wechat_text = [b.text for b in zxingcpp.read_barcodes(Image.open(io.BytesIO(wechat_png)))]
    url_text = [b.text for b in zxingcpp.read_barcodes(Image.open(io.BytesIO(url_png)))]
    assert url_text == [f"{live_server.url}/q/demo-departments/D08"]
    assert wechat_text and wechat_text != url_text
    assert city.get("/console/posters?kind=banner").status_code == 400
