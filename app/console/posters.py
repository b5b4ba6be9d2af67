"""Console pages for QR posters: one department's poster, and batch ZIP/PDF built by an RQ job
whose progress the page polls as JSON."""

from __future__ import annotations

import uuid

from flask import Response, current_app, jsonify, redirect, render_template, request, send_file, url_for
from rq.exceptions import NoSuchJobError
from rq.job import Job

from app.console.blueprint import bp
from app.console.guard import check_scope, current_admin, scope_ids
from app.db import db
from app.errors import Forbidden, Invalid, NotFound
from app.jobs.posters import BATCH_FORMATS, batch_path, build_poster_batch
from app.jobs.queues import enqueue
from app.org import posters as service
from app.org.departments import get_department
from app.org.surveys import get_survey, list_surveys
from app.redis_store import redis_store


def _chosen_survey():
    slug = request.values.get("survey")
    if slug:
        return get_survey(db.session, slug)
    surveys = list_surveys(db.session)
    current = [s for s in surveys if s.status == "open"] or surveys
    return current[0] if current else None


@bp.get("/posters")
def posters():
    survey = _chosen_survey()
    departments = service.batch_departments(db.session, survey, scope_ids()) if survey else []
    only = request.args.get("department")
    if only:
        departments = [d for d in departments if d.code == only]
    kind = request.args.get("kind", "auto")
    if kind not in service.CODE_KINDS:
        raise Invalid("二维码类型应为 auto、url 或 wechat", field="kind")
    return render_template(
        "console/posters.html",
        nav="posters",
        survey=survey,
        kind=kind,
        surveys=list_surveys(db.session),
        departments=departments,
        batch=request.args.get("batch"),
    )


@bp.get("/posters/<slug>/<code>.png")
def department_poster(slug: str, code: str):
    check_scope(get_department(db.session, code))
    settings = current_app.config["SETTINGS"]
    kind = request.args.get("kind", "auto")
    _code, png = service.department_poster(db.session, redis_store.client, settings, slug, code, kind)
    download = request.args.get("download") == "1"
    return Response(
        png,
        mimetype="image/png",
        headers={
            "Content-Disposition": f'{"attachment" if download else "inline"}; filename="{slug}-{code}.png"'
        },
    )


@bp.post("/posters/<slug>/batch")
def start_batch(slug: str):
    get_survey(db.session, slug)
    fmt = request.form.get("format", "zip")
    if fmt not in BATCH_FORMATS:
        raise Invalid("格式应为 ZIP 或 PDF", field="format")
    allowed = scope_ids()
    batch_id = f"posters-{uuid.uuid4().hex}"
    enqueue(
        "default",
        build_poster_batch,
        batch_id,
        slug,
        fmt,
        sorted(allowed) if allowed is not None else None,
        job_id=batch_id,
        meta={"admin_id": current_admin().id, "format": fmt, "survey": slug, "done": 0, "total": 0},
        result_ttl=86400,
        job_timeout=3600,
    )
    if request.accept_mimetypes.best == "application/json":
        return jsonify(_batch_state(_batch_job(batch_id)))
    return redirect(url_for("console.posters", survey=slug, batch=batch_id), 303)


def _batch_job(batch_id: str) -> Job:
    if not batch_id.startswith("posters-"):
        raise NotFound("没有这个批次")
    try:
        job = Job.fetch(batch_id, connection=redis_store.raw)
    except NoSuchJobError:
        raise NotFound("没有这个批次，或已过期") from None
    if job.meta.get("admin_id") != current_admin().id:
        raise Forbidden("这个批次不是您创建的")
    return job


def _batch_state(job: Job) -> dict:
    status = job.get_status()
    state = {
        "id": job.id,
        "status": status.value if status else "unknown",
        "done": job.meta.get("done", 0),
        "total": job.meta.get("total", 0),
        "format": job.meta.get("format"),
    }
    if state["status"] == "finished":
        state["download_url"] = url_for("console.download_batch", batch_id=job.id)
    if state["status"] == "failed":
        state["error"] = "生成失败，请稍后重试或联系管理员"
    return state


@bp.get("/posters/batches/<batch_id>")
def batch_status(batch_id: str):
    return jsonify(_batch_state(_batch_job(batch_id)))


@bp.get("/posters/batches/<batch_id>/download")
def download_batch(batch_id: str):
    job = _batch_job(batch_id)
    fmt = job.meta.get("format", "zip")
    path = batch_path(current_app.config["SETTINGS"], batch_id, fmt)
    if job.get_status() is None or job.get_status().value != "finished" or not path.exists():
        raise NotFound("文件还没有生成好")
    name = f"{job.meta.get('survey', 'posters')}-posters.{fmt}"
    return send_file(path.resolve(), as_attachment=True, download_name=name)
