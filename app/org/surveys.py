"""The survey service: templates in SQL, surveys created from them, and their open/close life.

A survey freezes its template's questions when it is created (`snapshot` plus Question and
Option rows); while it is a draft its questions may still be edited; once opened they never
change, so every answer refers to the questions the citizen saw.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from app.accounts import audit
from app.errors import Conflict, Invalid, NotFound
from app.models import Department, Option, Question, Survey, SurveyTemplate, utcnow
from app.models.org import LEVELS
from survey_templates import Template, TemplateError, load_builtin

SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,39}$")
TRANSITIONS = {"open": ("draft", "closed"), "closed": ("open",)}


def survey_dict(survey: Survey) -> dict[str, Any]:
    """The public shape of a survey (SPEC: surveys list --json)."""
    return {
        "slug": survey.slug,
        "title": survey.title,
        "status": survey.status,
        "period_start": survey.period_start.isoformat(),
        "period_end": survey.period_end.isoformat(),
        "template": survey.template,
        "levels": list(survey.levels or []),
    }


# --- templates --------------------------------------------------------------------------------


def sync_templates(session: Session) -> list[str]:
    """Load the built-in templates into SQL (insert or update); return their names."""
    templates = load_builtin()
    existing = {t.name: t for t in session.scalars(select(SurveyTemplate))}
    for name, template in templates.items():
        row = existing.get(name) or SurveyTemplate(name=name)
        row.title, row.version, row.definition = template.title, template.version, template.to_snapshot()
        session.add(row)
    session.flush()
    return sorted(templates)


def save_template(session: Session, template: Template, actor: str = "system") -> SurveyTemplate:
    """Insert or update one template (custom templates; surveys already created keep their snapshot)."""
    row = session.scalar(select(SurveyTemplate).where(SurveyTemplate.name == template.name))
    row = row or SurveyTemplate(name=template.name)
    row.title, row.version, row.definition = template.title, template.version, template.to_snapshot()
    session.add(row)
    session.flush()
    audit.record(session, actor, "template.save", template.name, {"version": template.version})
    return row


def get_template(session: Session, name: str) -> Template:
    row = session.scalar(select(SurveyTemplate).where(SurveyTemplate.name == name))
    if row is None:
        names = (
            ", ".join(session.scalars(select(SurveyTemplate.name).order_by(SurveyTemplate.name))) or "none"
        )
        raise NotFound(f"没有名为 {name} 的模板（可用：{names}；先运行 wxsurvey init）", field="template")
    return Template.from_snapshot(row.definition)


def list_templates(session: Session) -> list[SurveyTemplate]:
    return list(session.scalars(select(SurveyTemplate).order_by(SurveyTemplate.name)))


# --- surveys ----------------------------------------------------------------------------------


def get_survey(session: Session, slug: str) -> Survey:
    survey = session.scalar(
        select(Survey)
        .where(Survey.slug == slug)
        .options(selectinload(Survey.questions).selectinload(Question.options))
    )
    if survey is None:
        raise NotFound(f"没有名为 {slug} 的调查", field="survey")
    return survey


def list_surveys(session: Session, *, status: str | None = None) -> list[Survey]:
    query = select(Survey).order_by(Survey.period_start.desc(), Survey.slug)
    if status:
        query = query.where(Survey.status == status)
    return list(session.scalars(query))


def _questions_from(template: Template) -> list[Question]:
    """The SQL questions of a template: a matrix becomes one single-choice question per row (its
    own key, indicator and answers; `matrix` names the block), a scale keeps its eleven options."""
    questions: list[Question] = []
    for q in template.questions:
        parts = (
            [(r.key, "single", r.label, r.indicator, q.key) for r in q.rows]
            if q.kind == "matrix"
            else [(q.key, q.kind, q.title, q.indicator, None)]
        )
        for key, kind, title, indicator, matrix in parts:
            question = Question(
                key=key,
                position=len(questions),
                kind=kind,
                title=title,
                required=q.required,
                scored=q.scored,
                segment=q.segment,
                max_length=q.max_length,
                max_choices=q.max_choices,
                indicator=indicator,
                matrix=matrix,
            )
            question.options = [
                Option(key=o.key, position=i, label=o.label, score=o.score, negative=o.negative)
                for i, o in enumerate(q.options)
            ]
            questions.append(question)
    return questions


def create_survey(
    session: Session,
    *,
    slug: str,
    template: str,
    period_start: date,
    period_end: date,
    title: str | None = None,
    levels: list[str] | None = None,
    actor: str = "system",
) -> Survey:
    if not SLUG_RE.match(slug or ""):
        raise Invalid(f"标识 {slug!r} 无效：2-40 位小写字母、数字或 -，以字母或数字开头", field="slug")
    if period_end < period_start:
        raise Invalid("结束日期不能早于开始日期", field="period_end")
    levels = list(levels or [])
    bad = [level for level in levels if level not in LEVELS]
    if bad:
        raise Invalid(f"层级 {', '.join(bad)} 无效：应为 city/county/township", field="levels")
    if session.scalar(select(Survey.id).where(Survey.slug == slug)) is not None:
        raise Conflict(f"标识 {slug} 已被使用", field="slug")
    tmpl = get_template(session, template)
    title = (title or tmpl.title).strip()
    if not title or len(title) > 200:
        raise Invalid("标题不能为空，且不超过 200 个字", field="title")
    survey = Survey(
        slug=slug,
        title=title,
        template=tmpl.name,
        status="draft",
        period_start=period_start,
        period_end=period_end,
        levels=levels,
        snapshot=tmpl.to_snapshot(),
    )
    survey.questions = _questions_from(tmpl)
    session.add(survey)
    session.flush()
    audit.record(session, actor, "survey.create", slug, {"template": tmpl.name})
    return survey


def update_questions(session: Session, slug: str, snapshot: dict[str, Any], actor: str = "system") -> Survey:
    """Replace a draft survey's questions with an edited snapshot (validated like a template)."""
    survey = get_survey(session, slug)
    if survey.status != "draft":
        raise Conflict("调查已开始，问题不能再修改", field="status")
    try:
        tmpl = Template.from_snapshot(snapshot)
    except TemplateError as exc:
        raise Invalid(str(exc), field="questions") from None
    survey.questions.clear()
    session.flush()
    survey.questions = _questions_from(tmpl)
    survey.snapshot = tmpl.to_snapshot()
    session.flush()
    audit.record(session, actor, "survey.edit_questions", slug, {"questions": len(tmpl.questions)})
    return survey


