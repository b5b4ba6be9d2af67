# A survey period's public results: the admin publishes or withdraws them; the public document
# holds each department's satisfaction index with its interval, by level and category, and the
# follow-up figures. No personal data: counts and means only.
from __future__ import annotations

import hashlib
import json
from typing import Any

from sqlalchemy.orm import Session

from app import clock
from app.accounts import audit
from app.cases.figures import case_figures
from app.errors import NotFound
from app.models import Survey
from app.models.org import LEVEL_NAMES, LEVELS
from app.org.surveys import get_survey
from app.tally.index import satisfaction_index


def set_published(
    session: Session, slug: str, published: bool, *, actor: str, ip: str | None = None
) -> Survey:
    survey = get_survey(session, slug)
    survey.results_published_at = clock.now() if published else None
    audit.record(session, actor, "survey.publish" if published else "survey.unpublish", slug, {}, ip)
    return survey


def published_survey(session: Session, slug: str) -> Survey:
    """The survey if its results are public (NotFound otherwise: a draft looks like nothing)."""
    try:
        survey = get_survey(session, slug)
    except NotFound:
        survey = None
    if survey is None or survey.results_published_at is None:
        raise NotFound("这项调查的结果还没有公布。")
    return survey


def public_results(session: Session, survey: Survey, min_sample: int) -> dict[str, Any]:
    """The public document: levels → categories → departments, and the follow-up figures."""
    rows = satisfaction_index(session, survey, min_sample=min_sample)
    levels = []
    for level in LEVELS:
        in_level = [r for r in rows if r.level == level]
        if not in_level:
            continue
        categories: dict[str, list[dict[str, Any]]] = {}
        for r in in_level:
            categories.setdefault(r.category, []).append(
                {
                    "department": r.department,
                    "name": r.department_name,
                    "responses": r.responses,
                    "index": r.index,
                    "ci_low": r.ci_low,
                    "ci_high": r.ci_high,
                    "insufficient": r.insufficient,
                    "rank_label": r.rank_label,
                }  # fmt: skip
            )
        grouped = [{"name": k, "departments": v} for k, v in categories.items()]
        levels.append({"level": level, "name": LEVEL_NAMES[level], "categories": grouped})
    figures, total = case_figures(session, survey.id)
    return {
        "survey": survey.slug,
        "title": survey.title,
        "period_start": survey.period_start.isoformat(),
        "period_end": survey.period_end.isoformat(),
        "published_at": survey.results_published_at.isoformat() if survey.results_published_at else None,
        "min_sample": min_sample,
        "levels": levels,
        "followup": {"total": total.as_dict(), "rows": [f.as_dict() for f in figures]},
    }


def results_etag(document: dict[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(document, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
    return digest[:32]
