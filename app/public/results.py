# The public results of a survey period (GET /results/<survey>) and its embeddable PNG chart:
# published by the survey's admin, no personal data, cached in Redis for a minute, with an ETag.
from __future__ import annotations

import json

from flask import Response, current_app, render_template, request
from redis.exceptions import RedisError

from app.cases.chart import results_chart_png
from app.cases.publication import public_results, published_survey, results_etag
from app.db import db
from app.models.org import LEVEL_NAMES
from app.public.blueprint import bp
from app.redis_store import redis_store

CACHE_SECONDS = 60


def cache_key(slug: str, kind: str) -> str:
    return f"wx:results:{slug}:{kind}"


def forget_results(slug: str) -> None:
    """Drop the cached document (on publish and withdraw): page and chart follow at once."""
    try:
        redis_store.client.delete(cache_key(slug, "doc"))
    except RedisError:
        pass


def _document(slug: str) -> dict:
    try:
        cached = redis_store.client.get(cache_key(slug, "doc"))
    except RedisError:
        cached = None
    if cached:
        return json.loads(cached)
    survey = published_survey(db.session, slug)
    document = public_results(db.session, survey, current_app.config["SETTINGS"].survey.min_sample)
    try:
        redis_store.client.set(
            cache_key(slug, "doc"), json.dumps(document, ensure_ascii=False), ex=CACHE_SECONDS
        )
    except RedisError:
        pass
    return document


def _cached_response(body: bytes, mimetype: str, etag: str) -> Response:
    response = Response(body, mimetype=mimetype)
    response.set_etag(etag)
    response.headers["Cache-Control"] = f"public, max-age={CACHE_SECONDS}"
    if etag in request.if_none_match:
        response.status_code = 304
        response.set_data(b"")
    return response


@bp.get("/results/<slug>")
def public_results_page(slug: str):
    document = _document(slug)
    etag = results_etag(document)
    if etag in request.if_none_match:  # not even rendered
        return _cached_response(b"", "text/html", etag)
    html = render_template("public/results.html", doc=document, level_names=LEVEL_NAMES)
    return _cached_response(html.encode(), "text/html", etag)


@bp.get("/results/<slug>/chart.png")
def public_results_chart(slug: str):
    document = _document(slug)
    etag = "png-" + results_etag(document)
    if etag in request.if_none_match:
        return _cached_response(b"", "image/png", etag)
    png = results_chart_png(document, current_app.config["SETTINGS"].qr.font_path)
    return _cached_response(png, "image/png", etag)
