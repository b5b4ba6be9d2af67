"""Tallies and the index per indicator (group_by=indicator), the 0-10 summary, and the API's
indicator parameters, on the department_evaluation template with hand-counted answers."""

from __future__ import annotations

import math

import pytest

from app.accounts.tokens import create_token
from app.org.departments import get_department
from app.tally.indicators import indicator_index, net_score
from app.tally.report import tally_report
from tests.factories import add_response, open_evaluation

RATINGS = {"very_satisfied": 100, "satisfied": 80, "basic": 60, "dissatisfied": 30, "very_dissatisfied": 0}
# (overall, attitude, recommend) per response of 市教育局 (D08); the other rows always "satisfied".
D08 = [
    ("satisfied", "very_satisfied", "s10"),
    ("satisfied", "satisfied", "s9"),
    ("basic", "basic", "s7"),
    ("dissatisfied", "dissatisfied", "s3"),
    ("very_satisfied", "very_satisfied", "s9"),
]


@pytest.fixture
def evaluation(session, demo):
    survey = open_evaluation(session)
    d08, d22 = get_department(session, "D08"), get_department(session, "D22")
    for overall, attitude, recommend in D08:
        rest = {row: "satisfied" for row in ("efficiency", "integrity", "facilities")}
        answers = {"overall": overall, "attitude": attitude, **rest, "recommend": recommend,
                   "respondent_type": "citizen"}  # fmt: skip
        if overall == "dissatisfied":
            answers["reasons"] = ["slow", "unclear"]
        add_response(session, survey, d08, answers)
    hall = {row: "basic" for row in ("attitude", "efficiency", "integrity", "facilities")}
    hall.update(overall="satisfied", recommend="s6", queue_time="long", respondent_type="enterprise")
    add_response(session, survey, d22, hall)
    add_response(session, survey, d22, hall, status="quarantined")
    session.commit()
    return survey


def test_tallies_group_by_indicator(session, evaluation):
    result = tally_report(session, "eval", group_by="indicator,option", department="D08")
    rows = {(r["indicator"], r["option"]): r["count"] for r in result.rows}
    assert rows[("B01", "very_satisfied")] == 2 and rows[("B01", "satisfied")] == 1
    assert rows[("C01", "s9")] == 2 and rows[("A01.R", "slow")] == 1
    assert {r["indicator"] for r in result.rows} == {"A01", "A01.R", "B01", "B02", "B03", "B04", "C01"}
    assert all(r["indicator"] for r in result.rows)  # respondent_type and suggestion carry none
    by_dept = tally_report(session, "eval", group_by="department,indicator", indicators={"W01"})
    assert [(r["department"], r["indicator"], r["count"], r["quarantined"]) for r in by_dept.rows] == [
        ("D22", "W01", 1, 1)
    ]
    assert result.group_by == ["indicator", "option"]  # option does not bring `question` here


def test_index_per_indicator_with_the_scale_summary(session, evaluation):
    rows = indicator_index(session, evaluation, department_codes={"D08"}, min_sample=3)
    by_code = {r.indicator: r for r in rows}
    assert set(by_code) == {"A01", "B01", "B02", "B03", "B04", "C01"}  # scored or 0-10 questions
    attitude = by_code["B01"]
    scores = [RATINGS[a] for _, a, _ in D08]
    mean = sum(scores) / len(scores)
    half = 1.959964 * math.sqrt(sum(s * s for s in scores) / 5 - mean * mean) / math.sqrt(5)
    assert (attitude.answers, attitude.index) == (5, round(mean, 2))
    assert attitude.ci_low == round(mean - half, 2) and attitude.ci_high == round(mean + half, 2)
    assert attitude.question == "attitude" and attitude.kind == "single" and not attitude.insufficient
    assert by_code["B02"].index == 80.0 and by_code["B02"].ci_low == 80.0  # every answer the same
    nps = by_code["C01"]
    points = [int(r[1:]) for _, _, r in D08]
    assert nps.kind == "scale" and nps.index is None  # recommend is not scored: no index on 100
    assert nps.mean == round(sum(points) / 5, 2)
    assert nps.net_score == round(100 * (3 - 1) / 5, 1)  # 10, 9, 9 promote; 3 detracts; 7 neither
    assert nps.mean_ci_low < nps.mean < nps.mean_ci_high <= 10
    hall = indicator_index(session, evaluation, department_codes={"D22"}, indicators={"C01"}, min_sample=3)
    assert [(r.indicator, r.answers, r.mean, r.net_score, r.insufficient) for r in hall] == [
        ("C01", 1, 6.0, -100.0, True)  # the quarantined response is not counted
    ]


def test_net_score_edges():
    assert net_score([]) is None
    assert net_score([(10, 3)]) == 100.0 and net_score([(0, 2), (6, 2)]) == -100.0
    assert net_score([(7, 4), (8, 1)]) == 0.0


def test_api_pulls_indicators_by_code(client, session, evaluation):
    secret = create_token(session, "platform").secret
    session.commit()
    headers = {"Authorization": f"Bearer {secret}"}

    def get(path, **params):
        return client.get(f"/api/v1/{path}", query_string={"survey": "eval", **params}, headers=headers)

    tallies = get("tallies", group_by="department,indicator", indicator="B01,C01").get_json()
    assert {(r["department"], r["indicator"]) for r in tallies["rows"]} == {
        ("D08", "B01"), ("D08", "C01"), ("D22", "B01"), ("D22", "C01"),
    }  # fmt: skip
    index = get("index", group_by="indicator", department="D08", indicator="C01", min_sample=1).get_json()
    assert index["group_by"] == "indicator"
    [row] = index["rows"]
    assert (row["indicator"], row["mean"], row["net_score"]) == ("C01", 7.6, 40.0)
    csv_body = get("index", group_by="indicator", format="csv").get_data(as_text=True)
    assert (
        csv_body.lstrip("\ufeff")
        .splitlines()[0]
        .startswith("department,department_name,category,level,indicator")
    )
    unknown = get("index", group_by="indicator", indicator="ZZ9")
    assert unknown.status_code == 200 and unknown.get_json()["rows"] == []  # a code this survey lacks
    for params, word in [
        ({"group_by": "region"}, "not department or indicator"),
        ({"indicator": "B01,,C01"}, "'' is not an indicator code"),
        ({"indicator": "指标"}, "is not an indicator code"),
    ]:
        refused = get("index", **params)
        assert refused.status_code == 400 and word in refused.get_json()["message"], refused.get_json()
    implied = get("tallies", group_by="department", indicator="B01").get_json()
    assert implied["group_by"] == ["department", "indicator"]
    assert {r["indicator"] for r in implied["rows"]} == {"B01"}
    by_code = get("index", indicator="C01", department="D08", min_sample=1).get_json()
    assert by_code["group_by"] == "indicator" and [r["indicator"] for r in by_code["rows"]] == ["C01"]
    assert "indicator" in client.get("/api/v1/openapi.json").get_data(as_text=True)
