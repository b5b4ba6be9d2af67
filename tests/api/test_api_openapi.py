"""The OpenAPI document is served without a token and matches what the endpoints accept."""

from __future__ import annotations

import pytest

from app.accounts.tokens import create_token
from app.api.openapi import ENDPOINT_PARAMETERS

SAMPLE = {
    "survey": "demo-departments", "department": "C01", "group_by": "region,period", "period": "month:2024",
    "since": "2024-01-01T00:00:00Z", "segment": "respondent_type", "format": "csv", "limit": "5",
    "offset": "0", "min_sample": "3", "active": "true", "indicator": "B01", "opened_since": "2024-01-01",
    "opened_until": "2024-12-31",
}  # fmt: skip
# Where an endpoint reads a parameter its own way: the index groups by department or indicator,
# the follow-up figures by department and/or period.
SAMPLE_FOR = {"tallies": {"group_by": "region,indicator,period"}, "index": {"group_by": "indicator"},
              "cases": {"group_by": "department,period"}}  # fmt: skip


@pytest.fixture
def token(session, demo):
    secret = create_token(session, "doc-check").secret
    session.commit()
    return secret


def test_document_lists_every_api_route(app, client):
    doc = client.get("/api/v1/openapi.json").json
    assert doc["openapi"].startswith("3.")
    documented = {f"/api/v1{path}" for path in doc["paths"]}
    routes = {
        r.rule
        for r in app.url_map.iter_rules()
        if r.endpoint.startswith("api.") and r.endpoint != "api.openapi"
    }
    assert documented == routes
    for path, item in doc["paths"].items():
        assert {p["name"] for p in item["get"]["parameters"]} == {
            p["name"] for p in ENDPOINT_PARAMETERS[path.strip("/")]
        }


@pytest.mark.parametrize("endpoint", sorted(ENDPOINT_PARAMETERS))
def test_every_documented_parameter_is_accepted_and_nothing_else(client, token, endpoint):
    headers = {"Authorization": f"Bearer {token}"}
    sample = {**SAMPLE, **SAMPLE_FOR.get(endpoint, {})}
    params = {p["name"]: sample[p["name"]] for p in ENDPOINT_PARAMETERS[endpoint]}
    response = client.get(f"/api/v1/{endpoint}", query_string=params, headers=headers)
    assert response.status_code == 200, response.data[:300]
    refused = client.get(f"/api/v1/{endpoint}", query_string={**params, "extra": "1"}, headers=headers)
    assert refused.status_code == 400 and "extra" in refused.json["message"]
