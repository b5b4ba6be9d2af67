# The answer to a citizen's 差评 (/c/<token>, linked from the WeChat notice) and the one-question
# re-rating, open only to the person who rated (the same respondent key as the response).
from __future__ import annotations

from typing import Any

from flask import current_app, make_response, render_template, request

from app.cases import RERATING_LABELS, case_by_token, rerate
from app.db import db
from app.errors import DomainError
from app.intake.respondents import respondent_key
from app.models import Department
from app.public.blueprint import bp
from app.public.identity import begin_identity, current_openid
from app.public.pages import local_date


def _page(template: str, code: int = 200, **context):
    response = make_response(render_template(template, **context), code)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/c/<token>", methods=["GET", "POST"])
def case_answer(token: str):
    case = case_by_token(db.session, token)
    department = db.session.get_one(Department, case.department_id)
    openid = current_openid()
    if openid is None:
        if request.method == "POST":
            return _page(
                "public/notice.html",
                403,
                title="请重新打开",
                message="您的登录已失效，请从公众号消息重新打开本页。",
            )
        return begin_identity(request.url)
    context: dict[str, Any] = {"case": case, "department": department, "labels": RERATING_LABELS,
               "answered": local_date(case.answered_at) if case.answered_at else None}  # fmt: skip
    if request.method == "GET":
        return _page("public/case_answer.html", **context)
    rkey = respondent_key(current_app.config["SETTINGS"].survey.respondent_secret, openid)
    try:
        rerate(db.session, token, rkey, request.form.get("rerating", ""))
    except DomainError as exc:
        db.session.rollback()
        return _page("public/case_answer.html", exc.status, error=exc.message, **context)
    db.session.commit()
    return _page("public/notice.html", title="感谢您的评价！", done=True,
                 message=f"您对「{department.name}」处理结果的评价已收到，谢谢您的监督。")  # fmt: skip
