"""Console audit log page: every admin decision and sensitive action, newest first (city admins)."""

from __future__ import annotations

from flask import render_template, request

from app.console.blueprint import bp
from app.console.guard import require_role
from app.db import db
from app.integrity.review import audit_entries


@bp.get("/audit")
def audit_log():
    require_role("city_admin")
    action = (request.args.get("action") or "").strip() or None
    who = (request.args.get("actor") or "").strip() or None
    entries = audit_entries(db.session, action=action, actor=who)
    return render_template("console/audit.html", nav="audit_log", entries=entries, action=action or "",
                           who=who or "")  # fmt: skip
