# GET /cards/<code>.png: the picture of a department's scan card (app.org.cards), with caching
# headers: a request carrying the current version may be kept for a year; others for five minutes.
from __future__ import annotations

from flask import Response, current_app, request

from app.db import db
from app.org.cards import department_card
from app.public.blueprint import bp
from app.redis_store import redis_store

FOREVER, BRIEFLY = "public, max-age=31536000, immutable", "public, max-age=300"


@bp.get("/cards/<code>.png")
def department_card_png(code: str):
    settings = current_app.config["SETTINGS"]
    png, version = department_card(db.session, redis_store.raw, settings, code)
    response = Response(png, mimetype="image/png")
    response.set_etag(version)
    current = request.args.get("v") == version
    response.headers["Cache-Control"] = (
        "public, max-age=31536000, immutable" if current else "public, max-age=300"
    )
    return response.make_conditional(request)
