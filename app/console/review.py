"""Console integrity review: quarantined and flagged responses, accept or reject with a reason."""

from __future__ import annotations

from flask import current_app, flash, redirect, render_template, request, url_for

from app.console.blueprint import bp
from app.console.guard import actor, require_role, scope_ids
from app.db import db
from app.errors import Invalid
from app.integrity import review as service
from app.models import Department, Question
from app.org.surveys import list_surveys
from app.security.client_address import client_address


@bp.get("/review")
def review():
    queue = request.args.get("queue", "quarantined")
    allowed = scope_ids()
    responses = service.review_queue(db.session, queue, department_ids=allowed)
    surveys = {s.id: s for s in list_surveys(db.session)}
    departments = {d.id: d for d in db.session.query(Department).all()}
    questions = {
        q.id: q
        for q in db.session.query(Question).filter(Question.survey_id.in_({r.survey_id for r in responses}))
    }
    options = {o.id: o for q in questions.values() for o in q.options}
    return render_template(
        "console/review.html",
        nav="review",
        queue=queue,
        sizes=service.queue_sizes(db.session, allowed),
        responses=responses,
        surveys=surveys,
        departments=departments,
        questions=questions,
        options=options,
    )


@bp.post("/review/<int:response_id>")
def decide(response_id: int):
    require_role("city_admin", "scoped_admin")
    queue = request.form.get("queue", "quarantined")
    try:
        response = service.decide(
            db.session,
            response_id,
            request.form.get("decision", ""),
            request.form.get("reason", ""),
            actor=actor(),
            department_ids=scope_ids(),
            ip=client_address(request.environ, current_app.config["SETTINGS"]),
        )
    except Invalid as exc:
        db.session.rollback()
        flash(exc.message, "error")
        return redirect(url_for("console.review", queue=queue))
    db.session.commit()
    flash(f"回答 #{response.id} 已{'计入' if response.status == 'counted' else '剔除'}", "ok")
    return redirect(url_for("console.review", queue=queue))
