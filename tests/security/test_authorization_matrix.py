"""The authorization matrix: every console route and API endpoint x every method x anonymous,
viewer, scoped admin (inside and outside its scope) and city admin, against the table below.
Built from the app's URL map: a route without a row fails, so does a row without a route.
Runs on SQLite and PostgreSQL (the `app` fixture's backends).

Outcomes: login (sent to the sign-in page), unauth (401), deny (403), missing (404, e.g. a
poster batch that is not finished), ok (anything else below 500: the request passed the
checks; a 400 for an empty form counts, as does the 503 of a poster without its font).
For the API the roles are tokens: anonymous = none, viewer = a revoked token, scoped = a token
limited to the survey (in) or to another survey (out), city = an unrestricted token.
"""

from __future__ import annotations

import re

import pytest

from app import accounts
from app.org.departments import get_department
from app.org.surveys import get_survey
from app.queues import enqueue
from tests.factories import add_response

PASSWORD = "correct-horse-battery"
ROLES = ("anonymous", "viewer", "scoped_out", "scoped_in", "city")
SURVEY = "demo-counties"


def row(anonymous, viewer, scoped_out, scoped_in, city):
    return dict(zip(ROLES, (anonymous, viewer, scoped_out, scoped_in, city), strict=True))


ALL_OK = row("ok", "ok", "ok", "ok", "ok")
READ = row("login", "ok", "ok", "ok", "ok")  # every admin reads it; lists are filtered to the scope
SCOPED_READ = row("login", "ok", "deny", "ok", "ok")  # an object (or filter) outside the scope is refused
SCOPED_WRITE = row("login", "deny", "deny", "ok", "ok")
CITY_ONLY = row("login", "deny", "deny", "deny", "ok")
OWN_BATCH = row("login", "deny", "deny", "deny", "ok")  # batches are their creator's (the city admin's)
API = row("unauth", "unauth", "ok", "ok", "ok")  # lists: a limited token sees its surveys only
API_SURVEY = row("unauth", "unauth", "deny", "ok", "ok")

EXPECTED = {
    ("console.login", "GET"): ALL_OK,
    ("console.login", "POST"): row("deny", "deny", "deny", "deny", "deny"),  # a wrong password, from anyone
    ("console.logout", "POST"): row("login", "login", "login", "login", "login"),
    ("console.index", "GET"): row("login", "ok", "ok", "ok", "ok"),
    ("console.surveys", "GET"): READ,
    ("console.create_survey", "POST"): CITY_ONLY,
    ("console.survey", "GET"): READ,
    ("console.survey_status", "POST"): CITY_ONLY,
    ("console.survey_preview", "GET"): READ,
    ("console.edit_questions", "GET"): CITY_ONLY,
    ("console.edit_questions", "POST"): CITY_ONLY,
    ("console.departments", "GET"): READ,
    ("console.create_department", "POST"): SCOPED_WRITE,
    ("console.department", "GET"): SCOPED_READ,
    ("console.department", "POST"): SCOPED_WRITE,
    ("console.department_active", "POST"): SCOPED_WRITE,
    ("console.import_departments", "GET"): CITY_ONLY,
    ("console.import_departments", "POST"): CITY_ONLY,
    ("console.confirm_import", "POST"): CITY_ONLY,
    ("console.posters", "GET"): READ,
    ("console.department_poster", "GET"): SCOPED_READ,
    ("console.start_batch", "POST"): row("login", "deny", "ok", "ok", "ok"),
    ("console.batch_status", "GET"): OWN_BATCH,
    ("console.download_batch", "GET"): row("login", "deny", "deny", "deny", "missing"),
    ("console.results", "GET"): SCOPED_READ,
    ("console.download_results", "GET"): SCOPED_READ,
    ("console.review", "GET"): READ,
    ("console.decide", "POST"): SCOPED_WRITE,
    ("console.audit_log", "GET"): CITY_ONLY,
    ("api.openapi", "GET"): ALL_OK,
    ("api.surveys", "GET"): API,
    ("api.departments", "GET"): API,
    ("api.tallies", "GET"): API_SURVEY,
    ("api.index", "GET"): API_SURVEY,
}
# Requests that put the out-of-scope object in the query rather than the path.
OUT_OF_SCOPE_QUERY = {
    "console.results": {"survey": SURVEY, "county": "C02"},
    "console.download_results": {"survey": SURVEY, "county": "C02"},
    "console.create_department": {},
    "api.tallies": {"survey": SURVEY},
    "api.index": {"survey": SURVEY},
}
IN_SCOPE_QUERY = {
    "console.results": {"survey": SURVEY, "county": "C01"},
    "console.download_results": {"survey": SURVEY, "county": "C01"},
    "api.tallies": {"survey": SURVEY},
    "api.index": {"survey": SURVEY},
}
# What a form sends: in scope, a township of C01; out of it, one of C02.
FORM_IN = {"code": "C01T9", "name": "新街道", "category": "县区", "level": "township", "parent_code": "C01",
           "active": "0", "decision": "reject", "reason": "matrix", "format": "zip"}  # fmt: skip
