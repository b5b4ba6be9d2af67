"""The satisfaction index, its confidence interval and the tie-aware ranking, checked by hand."""

from __future__ import annotations

import pytest

from app.tally.index import IndexRow, rank_within_categories, satisfaction_index
from tests.factories import hand_made_responses


@pytest.fixture
def survey(session, demo):
    return hand_made_responses(session)


def by_code(rows):
    return {r.department: r for r in rows}


def test_index_and_interval_by_hand(session, survey):
    rows = by_code(satisfaction_index(session, survey, min_sample=1))
    d08 = rows["D08"]
    # (100 + 80 + 30) / 3; s² = (100² + 80² + 30²)/3 - 70²; half width 1.96·s/√3 ≈ 33.31, capped at 100
    assert (d08.responses, d08.answers, d08.index) == (3, 3, 70.0)
    assert (d08.ci_low, d08.ci_high) == (36.69, 100.0)
    assert (rows["D09"].responses, rows["D09"].index, rows["D09"].ci_low) == (
        1,
        60.0,
        60.0,
    )  # quarantined left out
    assert (rows["D18"].responses, rows["D18"].index) == (1, 80.0)  # the rejected one left out
    assert rows["D01"].responses == 0 and rows["D01"].index is None and rows["D01"].insufficient
    # D08 and D09 overlap: tied for places 1-2 of 政府部门; D18 alone in 垂直管理部门.
    assert (d08.rank, d08.rank_low, d08.rank_label, d08.tied_with) == (1, 2, "1-2", ["D09"])
    assert rows["D09"].rank_label == "1-2"
    assert rows["D18"].rank_label == "1"
    assert len(rows) == 25  # every city department the survey evaluates


def test_insufficient_sample_is_marked_and_not_ranked(session, survey):
    rows = by_code(satisfaction_index(session, survey, min_sample=2))
    assert rows["D08"].rank_label == "1" and not rows["D08"].insufficient
    assert rows["D09"].insufficient and rows["D09"].rank is None and rows["D09"].rank_label == "样本不足"


def test_scope_limits_departments(session, survey):
    rows = satisfaction_index(session, survey, department_codes={"D08", "D18"}, min_sample=1)
    assert sorted(r.department for r in rows) == ["D08", "D18"]


def test_overlapping_intervals_tie_and_separated_ones_order():
    def row(code, low, high):
        return IndexRow(code, code, "政府部门", "city", 100, 100, (low + high) / 2, low, high, False)

    rows = [row("C", 50, 60), row("B", 70, 85), row("A", 80, 90)]
    rank_within_categories(rows)
    labels = {r.department: (r.rank_label, r.tied_with) for r in rows}
    assert labels == {"A": ("1-2", ["B"]), "B": ("1-2", ["A"]), "C": ("3", [])}
    assert [r.department for r in rows] == ["A", "B", "C"]