def _transition(session: Session, slug: str, status: str, actor: str) -> Survey:
    survey = get_survey(session, slug)
    if survey.status == status:
        return survey
    if survey.status not in TRANSITIONS[status]:
        raise Conflict(f"调查 {slug} 当前为 {survey.status}，不能改为 {status}", field="status")
    previous, survey.status = survey.status, status
    if status == "open":
        survey.opened_at = utcnow()
    else:
        survey.closed_at = utcnow()
    audit.record(session, actor, f"survey.{status}", slug, {"from": previous})
    return survey


def open_survey(session: Session, slug: str, actor: str = "system") -> Survey:
    return _transition(session, slug, "open", actor)


def close_survey(session: Session, slug: str, actor: str = "system") -> Survey:
    return _transition(session, slug, "closed", actor)


def survey_departments(session: Session, survey: Survey, *, active_only: bool = True) -> list[Department]:
    """The departments a survey evaluates: its levels (all when empty), in org-chart order."""
    query = select(Department).order_by(Department.level, Department.sort_order, Department.code)
    if survey.levels:
        query = query.where(Department.level.in_(survey.levels))
    if active_only:
        query = query.where(Department.active.is_(True))
    return list(session.scalars(query))


def covers(survey: Survey, department: Department) -> bool:
    return not survey.levels or department.level in survey.levels


def accepting_state(survey: Survey, department: Department, today: date) -> str | None:
    """Why answers for this pair are refused right now, or None when they are accepted."""
    if not covers(survey, department):
        return "not_covered"
    if not department.active:
        return "department_inactive"
    if survey.status == "draft" or today < survey.period_start:
        return "not_open"
    if survey.status == "closed" or today > survey.period_end:
        return "closed"
    return None
