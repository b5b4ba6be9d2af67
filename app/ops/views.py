"""Operators' endpoints: /healthz (the process answers) and /readyz (its dependencies do)."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify

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
