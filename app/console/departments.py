"""Console pages for the org chart: the tree, create, edit, deactivate, and bulk import with preview."""

from __future__ import annotations

import json
import secrets

from flask import flash, redirect, render_template, request, url_for

from app.console.blueprint import bp
from app.console.guard import actor, can_write, check_scope, current_admin, require_role, scope_ids
from app.db import db
from app.errors import Forbidden, Invalid
from app.models.org import CATEGORIES, LEVEL_NAMES
from app.org import departments as service
from app.redis_store import redis_store

IMPORT_TTL = 1800  # seconds a previewed file waits for confirmation


def _tree(depts):
    """(roots, children by parent id) for the departments an admin may see."""
    ids = {d.id for d in depts}
    children: dict[int, list] = {}
    roots = []
    for dept in depts:
        if dept.parent_id in ids:
            children.setdefault(dept.parent_id, []).append(dept)
        else:
            roots.append(dept)
    return roots, children


def _visible_departments():
    admin = current_admin()
    return service.list_departments(db.session, within=admin.scope_department_id)


def _categories(depts) -> list[str]:
    extra = sorted({d.category for d in depts} - set(CATEGORIES))
    return list(CATEGORIES) + extra


def _departments_page(form=None, errors=None, status: int = 200):
    depts = _visible_departments()
    roots, children = _tree(depts)
    groups: dict[str, list] = {}
    for dept in roots:
        key = LEVEL_NAMES[dept.level] + ("" if dept.level != "city" else f" · {dept.category}")
        groups.setdefault(key, []).append(dept)
    return render_template(
        "console/departments.html",
        nav="departments",
        groups=groups,
        children=children,
        total=len(depts),
        parents=[d for d in depts if d.level == "county"],
        categories=_categories(depts),
        level_names=LEVEL_NAMES,
        can_write=can_write(),
        form=form or {},
        errors=errors or {},
    ), status


@bp.get("/departments")
def departments():
    return _departments_page()


@bp.post("/departments")
def create_department():
    require_role("city_admin", "scoped_admin")
    form = request.form
    parent_code = form.get("parent_code") or None
    if scope_ids() is not None:
        # A scoped admin adds townships under a county of their own, nothing at city level.
        if not parent_code:
            raise Forbidden("您只能在自己管辖的县区下新增乡镇")
        check_scope(service.get_department(db.session, parent_code))
    try:
        dept = service.create_department(
            db.session,
            code=form.get("code", "").strip(),
            name=form.get("name", ""),
            category=form.get("category", ""),
            level=form.get("level", ""),
            parent_code=parent_code,
            actor=actor(),
        )
    except Invalid as exc:
        db.session.rollback()
        flash(exc.message, "error")
        return _departments_page(form, exc.errors, 400)
    db.session.commit()
    flash(f"已新增 {dept.name}（{dept.code}）", "ok")
    return redirect(url_for("console.department", code=dept.code))


@bp.route("/departments/<code>", methods=["GET", "POST"])
def department(code: str):
    dept = check_scope(service.get_department(db.session, code))
    errors, status = {}, 200
    if request.method == "POST":
        require_role("city_admin", "scoped_admin")
        parent_code = request.form.get("parent_code")
        if parent_code:
            check_scope(service.get_department(db.session, parent_code))
        try:
            service.update_department(
                db.session,
                code,
                name=request.form.get("name", ""),
                category=request.form.get("category", ""),
                parent_code=parent_code if dept.level == "township" else None,
                actor=actor(),
            )
        except Invalid as exc:
            db.session.rollback()
            dept = service.get_department(db.session, code)
            errors, status = exc.errors or {"name": exc.message}, 400
            flash(exc.message, "error")
        else:
            db.session.commit()
            flash("已保存", "ok")
            return redirect(url_for("console.department", code=code))
    depts = _visible_departments()
    return render_template(
        "console/department.html",
        nav="departments",
        dept=dept,
        parents=[d for d in depts if d.level == "county"],
        categories=_categories(depts),
        level_names=LEVEL_NAMES,
        can_write=can_write(),
        errors=errors,
    ), status


@bp.post("/departments/<code>/active")
def department_active(code: str):
    require_role("city_admin", "scoped_admin")
    dept = check_scope(service.get_department(db.session, code))
    active = request.form.get("active") == "1"
    service.set_active(db.session, code, active, actor=actor())
    db.session.commit()
    flash(f"{dept.name} 已{'启用' if active else '停用'}", "ok")
    return redirect(url_for("console.department", code=code))


# --- bulk import ----------------------------------------------------------------------------------


def _import_key(token: str) -> str:
    return f"console:import:{current_admin().id}:{token}"


@bp.route("/departments/import", methods=["GET", "POST"])
def import_departments():
    require_role("city_admin")
    if request.method == "GET":
        return render_template("console/import.html", nav="departments", report=None)
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        raise Invalid("请选择要导入的 CSV 或 XLSX 文件", field="file")
    rows = service.read_rows(upload.read(), upload.filename)
    report = service.import_departments(db.session, rows, dry_run=True, actor=actor())
    db.session.rollback()
    token = None
    if report.ok:
        token = secrets.token_urlsafe(16)
        redis_store.client.set(_import_key(token), json.dumps(rows, ensure_ascii=False), ex=IMPORT_TTL)
    return render_template(
        "console/import.html",
        nav="departments",
        report=report,
        token=token,
        filename=upload.filename,
        rows=[r for r in rows if r],
    ), (200 if report.ok else 400)


@bp.post("/departments/import/confirm")
def confirm_import():
    require_role("city_admin")
    key = _import_key(request.form.get("token", ""))
    stored = redis_store.client.getdel(key)
    if stored is None:
        raise Invalid("预览已过期，请重新上传文件")
    report = service.import_departments(db.session, json.loads(stored), actor=actor())
    if not report.ok:  # the org chart changed since the preview
        db.session.rollback()
        return render_template("console/import.html", nav="departments", report=report, rows=[]), 409
    db.session.commit()
    flash(
        f"导入完成：新增 {len(report.created)}，更新 {len(report.updated)}，未变 {len(report.unchanged)}",
        "ok",
    )
    return redirect(url_for("console.departments"))
