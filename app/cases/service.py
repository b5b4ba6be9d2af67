# The follow-up of one case: the department's answer, the notice's bookkeeping, the citizen's
# re-rating, appeals to integrity review, escalation past the deadline and the contact's erasure.
"""Lifecycle: open → answered (verification, fix and reply written; a notice is pending when a
contact was kept) → closed (the notice delivered, or nothing to deliver). The contact is erased
in the same transaction that closes the case, and by expire_contacts() after cases.contact_days
whatever the state. Every function takes the session and, where a clock matters, `now`.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from app import clock
from app.accounts import audit
from app.cases.calendar import load_calendar
from app.errors import Conflict, Forbidden, Invalid, NotFound
from app.integrity.review import submit_for_review
from app.models import Department, FollowupCase

MAX_TEXT = 2000
RERATING_LABELS = {"satisfied": "满意", "basic": "基本满意", "dissatisfied": "不满意"}
STATUS_LABELS = {"open": "待处理", "answered": "已答复", "closed": "已办结"}
APPEAL_FLAG = "appeal"


def _now(now: datetime | None) -> datetime:
    """The moment given (in UTC, as stored: SQLite keeps no zone), else the city's clock."""
    return _aware(now).astimezone(UTC) if now is not None else clock.now()


def _aware(moment: datetime) -> datetime:
    """SQLite hands back naive UTC: read it as UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def in_scope(department_ids: Collection[int] | None):
    if department_ids is None:
        return True
    ids = list(department_ids) or [-1]
    return or_(FollowupCase.department_id.in_(ids), FollowupCase.holder_department_id.in_(ids))


def list_cases(
    session: Session,
    *,
    department_ids: Collection[int] | None = None,
    status: str | None = None,
    survey_id: int | None = None,
    limit: int = 200,
) -> list[FollowupCase]:
    query = select(FollowupCase).where(in_scope(department_ids))
    if status == "escalated":
        query = query.where(FollowupCase.escalation_level > 0)
    elif status:
        query = query.where(FollowupCase.status == status)
    if survey_id is not None:
        query = query.where(FollowupCase.survey_id == survey_id)
    return list(session.scalars(query.order_by(FollowupCase.holder_due_at, FollowupCase.id).limit(limit)))


def get_case(session: Session, case_id: int, department_ids: Collection[int] | None = None) -> FollowupCase:
    case = session.get(FollowupCase, case_id)
    if case is None:
        raise NotFound("没有这个回访件")
    if department_ids is not None and not (
        case.department_id in department_ids or case.holder_department_id in department_ids
    ):
        raise Forbidden("这个回访件不在您的管辖范围内")
    return case


def case_by_token(session: Session, token: str) -> FollowupCase:
    case = session.scalar(select(FollowupCase).where(FollowupCase.token == token)) if token else None
    if case is None or len(token) > 32:
        raise NotFound("没有找到这条答复，链接可能不完整。")
    return case


def _clean(value: str | None, label: str, field: str) -> str:
    text = (value or "").strip()
    if not text:
        raise Invalid(f"请填写{label}", field=field)
    if len(text) > MAX_TEXT:
        raise Invalid(f"{label}不超过 {MAX_TEXT} 个字", field=field)
    return text


def answer_case(
    session: Session,
    case_id: int,
    *,
    verification: str,
    fix: str,
    reply: str,
    actor: str,
    department_ids: Collection[int] | None = None,
    ip: str | None = None,
    now: datetime | None = None,
) -> FollowupCase:
    """The department's answer. With a kept contact the notice becomes pending (the caller
    enqueues it after commit); without one the case closes at once."""
    case = get_case(session, case_id, department_ids)  # scope first: outsiders learn nothing
    texts = {
        "verification": _clean(verification, "核实情况", "verification"),
        "fix": _clean(fix, "整改措施", "fix"),
        "reply": _clean(reply, "答复市民的话", "reply"),
    }
    when = _now(now)
    values = {**texts, "answered_at": when, "answered_by": actor, "status": "answered"}
    if case.contact:
        values["notify_status"] = "pending"
    else:
        values.update(status="closed", closed_at=when)
    moved = session.execute(
        update(FollowupCase)
        .where(FollowupCase.id == case.id, FollowupCase.status == "open")
        .values(**values)
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    if moved != 1:
        raise Conflict("这个回访件已经答复过了，请刷新页面")
    session.refresh(case)
    on_time = when <= _aware(case.due_at)
    audit.record(session, actor, "case.answer", str(case.id), {"on_time": on_time}, ip)
    return case


def erase_contact(case: FollowupCase, when: datetime) -> None:
    if case.contact is not None:
        case.contact = None
        case.contact_erased_at = when


def mark_notified(session: Session, case: FollowupCase, now: datetime | None = None) -> None:
    """The notice reached WeChat: the case closes and its contact is erased in this transaction."""
    when = _now(now)
    case.notify_status, case.notify_error = "sent", None
    case.status, case.closed_at = "closed", when
    erase_contact(case, when)


def mark_notify_failed(session: Session, case: FollowupCase, error: str, *, final: bool) -> None:
    """A send failed; the case keeps its answer. After the last retry it waits for a resend."""
    case.notify_error = error[:500]
    case.notify_status = "failed" if final else "pending"


def request_resend(session: Session, case_id: int, *, actor: str, department_ids=None) -> FollowupCase:
    case = get_case(session, case_id, department_ids)
    if case.status != "answered" or not case.contact:
        raise Conflict("这个回访件没有待发送的通知")
    case.notify_status, case.notify_attempts = "pending", 0
    audit.record(session, actor, "case.resend", str(case.id))
    return case


def appeal(
    session: Session,
    case_id: int,
    reason: str,
    *,
    actor: str,
    department_ids: Collection[int] | None = None,
    ip: str | None = None,
    now: datetime | None = None,
) -> FollowupCase:
    """The department holds the rating malicious: the response goes to the integrity review queue."""
    case = get_case(session, case_id, department_ids)
    if case.appealed_at is not None:
        raise Conflict("这个评价已经申诉过了，请等待审核")
    submit_for_review(session, case.response_id, APPEAL_FLAG, reason, actor=actor, ip=ip)
    case.appealed_at, case.appeal_reason = _now(now), reason.strip()
    return case


def rerate(session: Session, token: str, respondent_key: str, choice: str,
           now: datetime | None = None) -> FollowupCase:  # fmt: skip
    """The citizen's one-question re-rating, only by the person who rated (same respondent key)."""
    from app.models import Response

    if choice not in RERATING_LABELS:
        raise Invalid("请选择满意、基本满意或不满意", field="rerating")
    case = case_by_token(session, token)
    owner = session.scalar(select(Response.respondent_key).where(Response.id == case.response_id))
    if owner != respondent_key:
        raise Forbidden("只有提出这条评价的市民本人可以再次评价，谢谢您的关注。")
    if case.answered_at is None:
        raise Conflict("这条评价还在处理中，答复后再请您评价。")
    moved = session.execute(
        update(FollowupCase)
        .where(FollowupCase.id == case.id, FollowupCase.rerating.is_(None))
        .values(rerating=choice, rerated_at=_now(now))
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    if moved != 1:
        raise Conflict("您已经评价过这次答复了，感谢您的反馈！")
    session.refresh(case)
    return case


def escalate_overdue(
    session: Session, *, working_days: int, now: datetime | None = None
) -> list[FollowupCase]:
    """Open cases past their holder's deadline go one level up (township → county → city), with
    a new deadline; the case keeps its department, so the mark shows on both."""
    when = _now(now)
    overdue = list(
        session.scalars(
            select(FollowupCase).where(FollowupCase.status == "open", FollowupCase.holder_due_at < when)
        )
    )
    if not overdue:
        return []
    calendar = load_calendar(session)
    parents = dict(session.execute(select(Department.id, Department.parent_id)).all())
    moved = []
    for case in overdue:
        if case.holder_department_id is None:
            continue  # already with the city: stays overdue, nothing above it
        above = parents.get(case.holder_department_id)
        case.holder_department_id = above
        case.escalation_level += 1
        case.escalated_at = when
        case.holder_due_at = calendar.due_after(when, working_days)
        audit.record(session, "system", "case.escalate", str(case.id),
                     {"level": case.escalation_level, "to": above})  # fmt: skip
        moved.append(case)
    return moved


def expire_contacts(session: Session, *, contact_days: int, now: datetime | None = None) -> int:
    """Erase every contact kept longer than contact_days, whatever the case's state."""
    when = _now(now)
    cases = session.scalars(
        select(FollowupCase).where(
            FollowupCase.contact.is_not(None), FollowupCase.opened_at < when - timedelta(days=contact_days)
        )
    )
    count = 0
    for case in cases:
        erase_contact(case, when)
        count += 1
    return count


def reseal_contacts(session: Session, sealer) -> int:
    """Re-seal every kept contact under the current key (after a key rotation)."""
    count = 0
    for case in session.scalars(select(FollowupCase).where(FollowupCase.contact.is_not(None))):
        if sealer.is_current(case.contact):
            continue
        openid = sealer.open(case.contact)
        if openid is None:
            raise Invalid(
                f"回访件 {case.id} 的联系方式无法用已配置的密钥解开：请把旧密钥放进 previous_contact_keys"
            )
        case.contact = sealer.seal(openid)
        count += 1
    return count
