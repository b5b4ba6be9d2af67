"""The pull API's endpoints: bearer-token check, parameter parsing, pagination, formats and ETags.

Every figure comes from app.tally.queries / app.tally.index; this module only translates HTTP.
"""

from __future__ import annotations

import hashlib
from typing import Any

from flask import Response, current_app, g, request, url_for

from app.accounts.tokens import verify_token
from app.api.blueprint import bp
from app.api.openapi import DEFAULT_LIMIT, ENDPOINT_PARAMETERS, MAX_LIMIT, openapi_document
from app.db import db
from app.errors import DomainError, Forbidden, Invalid
from app.org.departments import department_dict, list_departments
from app.org.surveys import get_survey, list_surveys, survey_dict
from app.redis_store import redis_store
from app.security.rate_limits import hit, limit_for
from app.tally.files import FORMATS, render
from app.tally.index import index_dict, satisfaction_index
from app.tally.indicators import INDICATOR_COLUMNS, indicator_dict, indicator_index, parse_indicators
from app.tally.report import department_scope, row_columns, tally_dict, tally_report

PUBLIC_ENDPOINTS = {"api.openapi"}


class Unauthorized(DomainError):
    status = 401
    code = "unauthorized"


@bp.before_request
def _authenticate() -> None:
    if request.endpoint in PUBLIC_ENDPOINTS:
        return
    scheme, _, secret = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise Unauthorized("missing bearer token: send Authorization: Bearer <token>")
    token = verify_token(db.session, secret.strip())
    if token is None:
        raise Unauthorized("unknown or revoked token")
    hit(redis_store.client, limit_for(current_app.config["SETTINGS"], "api"), str(token.id))
    g.api_token = token


@bp.after_request
def _headers(response: Response) -> Response:
    if response.status_code == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="wxsurvey"'
    response.headers.setdefault("Cache-Control", "no-cache")
    return response


def _params(endpoint: str) -> dict[str, str]:
    """The query parameters, refusing any the OpenAPI document does not list for this endpoint, any
    given twice (never silently the first) and any given empty (never silently the default)."""
    known = {p["name"] for p in ENDPOINT_PARAMETERS[endpoint]}
    unknown = sorted(set(request.args) - known)
    if unknown:
        raise Invalid(
            f"unknown parameter {unknown[0]!r}; accepted: {', '.join(sorted(known))}", field=unknown[0]
        )
    for name, values in sorted(request.args.lists()):
        if len(values) > 1:
            raise Invalid(f"parameter {name!r} is given {len(values)} times; give it once", field=name)
        if not values[0].strip():
            raise Invalid(f"parameter {name!r} is empty; leave it out for the default", field=name)
    for p in ENDPOINT_PARAMETERS[endpoint]:
        if p["required"] and not request.args.get(p["name"]):
            raise Invalid(f"parameter {p['name']!r} is required", field=p["name"])
    return {k: request.args.get(k, "") for k in known}


def _int(params: dict[str, str], name: str, default: int, low: int, high: int | None = None) -> int:
    raw = params.get(name) or ""
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise Invalid(f"{name}: {raw!r} is not an integer", field=name) from None
    if value < low or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high else f"at least {low}"
        raise Invalid(f"{name}: must be {bounds}", field=name)
    return value


def _format(params: dict[str, str]) -> str:
    fmt = params.get("format") or "json"
    if fmt not in FORMATS:
        raise Invalid(f"format: {fmt!r} is not one of {', '.join(FORMATS)}", field="format")
    return fmt


def _readable_survey(slug: str):
    survey = get_survey(db.session, slug)
    allowed = g.api_token.surveys or []
    if allowed and slug not in allowed:
        raise Forbidden(f"this token may not read survey {slug}")
    return survey


