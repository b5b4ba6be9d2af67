"""The demo: a fictional city's org chart, open surveys and a console login (idempotent)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from app import accounts, clock
from app.models import AdminUser, Survey
from app.org import departments, surveys

CITY_NAME = "青川市"
CITY_DEPARTMENTS = [
    ("D01", "市委组织部", "党群部门"), ("D02", "市委宣传部", "党群部门"), ("D03", "市委统战部", "党群部门"),
    ("D04", "市总工会", "党群部门"), ("D05", "团市委", "党群部门"), ("D06", "市妇联", "党群部门"),
    ("D07", "市发展和改革委员会", "政府部门"), ("D08", "市教育局", "政府部门"),
    ("D09", "市公安局", "政府部门"),
    ("D10", "市民政局", "政府部门"), ("D11", "市人力资源和社会保障局", "政府部门"),
    ("D12", "市自然资源和规划局", "政府部门"), ("D13", "市住房和城乡建设局", "政府部门"),
    ("D14", "市交通运输局", "政府部门"), ("D15", "市卫生健康委员会", "政府部门"),
    ("D16", "市市场监督管理局", "政府部门"), ("D17", "市行政审批服务局", "政府部门"),
    ("D18", "市税务局", "垂直管理部门"), ("D19", "市生态环境局", "垂直管理部门"),
    ("D20", "市气象局", "垂直管理部门"), ("D21", "市烟草专卖局", "垂直管理部门"),
    ("D22", "市供电公司", "公共服务单位"), ("D23", "市自来水公司", "公共服务单位"),
    ("D24", "市公共交通集团", "公共服务单位"), ("D25", "市人民医院", "公共服务单位"),
]  # fmt: skip
COUNTIES = [
    ("C01", "东湖区", ["东湖街道", "滨江街道", "桃源镇"]),
    ("C02", "西山区", ["西山街道", "石门镇", "云岭乡"]),
    ("C03", "南平县", ["南平镇", "柳溪镇", "青石乡"]),
    ("C04", "北川县", ["北川镇", "枫林镇", "白水乡"]),
    ("C05", "临河县", ["临河镇", "沙洲镇", "芦花乡"]),
    ("C06", "安宁县", ["安宁镇", "松岗镇", "梅岭乡"]),
]
DEPARTMENT_SURVEY = "demo-departments"
COUNTY_SURVEY = "demo-counties"
ADMIN_USERNAME = "admin"


@dataclass(frozen=True)
class DemoInfo:
    admin_username: str
    admin_password: str | None  # None when the admin existed before and its password is not known
    survey_slug: str
    department_code: str


def demo_rows() -> list[dict[str, str]]:
    rows = [
        {"code": code, "name": name, "category": category, "level": "city"}
        for code, name, category in CITY_DEPARTMENTS
    ]
    for code, name, towns in COUNTIES:
        rows.append({"code": code, "name": name, "category": "县区", "level": "county"})
        for i, town in enumerate(towns, start=1):
            rows.append(
                {
                    "code": f"{code}T{i}",
                    "name": f"{name}{town}",
                    "category": "乡镇",
                    "level": "township",
                    "parent_code": code,
                }
            )
    return rows


def load_demo(session: Session, var_dir: Path, today: date | None = None) -> DemoInfo:
    """Load the demo org chart and open two surveys for this year; safe to run again."""
    today = today or clock.today()
    surveys.sync_templates(session)
    report = departments.import_departments(session, demo_rows(), actor="demo")
    if not report.ok:  # the demo data is ours: a failure here is a bug, not bad input
        raise RuntimeError(f"demo org chart rejected: {report.errors[:3]}")
    year_start, year_end = date(today.year, 1, 1), date(today.year, 12, 31)
    for slug, template, levels, title in (
        (
            DEPARTMENT_SURVEY,
            "department_satisfaction",
            ["city"],
            f"{today.year}年{CITY_NAME}市直部门满意度调查",
        ),
        (
            COUNTY_SURVEY,
            "county_satisfaction",
            ["county", "township"],
            f"{today.year}年{CITY_NAME}县区乡镇满意度调查",
        ),
    ):
        if session.scalar(select(Survey.id).where(Survey.slug == slug)) is None:
            surveys.create_survey(
                session,
                slug=slug,
                template=template,
                period_start=year_start,
                period_end=year_end,
                title=title,
                levels=levels,
                actor="demo",
            )
            surveys.open_survey(session, slug, actor="demo")
    password = None
    password_file = Path(var_dir) / "demo-admin-password.txt"
    if session.scalar(select(AdminUser.id).where(AdminUser.username == ADMIN_USERNAME)) is None:
        password = secrets.token_urlsafe(12)
        accounts.create_admin(
            session, username=ADMIN_USERNAME, password=password, role="city_admin", actor="demo"
        )
        password_file.parent.mkdir(parents=True, exist_ok=True)
        password_file.write_text(password + "\n")
        password_file.chmod(0o600)
    elif password_file.exists():
        password = password_file.read_text().strip()
    return DemoInfo(ADMIN_USERNAME, password, DEPARTMENT_SURVEY, "D08")
