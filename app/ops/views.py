"""Operators' endpoints: /healthz (the process answers), /readyz (its dependencies do) and
/metrics (Prometheus, with app.metrics_token or from an internal address)."""

from __future__ import annotations

from flask import Blueprint, Response, abort, current_app, jsonify, request

from app.db import db
from app.ops.health import readiness
from app.redis_store import redis_store

bp = Blueprint("ops", __name__)


@bp.get("/healthz")
def healthz():
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz():
    settings = current_app.config["SETTINGS"]
    report, status = readiness(db.session, redis_store.client, redis_store.raw, settings)
    return jsonify(report), status


@bp.get("/metrics")
def metrics():
    from app.ops.prometheus import allowed, exposition

    if not allowed(current_app.config["SETTINGS"], request.headers, request.remote_addr):
        abort(404)  # no hint to the outside that something is here
    shards = current_app.config["SETTINGS"].survey.intake_shards
    body, content_type = exposition(db.session, redis_store.client, redis_store.raw, shards)
    return Response(body, content_type=content_type)
