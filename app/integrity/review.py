"""Integrity review: flagged and quarantined responses, accepted or rejected with a reason.

A decision moves the response's tally counts from its old status to the new one and records
itself in the audit log, all in the caller's transaction; a conditional update makes two
admins deciding the same response at once move the counts only once.
"""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session, selectinload

from app.accounts import audit
from app.errors import Conflict, Forbidden, Invalid, NotFound
from app.models import Question, Response, utcnow
from app.tally.rows import apply_tally, response_tally_keys

DECISIONS = {"accept": "counted", "reject": "rejected"}
QUEUES = ("quarantined", "flagged", "rejected")
MAX_REASON = 500


def _has_flags(session: Session):
    length = (
        func.jsonb_array_length if session.get_bind().dialect.name == "postgresql" else func.json_array_length
    )
    return length(Response.flags) > 0


def review_queue(
    session: Session,
    queue: str = "quarantined",
    *,
    survey_id: int | None = None,
    department_ids: Collection[int] | None = None,
    limit: int = 200,
) -> list[Response]:
    """Responses waiting for a decision (quarantined), counted ones carrying flags, or rejected ones."""
    if queue not in QUEUES:
        raise Invalid(f"队列 {queue!r} 无效", field="queue")
    query = select(Response).options(selectinload(Response.answers))
    if queue == "flagged":
        query = query.where(Response.status == "counted", _has_flags(session), Response.reviewed_at.is_(None))
    else:
        query = query.where(Response.status == queue)
    if survey_id is not None:
        query = query.where(Response.survey_id == survey_id)
    if department_ids is not None:
        query = query.where(Response.department_id.in_(list(department_ids) or [-1]))
    return list(session.scalars(query.order_by(Response.submitted_at.desc()).limit(limit)))


def queue_sizes(session: Session, department_ids: Collection[int] | None = None) -> dict[str, int]:
    def count(*where) -> int:
        query = select(func.count(Response.id)).where(*where)
        if department_ids is not None:
            query = query.where(Response.department_id.in_(list(department_ids) or [-1]))
        return session.scalar(query) or 0

    return {
        "quarantined": count(Response.status == "quarantined"),
        "flagged": count(Response.status == "counted", _has_flags(session), Response.reviewed_at.is_(None)),
        "rejected": count(Response.status == "rejected"),
    }


def tally_keys(session: Session, response: Response, status: str):
    """The tally rows this response counts in, as if its status were `status`."""
    segment = session.scalar(
        select(Question.id).where(Question.survey_id == response.survey_id, Question.segment.is_(True))
    )
    return response_tally_keys(
        survey_id=response.survey_id,
        department_id=response.department_id,
        submitted_at=response.submitted_at,
        channel=response.channel,
        status=status,
        answers=[(a.question_id, a.option_id, bool(a.text)) for a in response.answers],
        segment_question_id=segment,
    )


def decide(
    session: Session,
    response_id: int,
    decision: str,
    reason: str,
    *,
    actor: str,
    department_ids: Collection[int] | None = None,
    ip: str | None = None,
) -> Response:
    """Accept (count it) or reject (leave it out of every figure) one response, with a reason."""
    if decision not in DECISIONS:
        raise Invalid("请选择“计入”或“剔除”", field="decision")
    reason = (reason or "").strip()
    if not reason:
        raise Invalid("请填写审核理由", field="reason")
    if len(reason) > MAX_REASON:
        raise Invalid(f"审核理由不超过 {MAX_REASON} 个字", field="reason")
    response = session.get(Response, response_id, options=[selectinload(Response.answers)])
    if response is None:
        raise NotFound("没有这条回答")
    if department_ids is not None and response.department_id not in department_ids:
        raise Forbidden("这条回答不在您的管辖范围内")
    old, new = response.status, DECISIONS[decision]
    now = utcnow()
    moved = session.execute(
        update(Response)
        .where(Response.id == response.id, Response.status == old)
        .values(status=new, reviewed_by=actor, reviewed_at=now, review_reason=reason)
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    if moved != 1:
        raise Conflict("这条回答刚被其他管理员处理过，请刷新页面")
    if old != new:
        apply_tally(session, tally_keys(session, response, old), -1)
        apply_tally(session, tally_keys(session, response, new), +1)
    session.refresh(response)
    audit.record(
        session, actor, f"response.{decision}", str(response.id),
        {"from": old, "to": new, "reason": reason, "flags": list(response.flags or [])}, ip,
    )  # fmt: skip
    return response


def audit_entries(session: Session, *, action: str | None = None, actor: str | None = None, limit: int = 200):
    from app.models import AuditEntry

    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if action:
        query = query.where(or_(AuditEntry.action == action, AuditEntry.action.startswith(action + ".")))
    if actor:
        query = query.where(AuditEntry.actor == actor)
    return list(session.scalars(query))
