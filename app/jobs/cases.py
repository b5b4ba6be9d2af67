# RQ jobs of the follow-up loop: tell the citizen a case was answered (retried with backoff, never
# losing the case), escalate overdue cases and erase expired contacts (periodic, app.schedule).
from __future__ import annotations

import logging
from datetime import datetime, timedelta

from flask import current_app

from app.cases import escalate_overdue, expire_contacts, mark_notified, mark_notify_failed, sealer_for
from app.cases.notices import answer_url, notice_data, template_id
from app.db import db
from app.jobs.queues import enqueue, get_queue
from app.models import Department, FollowupCase
from app.redis_store import redis_store
from app.wechat_api import WeChatApi, WeChatApiError

log = logging.getLogger(__name__)
QUEUE = "wechat"


def request_notice(case_id: int) -> None:
    """Enqueue the notice of an answered case (call after the answer is committed)."""
    enqueue(QUEUE, notify_citizen, case_id)


def notify_citizen(case_id: int) -> str:
    """Send the answered-case notice once; on failure schedule the next try (backoff doubling)."""
    settings = current_app.config["SETTINGS"]
    session = db.session
    session.rollback()  # read the case as committed now, not through a snapshot left open in this process
    case = session.get(FollowupCase, case_id)
    if case is None or case.notify_status != "pending" or not case.contact:
        session.rollback()
        return "nothing to send"
    retries, backoff = settings.cases.notify_retries, settings.cases.notify_backoff
    openid = sealer_for(settings).open(case.contact)
    template = template_id(settings)
    case.notify_attempts += 1
    if openid is None or template is None:
        reason = "联系方式无法用已配置的密钥解开" if openid is None else "未设置 cases.notify_template_id"
        mark_notify_failed(session, case, reason, final=True)
        session.commit()
        return "failed"
    department = session.get_one(Department, case.department_id)
    try:
        WeChatApi(settings, redis_store.client).send_template_message(
            openid, template, notice_data(case, department.name), url=answer_url(settings, case)
        )
    except WeChatApiError as exc:
        final = case.notify_attempts >= retries
        mark_notify_failed(session, case, exc.message, final=final)
        attempts = case.notify_attempts
        session.commit()
        if final:
            log.error(
                "case %s: notice failed %s times, waiting for a resend: %s", case_id, attempts, exc.message
            )
            return "failed"
        delay = timedelta(seconds=backoff * 2 ** (attempts - 1))
        get_queue(QUEUE).enqueue_in(delay, notify_citizen, case_id)
        log.warning("case %s: notice failed (%s), retry %s in %s", case_id, exc.message, attempts, delay)
        return "retrying"
    mark_notified(session, case)
    session.commit()
    return "sent"


def escalate_cases(now: datetime | None = None) -> int:
    settings = current_app.config["SETTINGS"]
    db.session.rollback()  # a fresh transaction (see notify_citizen)
    moved = escalate_overdue(db.session, working_days=settings.cases.deadline_working_days, now=now)
    db.session.commit()
    return len(moved)


def erase_expired_contacts(now: datetime | None = None) -> int:
    settings = current_app.config["SETTINGS"]
    db.session.rollback()
    count = expire_contacts(db.session, contact_days=settings.cases.contact_days, now=now)
    db.session.commit()
    return count
