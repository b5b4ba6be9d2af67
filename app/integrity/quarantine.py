# Quarantine by the detector: answers already counted moved out of the official figures, their
# tally rows with them (review's move), in the caller's transaction, with one audit entry per move.
from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.orm import Session

from app.accounts import audit
from app.models import Response

ACTOR = "integrity"  # the audit log's name for the detector
AUDIT_IDS = 200  # response ids listed in one audit entry at most


def hold(
    session: Session, over: list[tuple[Response, int, list]], *, meta_updates: dict | None = None
) -> int:
    """Quarantine counted, unreviewed responses with their new score and reasons; the tally rows
    move from counted to quarantined exactly. A response a reviewer or another drain moved
    meanwhile is left alone (conditional update). Returns the number moved."""
    from app.integrity.review import move_counts

    moved = []
    for response, value, reasons in over:
        meta = dict(response.meta or {})
        if meta_updates and response.id in meta_updates:
            meta["left"] = meta_updates[response.id]
        done = session.execute(
            update(Response)
            .where(Response.id == response.id, Response.status == "counted", Response.reviewed_at.is_(None))
            .values(status="quarantined", score=value, reasons=reasons, meta=meta)
            .execution_options(synchronize_session=False)
        ).rowcount  # type: ignore[attr-defined]
        if done == 1:
            moved.append(response)
    if not moved:
        return 0
    move_counts(session, moved, "counted", "quarantined")
    for response in moved:
        session.expire(response)
    ids = [r.id for r in moved]
    audit.record(
        session, ACTOR, "response.quarantine", str(ids[0]) if len(ids) == 1 else f"{ids[0]}..{ids[-1]}",
        {"count": len(ids), "ids": ids[:AUDIT_IDS], "from": "counted", "to": "quarantined",
         "retroactive": True},
    )  # fmt: skip
    return len(moved)


def sweep_leavers(session: Session, redis, detector, now_ms: int) -> int:
    """The follow-and-leave look back: answers by new followers who have since unfollowed are
    scored again with that; those over the threshold are quarantined. The caller commits."""
    from sqlalchemy import select

    from app.integrity.follows import leavers

    found = leavers(redis, now_ms)
    if not found:
        return 0
    moved = 0
    for survey_id, dept_id, rkey, _answered, left in found:
        response = session.scalar(select(Response).where(
            Response.survey_id == survey_id, Response.department_id == dept_id,
            Response.respondent_key == rkey,
            Response.status == "counted", Response.reviewed_at.is_(None)))  # fmt: skip
        if response is not None:
            moved += detector.rescore(session, redis, [response], extra={response.id: left})
    return moved