def _respond(endpoint: str, params: dict[str, str], document: dict[str, Any], columns: list[str]) -> Response:
    """One page of document["rows"] in the asked format, with an ETag over the exact bytes."""
    fmt = _format(params)
    limit = _int(params, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    offset = _int(params, "offset", 0, 0)
    rows = document["rows"]
    total = len(rows)
    following = offset + limit if offset + limit < total else None
    page = {**document, "rows": rows[offset : offset + limit], "total_rows": total, "offset": offset,
            "limit": limit, "next_offset": following}  # fmt: skip
    body = render(fmt, page, columns)
    etag = hashlib.sha256(body).hexdigest()[:32]
    response = Response(status=200, mimetype=FORMATS[fmt].split(";")[0])
    response.set_etag(etag)
    response.headers["X-Total-Count"] = str(total)
    if following is not None:
        args: dict[str, Any] = {**request.args.to_dict(), "offset": following, "limit": limit}
        response.headers["Link"] = f'<{url_for(f"api.{endpoint}", _external=True, **args)}>; rel="next"'
    if fmt != "json":
        response.headers["Content-Disposition"] = f'attachment; filename="{endpoint}.{fmt}"'
    if request.if_none_match.contains_weak(etag):  # RFC 9110: If-None-Match compares weakly
        response.status_code = 304
        return response
    response.set_data(body)
    if fmt == "csv":
        response.headers["Content-Type"] = FORMATS["csv"]
    return response


@bp.get("/tallies")
def tallies():
    params = _params("tallies")
    _format(params)  # a bad format is refused before any counting
    survey = _readable_survey(params["survey"])
    result = tally_report(
        db.session, survey.slug, department=params["department"] or None, group_by=params["group_by"],
        period=params["period"] or None, since=params["since"] or None, segment=params["segment"] or None,
        indicators=parse_indicators(params["indicator"]),
    )  # fmt: skip
    return _respond("tallies", params, tally_dict(result), row_columns(result))


INDEX_COLUMNS = [
    "department", "department_name", "category", "level", "responses", "answers", "index", "ci_low",
    "ci_high", "insufficient", "rank", "rank_low", "rank_label", "tied_with",
]  # fmt: skip


@bp.get("/index")
def index():
    params = _params("index")
    _format(params)
    survey = _readable_survey(params["survey"])
    min_sample = _int(params, "min_sample", current_app.config["SETTINGS"].survey.min_sample, 1)
    codes = department_scope(db.session, params["department"] or None)
    group_by = params["group_by"] or "department"
    if group_by not in ("department", "indicator"):
        raise Invalid(f"group_by: {group_by!r} is not department or indicator", field="group_by")
    wanted = parse_indicators(params["indicator"])
    if group_by == "indicator" or wanted:  # asking for indicator codes asks for the indicator rows
        found = indicator_index(db.session, survey, department_codes=codes, min_sample=min_sample,
                                indicators=wanted, period=params["period"] or None)  # fmt: skip
        return _respond("index", params, indicator_dict(survey, found, min_sample), INDICATOR_COLUMNS)
    rows = satisfaction_index(db.session, survey, department_codes=codes, min_sample=min_sample,
                              period=params["period"] or None)  # fmt: skip
    return _respond("index", params, index_dict(survey, rows, min_sample), INDEX_COLUMNS)


@bp.get("/departments")
def departments():
    params = _params("departments")
    choices: dict[str, bool | None] = {"": None, "true": True, "1": True, "false": False, "0": False}
    if params["active"].lower() not in choices:
        raise Invalid(f"active: {params['active']!r} is not true or false", field="active")
    active = choices[params["active"].lower()]
    rows = [
        department_dict(d) for d in list_departments(db.session, active=active if active != "bad" else None)
    ]
    columns = ["code", "name", "category", "level", "parent_code", "active"]
    return _respond("departments", params, {"rows": rows}, columns)


@bp.get("/surveys")
def surveys():
    params = _params("surveys")
    allowed = g.api_token.surveys or []
    rows = [survey_dict(s) for s in list_surveys(db.session) if not allowed or s.slug in allowed]
    columns = ["slug", "title", "status", "period_start", "period_end", "template"]
    return _respond("surveys", params, {"rows": rows}, columns)


@bp.get("/cases")
def cases():
    from app.cases import case_figures, figures_dict, parse_grouping

    params = _params("cases")
    _format(params)
    grouping = parse_grouping(params["group_by"] or None, params["period"] or None)
    since, until = _day(params, "opened_since"), _day(params, "opened_until")
    survey = _readable_survey(params["survey"])
    codes = department_scope(db.session, params["department"] or None)
    ids = None if codes is None else {d.id for d in list_departments(db.session) if d.code in codes}
    rows, total = case_figures(db.session, survey.id, department_ids=ids, since=since, until=until,
                               grouping=grouping)  # fmt: skip
    document = figures_dict(survey.slug, rows, total, grouping)
    return _respond("cases", params, document, list(grouping.columns))


def _day(params: dict[str, str], name: str):
    from datetime import date

    raw = params.get(name) or ""
    try:
        return date.fromisoformat(raw) if raw else None
    except ValueError:
        raise Invalid(f"{name}: {raw!r} is not a date (YYYY-MM-DD)", field=name) from None


@bp.get("/openapi.json")
def openapi():
    return openapi_document(current_app.config["SETTINGS"].app.base_url)
