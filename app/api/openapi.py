"""The OpenAPI 3.1 document of the pull API, and the query parameters each endpoint accepts.

The views read ENDPOINT_PARAMETERS to refuse unknown parameters, so the document and the
behaviour cannot drift apart (tests/test_api_openapi.py checks both directions).
"""

from __future__ import annotations

from typing import Any

from app.tally.files import FORMATS
from app.tally.params import GROUP_DIMENSIONS, PERIOD_BUCKETS
from survey_templates.schema import INDICATOR_RE

MAX_LIMIT = 10_000
DEFAULT_LIMIT = 1_000


def _param(name: str, description: str, schema: dict[str, Any], required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "description": description, "schema": schema}


FORMAT = _param(
    "format", "json (default), csv (UTF-8 with BOM) or xlsx; every format holds the same rows",
    {"type": "string", "enum": list(FORMATS), "default": "json"},
)  # fmt: skip
LIMIT = _param(
    "limit", f"rows per page (1..{MAX_LIMIT})",
    {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
)  # fmt: skip
OFFSET = _param(
    "offset", "rows to skip; follow `next_offset` (JSON) or the Link rel=next header",
    {"type": "integer", "minimum": 0, "default": 0},
)  # fmt: skip
SURVEY = _param("survey", "survey slug (see /surveys)", {"type": "string", "minLength": 1}, required=True)
DEPARTMENT = _param(
    "department", "a department code: that department and everything under it (a county with its townships)",
    {"type": "string", "minLength": 1},
)  # fmt: skip
# The period grammar as a pattern. It leaves out what the server also takes but a pattern cannot
# tell from an impossible date (days 29-31, week 53, A..B ranges): those are in the description.
_YEAR = r"(19|20)[0-9]{2}"
_RANGE = rf"{_YEAR}(-Q[1-4]|-W(0[1-9]|[1-4][0-9]|5[0-2])|-(0[1-9]|1[0-2])(-(0[1-9]|1[0-9]|2[0-8]))?)?"
_BUCKET = "(" + "|".join(PERIOD_BUCKETS) + ")"
PERIOD_PATTERN = rf"^({_BUCKET}|({_BUCKET}:)?{_RANGE})$"
_DIMENSION = "(" + "|".join(GROUP_DIMENSIONS) + ")"
GROUP_BY_PATTERN = rf"^{_DIMENSION}(,{_DIMENSION})*$"
CASE_GROUP_BY_PATTERN = r"^(department|period)(,(department|period))?$"
PERIOD = _param(
    "period",
    "`BUCKET`, `RANGE` or `BUCKET:RANGE`. BUCKET groups rows by " + ", ".join(PERIOD_BUCKETS)
    + " (adds the `period` dimension; `survey` = the survey's whole period; weeks are ISO weeks "
    "labelled 2024-W19). RANGE limits the days (city time: app.timezone, Asia/Shanghai by default): "
    "2024, 2024-Q2, 2024-05, 2024-W19, 2024-05-03, or A..B between two of those, inclusive, "
    "either side may be empty. "
    "Grouping by period without a bucket uses month. Examples: `month`, `2024-Q2`, `week:2024-05`.",
    {"type": "string", "pattern": PERIOD_PATTERN},
)  # fmt: skip

_CODE = INDICATOR_RE.pattern
INDICATORS_PATTERN = rf"^{_CODE}(,{_CODE})*$"
INDICATOR = _param(
    "indicator",
    "comma-separated indicator codes: only these; brings the `indicator` dimension (tallies) or "
    "the per-indicator rows (index)",
    {"type": "string", "pattern": INDICATORS_PATTERN, "example": "B01,B02"},
)

ENDPOINT_PARAMETERS: dict[str, list[dict[str, Any]]] = {
    "tallies": [
        SURVEY,
        DEPARTMENT,
        _param(
            "group_by",
            "comma-separated dimensions, in the order of the row keys: "
            + ", ".join(GROUP_DIMENSIONS)
            + ". `question`/`option` count answers instead of responses (`option` brings `question`); "
            "`region` is a county with its townships, city departments form region CITY; `segment` is "
            "the respondent type unless `segment=` names another single-choice question; `indicator` "
            "groups answers by the indicator code of their question (a matrix's rows each have one; "
            "questions without a code are left out).",
            {"type": "string", "pattern": GROUP_BY_PATTERN, "example": "department,question,option"},
        ),  # fmt: skip
        INDICATOR,
        PERIOD,
        _param(
            "since",
            "ISO 8601 time: only the groups whose counts changed at or after it (counts stay whole, "
            "not deltas). Responses, quarantined and the totals are not affected.",
            {"type": "string", "format": "date-time"},
        ),
        _param(
            "segment",
            "question key used as the `segment` dimension; default the survey's respondent-type "
            "question (pre-aggregated); any other single-choice question is counted from raw answers "
            "(a key the survey does not have: 404)",
            {"type": "string", "minLength": 1},
        ),
        FORMAT,
        LIMIT,
        OFFSET,
    ],
    "index": [
        SURVEY,
        DEPARTMENT,
        _param(
            "group_by",
            "`department` (default): one satisfaction index per department; `indicator`: one row per "
            "department and indicator code, with the index of scored questions and, for 0-10 scales, "
            "the mean with its 95% interval and the net score (share of 9-10 minus share of 0-6)",
            {"type": "string", "enum": ["department", "indicator"]},
        ),
        INDICATOR,
        PERIOD,
        _param(
            "min_sample",
            "responses below which a department is marked insufficient (default: survey.min_sample)",
            {"type": "integer", "minimum": 1},
        ),
        FORMAT,
        LIMIT,
        OFFSET,
    ],
    "departments": [
        _param("active", "true or false: only active or inactive departments", {"type": "boolean"}),
        FORMAT,
        LIMIT,
        OFFSET,
    ],
    "surveys": [FORMAT, LIMIT, OFFSET],
    "cases": [
        SURVEY,
        DEPARTMENT,
        _param(
            "group_by",
            "`department` (default), `period` or both, comma-separated in the order of the row keys: "
            "figures per department, per period the cases were opened in (the bucket of `period`, "
            "month by default), or per department and period",
            {"type": "string", "pattern": CASE_GROUP_BY_PATTERN, "example": "department,period"},
        ),
        _param(
            "period",
            "as for /tallies: `BUCKET`, `RANGE` or `BUCKET:RANGE`. BUCKET groups the figures by the "
            "city-time day, ISO week, month, quarter or year the cases were opened in, or `survey` for "
            "the survey's whole period (adds the `period` dimension); RANGE keeps the cases opened on "
            "those days. Examples: `month`, `week:2024-05`, `2024-Q2`.",
            {"type": "string", "pattern": PERIOD_PATTERN},
        ),
        _param(
            "opened_since",
            "cases opened on or after this day (city time)",
            {"type": "string", "format": "date"},
        ),
        _param(
            "opened_until",
            "cases opened on or before this day (city time)",
            {"type": "string", "format": "date"},
        ),
        FORMAT,
        LIMIT,
        OFFSET,
    ],
}

_PAGE_PROPS = {
    "total_rows": {"type": "integer"},
    "offset": {"type": "integer"},
    "limit": {"type": "integer"},
    "next_offset": {"type": ["integer", "null"]},
}
_ERROR = {
    "description": "error",
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {
                    "error": {"type": "string"},
                    "message": {"type": "string"},
                    "status": {"type": "integer"},
                },
            }
        }
    },
}
_SCHEMAS: dict[str, dict[str, Any]] = {
    "tallies": {
        "type": "object",
        "required": ["survey", "period", "group_by", "responses", "quarantined", "rows"],
        "properties": {
            "survey": {"type": "string"},
            "period": {
                "type": "object",
                "properties": {
                    "bucket": {"type": ["string", "null"]},
                    "start": {"type": ["string", "null"], "format": "date"},
                    "end": {"type": ["string", "null"], "format": "date"},
                },
            },
            "group_by": {"type": "array", "items": {"type": "string", "enum": list(GROUP_DIMENSIONS)}},
            "segment_question": {"type": ["string", "null"]},
            "responses": {"type": "integer", "description": "counted responses in scope"},
            "quarantined": {"type": "integer", "description": "quarantined responses in scope, not counted"},
            "rows": {
                "type": "array",
                "items": {
                    "type": "object",
                    "description": "the group's keys (department, department_name, category, level, region, "
                    "region_name, question, question_title, option, option_label, period, segment, "
                    "segment_label, indicator, channel, as grouped) plus count (official) and quarantined",
                    "properties": {"count": {"type": "integer"}, "quarantined": {"type": "integer"}},
                },
            },
            **_PAGE_PROPS,
        },
    },
    "index": {
        "type": "object",
        "properties": {
            "survey": {"type": "string"},
            "min_sample": {"type": "integer"},
            "rows": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "department": {"type": "string"},
                        "department_name": {"type": "string"},
                        "category": {"type": "string"},
                        "level": {"type": "string"},
                        "responses": {"type": "integer"},
                        "answers": {"type": "integer"},
                        "index": {"type": ["number", "null"], "description": "mean score, 0..100"},
                        "ci_low": {"type": ["number", "null"]},
                        "ci_high": {"type": ["number", "null"]},
                        "insufficient": {"type": "boolean"},
                        "rank": {"type": ["integer", "null"]},
                        "rank_low": {"type": ["integer", "null"]},
                        "rank_label": {"type": "string", "description": "3, or 2-5 when tied"},
                        "tied_with": {"type": "array", "items": {"type": "string"}},
                        "indicator": {"type": "string", "description": "group_by=indicator rows"},
                        "question": {"type": "string"},
                        "question_title": {"type": "string"},
                        "kind": {"type": "string"},
                        "mean": {"type": ["number", "null"], "description": "0-10 scale: mean, 0..10"},
                        "mean_ci_low": {"type": ["number", "null"]},
                        "mean_ci_high": {"type": ["number", "null"]},
                        "net_score": {
                            "type": ["number", "null"],
                            "description": "0-10 scale: % of 9-10 minus % of 0-6",
                        },
                    },
                },
            },
            **_PAGE_PROPS,
        },
    },
    "departments": {
        "type": "object",
        "properties": {"rows": {"type": "array", "items": {"type": "object"}}, **_PAGE_PROPS},
    },
    "surveys": {
        "type": "object",
        "properties": {"rows": {"type": "array", "items": {"type": "object"}}, **_PAGE_PROPS},
    },
}
_SCHEMAS["cases"] = {
    "type": "object",
    "properties": {
        "survey": {"type": "string"},
        "group_by": {"type": "array", "items": {"type": "string", "enum": ["department", "period"]}},
        "period": {
            "type": "object",
            "properties": {
                "bucket": {"type": ["string", "null"]},
                "start": {"type": ["string", "null"], "format": "date"},
                "end": {"type": ["string", "null"], "format": "date"},
            },
        },
        "total": {"type": "object", "description": "the same figures over every case in scope"},
        "rows": {
            "type": "array",
            "items": {
                "type": "object",
                "description": "the group's keys (department, department_name, category, level and/or "
                "period, as grouped) and: opened, answered, answered_on_time, overdue (answered "
                "late or open past the deadline), escalated, rerated, rerating_satisfied (满意 + 基本满意), "
                "rerating_satisfaction (percent or null), median_days (opening to answer, or null)",
            },
        },
        **_PAGE_PROPS,
    },
}
_SUMMARIES = {
    "tallies": "Categorized tallies (分类统计) of one survey",
    "index": "Satisfaction index per department with 95% intervals and tie-aware ranks per category",
    "departments": "The org chart",
    "surveys": "The surveys this token may read",
    "cases": "差评 follow-up per department and/or period: cases, on time, overdue, escalated, re-rating, "
    "median days",
}


