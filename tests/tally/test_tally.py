"""Categorized tallies checked against counts worked out by hand, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app.errors import Invalid
from app.org.departments import get_department
from app.org.surveys import get_survey
from app.tally.params import parse_period
from app.tally.queries import _raw_counts, _row_counts, tallies
from app.tally.report import tally_dict
from tests.factories import add_response, hand_made_responses, random_load


@pytest.fixture
def fixture(session, demo):
    return hand_made_responses(session)


def counts(result, *keys):
    return {tuple(row[k] for k in keys): (row["count"], row["quarantined"]) for row in result.rows}


def test_totals_and_departments(session, fixture):
    result = tallies(session, fixture, group_by=[])
    assert (result.responses, result.quarantined) == (5, 1)
    assert result.rows == [{"count": 5, "quarantined": 1}]
    result = tallies(session, fixture, group_by=["department"])
    assert counts(result, "department") == {("D08",): (3, 0), ("D09",): (1, 1), ("D18",): (1, 0)}
    assert result.rows[0]["department_name"] == "市教育局"


def test_category_level_region_channel(session, fixture):
    assert counts(tallies(session, fixture, group_by=["category"]), "category") == {
        ("政府部门",): (4, 1),
        ("垂直管理部门",): (1, 0),
    }
    assert counts(tallies(session, fixture, group_by=["level", "region"]), "level", "region") == {
        ("city", "CITY"): (5, 1)
    }
    assert counts(tallies(session, fixture, group_by=["channel"]), "channel") == {
        ("wechat",): (4, 1),
        ("web",): (1, 0),
    }


def test_questions_and_options(session, fixture):
    result = tallies(session, fixture, group_by=["option"], department_codes={"D08"})
    assert result.group_by == ["question", "option"]  # an option is only meaningful with its question
    assert result.responses == 3
    assert counts(result, "question", "option") == {
        ("overall", "very_satisfied"): (1, 0),
        ("overall", "satisfied"): (1, 0),
        ("overall", "dissatisfied"): (1, 0),
        ("respondent_type", "citizen"): (2, 0),
        ("respondent_type", "enterprise"): (1, 0),
        ("suggestion", None): (1, 0),  # text answers are counted, not broken down
    }


def test_periods(session, fixture):
    year = fixture.period_start.year
    by_month = tallies(session, fixture, group_by=["period"], period="month")
    assert counts(by_month, "period") == {
        (f"{year}-01",): (2, 0),
        (f"{year}-02",): (2, 1),
        (f"{year}-04",): (1, 0),
    }
    by_day = tallies(session, fixture, group_by=[], period=f"day:{year}-01")
    assert by_day.group_by == ["period"]
    assert counts(by_day, "period") == {(f"{year}-01-15",): (1, 0), (f"{year}-01-16",): (1, 0)}
    assert by_day.responses == 2
    by_quarter = tallies(session, fixture, group_by=["period"], period="quarter")
    assert counts(by_quarter, "period") == {(f"{year}-Q1",): (4, 1), (f"{year}-Q2",): (1, 0)}
    whole = tallies(session, fixture, group_by=["period"], period="survey")
    assert [r["period"] for r in whole.rows] == [f"{year}-01-01..{year}-12-31"]
    ranged = tallies(session, fixture, group_by=["department"], period=f"{year}-02-01..{year}-03-31")
    assert counts(ranged, "department") == {("D08",): (1, 0), ("D09",): (1, 1)}
    assert tally_dict(ranged)["period"] == {"bucket": None, "start": f"{year}-02-01", "end": f"{year}-03-31"}


def test_segments_pre_aggregated_and_cross_tab(session, fixture):
    by_type = tallies(session, fixture, group_by=["segment"])
    assert by_type.segment_question == "respondent_type"
    assert counts(by_type, "segment") == {
        ("citizen",): (2, 1),
        ("enterprise",): (1, 0),
        ("other",): (1, 0),
        (None,): (1, 0),
    }
    # Any other single-choice question as the cross-tab dimension: counted from the raw answers.
    by_overall = tallies(session, fixture, group_by=["segment", "channel"], segment="overall")
    assert counts(by_overall, "segment", "channel") == {
        ("very_satisfied", "wechat"): (1, 1),
        ("satisfied", "web"): (1, 0),
        ("satisfied", "wechat"): (1, 0),
        ("dissatisfied", "wechat"): (1, 0),
        ("basic", "wechat"): (1, 0),
    }
    with pytest.raises(Invalid, match="not single-choice"):
        tallies(session, fixture, group_by=["segment"], segment="suggestion")


def test_since_returns_whole_counts_of_changed_groups(session, fixture):
    later = datetime.now(UTC)
    assert tallies(session, fixture, group_by=["department"], since=later).rows == []
    add_response(session, fixture, get_department(session, "D09"), {"overall": "satisfied"})
    session.commit()
    result = tallies(session, fixture, group_by=["department"], since=later)
    assert counts(result, "department") == {("D09",): (2, 1)}


@pytest.mark.parametrize(
    "text",
    ["weekly", "2024-13", "2024-Q5", "month:nope", "2024-05-01..2024-04-01", "2024-W60", "2024-02-30"],
)
def test_bad_periods(text):
    with pytest.raises(Invalid, match="period"):
        parse_period(text)


def test_bad_group_by(session, fixture):
    with pytest.raises(Invalid, match="unknown dimension 'colour'"):
        tallies(session, fixture, group_by=["department", "colour"])
    with pytest.raises(Invalid, match="since"):
        tallies(session, fixture, group_by=[], since="yesterday")


def test_pre_aggregated_rows_agree_with_raw_answers(session, demo):
    survey = get_survey(session, "demo-departments")
    departments = [get_department(session, c) for c in ("D01", "D08", "D09", "D18", "D22")]
    random_load(session, survey, departments, 150, seed=7)
    session.commit()
    segment = next(q for q in survey.questions if q.segment)
    for dims, bucket in (
        (["department", "question", "option"], None),
        (["period", "channel", "segment"], "week"),
        (["period", "question", "option"], "day"),
        (["category", "period"], "quarter"),
    ):
        span = parse_period(bucket)
        pre, _ = _row_counts(session, survey, dims, span, None, None)
        raw, _ = _raw_counts(session, survey, dims, span, None, segment, None)
        assert pre == raw, dims