FORM_OUT = {**FORM_IN, "parent_code": "C02"}


def covered_rules(app):
    return [rule for rule in app.url_map.iter_rules() if rule.endpoint.startswith(("console.", "api."))]


def test_every_route_has_a_row_and_every_row_a_route(app):
    routes = {(rule.endpoint, m) for rule in covered_rules(app) for m in rule.methods - {"HEAD", "OPTIONS"}}
    assert sorted(routes - set(EXPECTED)) == [], "new routes need a row in EXPECTED"
    assert sorted(set(EXPECTED) - routes) == [], "rows for routes that no longer exist"


def classify(response) -> str:
    if response.status_code in (301, 302, 303) and "/console/login" in response.headers.get("Location", ""):
        return "login"
    return {401: "unauth", 403: "deny", 404: "missing"}.get(
        response.status_code, "ok" if response.status_code < 500 or response.status_code == 503 else "error"
    )


@pytest.fixture
def world(app, session, demo, redis_client):
    """Admins of every role, tokens, a response in and out of the scoped admin's county, a batch."""
    admins = {
        "viewer": accounts.create_admin(session, username="look", password=PASSWORD, role="viewer"),
        "scoped": accounts.create_admin(
            session, username="east", password=PASSWORD, role="scoped_admin", scope_code="C01"
        ),  # fmt: skip
        "city": accounts.create_admin(session, username="city", password=PASSWORD, role="city_admin"),
    }
    survey = get_survey(session, SURVEY)
    answers = {q.key: q.options[0].key for q in survey.questions if q.kind == "single"}
    inside = add_response(session, survey, get_department(session, "C01T1"), answers, status="quarantined")
    outside = add_response(session, survey, get_department(session, "C02T1"), answers, status="quarantined")
    tokens = {
        "viewer": accounts.create_token(session, "revoked").secret,
        "scoped_in": accounts.create_token(session, "inside", [SURVEY]).secret,
        "scoped_out": accounts.create_token(session, "outside", ["demo-departments"]).secret,
        "city": accounts.create_token(session, "city").secret,
    }
    accounts.revoke_token(session, "revoked")
    session.commit()
    batch = "posters-matrix"
    enqueue("default", "app.jobs.posters.build_poster_batch", batch, SURVEY, "zip", None, job_id=batch,
            meta={"admin_id": admins["city"].id, "format": "zip", "survey": SURVEY})  # fmt: skip
    values_in = {
        "code": "C01T1",
        "slug": SURVEY,
        "response_id": inside.id,
        "batch_id": batch,
        "action": "close",
    }
    values_out = {**values_in, "code": "C02T1", "response_id": outside.id}
    return {"tokens": tokens, "in": values_in, "out": values_out}


def csrf_of(client) -> str:
    html = client.get("/console/login").get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def signed_in(app, username: str | None):
    client = app.test_client()
    if username:
        token = csrf_of(client)
        answer = client.post("/console/login", data={"username": username, "password": PASSWORD,
                                                     "csrf_token": token})  # fmt: skip
        assert answer.status_code == 302, f"{username} could not sign in"
    return client


def test_the_matrix(app, world):
    users = {"anonymous": None, "viewer": "look", "scoped_out": "east", "scoped_in": "east", "city": "city"}
    clients = {role: signed_in(app, users[role]) for role in ROLES}
    seen, wrong = {}, []
    for rule in sorted(covered_rules(app), key=lambda r: (r.endpoint, r.rule)):
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            for role in ROLES:
                outside = role == "scoped_out"
                values = world["out" if outside else "in"]
                path = rule.build({k: v for k, v in values.items() if k in rule.arguments})[1]
                query = (OUT_OF_SCOPE_QUERY if outside else IN_SCOPE_QUERY).get(rule.endpoint, {})
                client = clients[role]
                headers = {}
                if rule.endpoint.startswith("api."):
                    client = app.test_client()
                    if role in world["tokens"]:
                        headers["Authorization"] = f"Bearer {world['tokens'][role]}"
                if method == "GET":
                    answer = client.get(path, query_string=query, headers=headers)
                else:
                    form = {**(FORM_OUT if outside else FORM_IN), "csrf_token": csrf_of(client)}
                    if rule.endpoint == "console.login":
                        form.update(username="nobody-here", password="x")
                    answer = client.open(path, method=method, data=form, query_string=query, headers=headers)
                    if rule.endpoint == "console.logout" and users[role]:  # sign in again for what follows
                        clients[role] = signed_in(app, users[role])
                got = classify(answer)
                seen[(rule.endpoint, method, role)] = got
                expected = EXPECTED.get((rule.endpoint, method), {}).get(role)
                if got != expected:
                    wrong.append(
                        f"{method} {path} as {role}: {got} ({answer.status_code}), expected {expected}"
                    )
    assert wrong == [], "\n".join(wrong)