def openapi_document(base_url: str) -> dict[str, Any]:
    paths = {}
    for name, parameters in ENDPOINT_PARAMETERS.items():
        paths[f"/{name}"] = {
            "get": {
                "summary": _SUMMARIES[name],
                "operationId": name,
                "parameters": parameters,
                "responses": {
                    "200": {
                        "description": "the rows (a page of them); ETag set",
                        "headers": {"ETag": {"schema": {"type": "string"}}},
                        "content": {
                            "application/json": {"schema": _SCHEMAS[name]},
                            FORMATS["csv"].split(";")[0]: {"schema": {"type": "string"}},
                            FORMATS["xlsx"]: {"schema": {"type": "string", "format": "binary"}},
                        },
                    },
                    "304": {"description": "not modified (If-None-Match matched the ETag)"},
                    "400": _ERROR,
                    "401": _ERROR,
                    "403": _ERROR,
                    "404": _ERROR,
                    "429": {
                        **_ERROR,
                        "description": "rate limit of the token (limits.api_per_token); "
                        "retry after Retry-After seconds",
                        "headers": {"Retry-After": {"schema": {"type": "integer"}}},
                    },
                },
            }
        }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "wxsurvey pull API",
            "version": "1",
            "description": "Read-only tallies for the performance-evaluation platform. Authenticate with "
            "`Authorization: Bearer <token>` (`wxsurvey token create NAME [--survey SLUG]`). "
            "Unknown, repeated or empty query parameters are refused with 400 naming the parameter; "
            "If-None-Match compares weakly; past the token's rate limit: 429 with Retry-After.",
        },
        "servers": [{"url": f"{base_url}/api/v1"}],
        "security": [{"bearer": []}],
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "paths": paths,
    }
