"""The pull API: bearer tokens, survey scoping, parameters, formats, pagination, ETags and since."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pytest
from openpyxl import load_workbook

from app.accounts.tokens import create_token, revoke_token
from app.org.departments import get_department
from app.tally.index import satisfaction_index
from tests.factories import add_response, hand_made_responses


@pytest.fixture
def survey(session, demo):
    return hand_made_responses(session)


@pytest.fixture
def token(session, survey):
    issued = create_token(session, "platform")
    session.commit()
    return issued.secret


def get(client, path, token=None, **params):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.get(f"/api/v1/{path}", query_string=params, headers=headers)


def test_tokens_no_token_unknown_revoked_and_other_survey(client, session, survey, token):
    missing = get(client, "tallies", survey="demo-departments")
    assert missing.status_code == 401 and missing.json["status"] == 401
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    assert get(client, "tallies", "wxs_not-a-token", survey="demo-departments").status_code == 401
    assert get(client, "tallies", token, survey="demo-departments").status_code == 200

    other = create_token(session, "counties-only", ["demo-counties"]).secret
    revoke_token(session, "platform")
    session.commit()
    assert get(client, "tallies", token, survey="demo-departments").status_code == 401
    refused = get(client, "tallies", other, survey="demo-departments")
    assert refused.status_code == 403 and "demo-departments" in refused.json["message"]
    assert get(client, "index", other, survey="demo-departments").status_code == 403
    assert get(client, "tallies", other, survey="demo-counties").status_code == 200
    assert [s["slug"] for s in get(client, "surveys", other).json["rows"]] == ["demo-counties"]


@pytest.mark.parametrize(
    "params, status, fragment",
    [
        ({"survey": "demo-departments", "group_by": "department,colour"}, 400, "unknown dimension 'colour'"),
        ({"survey": "demo-departments", "groupby": "department"}, 400, "unknown parameter 'groupby'"),
        ({"group_by": "department"}, 400, "'survey' is required"),
        ({"survey": "demo-departments", "period": "2024-13"}, 400, "period"),
        ({"survey": "demo-departments", "since": "yesterday"}, 400, "since"),
        ({"survey": "demo-departments", "limit": "0"}, 400, "limit"),
        ({"survey": "demo-departments", "offset": "x"}, 400, "offset"),
        ({"survey": "demo-departments", "format": "pdf"}, 400, "format"),
        ({"survey": "demo-departments", "segment": "suggestion"}, 400, "single-choice"),
        ({"survey": "nope"}, 404, "nope"),
        ({"survey": "demo-departments", "department": "ZZ9"}, 404, "ZZ9"),
    ],
)
def test_bad_parameters_are_json_4xx(client, token, params, status, fragment):
    response = get(client, "tallies", token, **params)
    assert response.status_code == status
    assert response.is_json and fragment in response.json["message"]


def test_tallies_json_by_hand(client, token):
    doc = get(client, "tallies", token, survey="demo-departments", group_by="category").json
    assert (doc["survey"], doc["responses"], doc["quarantined"], doc["group_by"]) == (
        "demo-departments", 5, 1, ["category"],
    )  # fmt: skip
    assert {r["category"]: r["count"] for r in doc["rows"]} == {"政府部门": 4, "垂直管理部门": 1}
    county = get(client, "tallies", token, survey="demo-departments", department="D08").json
    assert county["responses"] == 3


def test_csv_and_xlsx_hold_the_same_numbers_as_json(client, token):
    params = {"survey": "demo-departments", "group_by": "department,question,option", "period": "quarter"}
    doc = get(client, "tallies", token, **params).json
    expected = {
        (r["department"], r["question"], r["option"] or "", r["period"]): r["count"] for r in doc["rows"]
    }
    assert len(expected) > 5

    response = get(client, "tallies", token, format="csv", **params)
    assert response.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.data.decode("utf-8-sig"))))
    assert {
        (r["department"], r["question"], r["option"], r["period"]): int(r["count"]) for r in rows
    } == expected

    response = get(client, "tallies", token, format="xlsx", **params)
    header, *body = (
        load_workbook(io.BytesIO(response.data), read_only=True).worksheets[0].iter_rows(values_only=True)
    )
    col = {name: i for i, name in enumerate(header)}
    keys = [col[k] for k in ("department", "question", "option", "period")]
    got = {tuple(r[i] or "" for i in keys): r[col["count"]] for r in body}
    assert got == expected


def test_etag_round_trip(client, session, survey, token):
    first = get(client, "tallies", token, survey="demo-departments", group_by="department")
    etag = first.headers["ETag"]
    again = client.get(
        "/api/v1/tallies",
        query_string={"survey": "demo-departments", "group_by": "department"},
        headers={"Authorization": f"Bearer {token}", "If-None-Match": etag},
    )
    assert again.status_code == 304 and again.data == b""
    add_response(session, survey, get_department(session, "D18"), {"overall": "basic"})
    session.commit()
    changed = client.get(
        "/api/v1/tallies",
        query_string={"survey": "demo-departments", "group_by": "department"},
        headers={"Authorization": f"Bearer {token}", "If-None-Match": etag},
    )
    assert changed.status_code == 200 and changed.headers["ETag"] != etag


def test_pagination_walks_every_row_once(client, token):
    params = {"survey": "demo-departments", "group_by": "department,question,option"}
    whole = get(client, "tallies", token, **params).json["rows"]
    seen, offset, pages = [], 0, 0
    while offset is not None:
        page = get(client, "tallies", token, limit=4, offset=offset, **params)
        assert page.headers["X-Total-Count"] == str(len(whole))
        assert ("Link" in page.headers) == (page.json["next_offset"] is not None)
        seen += page.json["rows"]
        offset, pages = page.json["next_offset"], pages + 1
    assert seen == whole and pages == -(-len(whole) // 4)


def test_since_gives_only_changed_groups(client, session, survey, token):
    mark = datetime.now(UTC).isoformat()
    assert (
        get(client, "tallies", token, survey="demo-departments", group_by="department", since=mark).json[
            "rows"
        ]
        == []
    )
    add_response(session, survey, get_department(session, "D08"), {"overall": "basic"})
    session.commit()
    doc = get(client, "tallies", token, survey="demo-departments", group_by="department", since=mark).json
    assert [(r["department"], r["count"]) for r in doc["rows"]] == [("D08", 4)]


def test_index_matches_the_service(client, session, survey, token):
    doc = get(client, "index", token, survey="demo-departments", min_sample=1).json
    expected = satisfaction_index(session, survey, min_sample=1)
    assert doc["rows"] == [r.as_dict() for r in expected]
    d08 = next(r for r in doc["rows"] if r["department"] == "D08")
    assert (d08["index"], d08["rank_label"], d08["tied_with"]) == (70.0, "1-2", ["D09"])
    text = get(client, "index", token, survey="demo-departments", min_sample=1, format="csv").data
    rows = {r["department"]: r for r in csv.DictReader(io.StringIO(text.decode("utf-8-sig")))}
    assert rows["D08"]["index"] == "70.0" and rows["D08"]["tied_with"] == "D09"


def test_departments_and_surveys(client, token):
    departments = get(client, "departments", token).json
    assert departments["total_rows"] == 49  # 25 city departments, 6 counties, 18 townships
    township = next(d for d in departments["rows"] if d["code"] == "C01T1")
    assert (township["level"], township["parent_code"]) == ("township", "C01")
    assert get(client, "departments", token, active="false").json["rows"] == []
    assert get(client, "departments", token, active="maybe").status_code == 400
    slugs = {s["slug"] for s in get(client, "surveys", token).json["rows"]}
    assert slugs == {"demo-departments", "demo-counties"}
