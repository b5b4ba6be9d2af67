"""API strictness: a repeated, empty or junk parameter is a 400 that names it; a wrong method is a
405 with Allow; If-None-Match compares weakly."""

from __future__ import annotations

import pytest

from tests.api.test_api import survey, token  # noqa: F401  (fixtures)

BASE = "/api/v1"


def get(client, path, token, query: str, **headers):  # noqa: F811
    return client.get(f"{BASE}/{path}?{query}", headers={"Authorization": f"Bearer {token}", **headers})


@pytest.mark.parametrize(
    "path, query, param",
    [
        ("tallies", "survey=demo-departments&survey=other", "survey"),
        ("tallies", "survey=demo-departments&format=json&format=csv", "format"),
        ("tallies", "survey=demo-departments&format=", "format"),
        ("tallies", "survey=demo-departments&limit=", "limit"),
        ("tallies", "survey=demo-departments&limit=abc", "limit"),
        ("tallies", "survey=demo-departments&department=", "department"),
        ("tallies", "survey=demo-departments&group_by=", "group_by"),
        ("tallies", "survey=", "survey"),
        ("index", "survey=demo-departments&min_sample=many", "min_sample"),
        ("index", "survey=demo-departments&offset=-1", "offset"),
        ("departments", "active=junk", "active"),
        ("departments", "active=true&active=false", "active"),
        ("departments", "active=", "active"),
        ("surveys", "limit=1&limit=2", "limit"),
        ("surveys", "format=xml", "format"),
    ],
)
def test_bad_parameters_are_400s_naming_them(client, token, path, query, param):  # noqa: F811
    answer = get(client, path, token, query)
    assert answer.status_code == 400, answer.get_data(as_text=True)
    assert f"'{param}'" in answer.get_json()["message"] or answer.get_json()["message"].startswith(param)


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_wrong_method_is_405_with_allow(client, token, method):  # noqa: F811
    answer = client.open(f"{BASE}/tallies?survey=demo-departments", method=method,
                         headers={"Authorization": f"Bearer {token}"})  # fmt: skip
    assert answer.status_code == 405
    assert {"GET", "HEAD"} <= {m.strip() for m in answer.headers["Allow"].split(",")}
    assert answer.get_json()["status"] == 405


def test_405_on_pages_carries_allow_too(client):
    answer = client.delete("/console/login")
    assert answer.status_code == 405 and "POST" in answer.headers["Allow"]


def test_if_none_match_compares_weakly(client, token):  # noqa: F811
    first = get(client, "surveys", token, "format=json")
    etag = first.headers["ETag"].strip('"')
    for header in (f'W/"{etag}"', f'"other", W/"{etag}"', f'"{etag}"', "*"):
        answer = get(client, "surveys", token, "format=json", **{"If-None-Match": header})
        assert answer.status_code == 304, header
    assert get(client, "surveys", token, "format=json", **{"If-None-Match": 'W/"other"'}).status_code == 200
