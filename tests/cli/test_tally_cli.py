"""`wxsurvey tallies` in every format and `wxsurvey tallies verify` against tampering."""

from __future__ import annotations

import csv
import io
import json

from openpyxl import load_workbook
from sqlalchemy import select, update

from app.cli.tallies import group as tallies_group
from app.models import TallyRow
from app.org.departments import get_department
from app.org.surveys import get_survey
from tests.conftest import run_cli
from tests.factories import hand_made_responses, random_load


def test_json_csv_and_xlsx_hold_the_same_numbers(runner, session, demo, tmp_path):
    hand_made_responses(session)
    args = ["--survey", "demo-departments", "--by", "department,segment"]
    doc = json.loads(runner.invoke(tallies_group, [*args, "--format", "json"]).output)
    assert (doc["responses"], doc["quarantined"]) == (5, 1)
    expected = {(r["department"], r["segment"] or ""): r["count"] for r in doc["rows"]}
    assert expected[("D08", "citizen")] == 2

    text = runner.invoke(tallies_group, [*args, "--format", "csv"]).output
    rows = list(csv.DictReader(io.StringIO(text.lstrip("\ufeff"))))
    assert {(r["department"], r["segment"]): int(r["count"]) for r in rows} == expected

    out = tmp_path / "t.xlsx"
    assert runner.invoke(tallies_group, [*args, "--format", "xlsx", "--out", str(out)]).exit_code == 0
    sheet = load_workbook(out, read_only=True).worksheets[0]
    header, *body = list(sheet.iter_rows(values_only=True))
    got = {
        (r[header.index("department")], r[header.index("segment")] or ""): r[header.index("count")]
        for r in body
    }
    assert got == expected


def test_verify_passes_after_random_load_and_fails_after_tampering(runner, session, demo):
    survey = get_survey(session, "demo-departments")
    departments = [get_department(session, c) for c in ("D02", "D08", "D09", "D19")]
    random_load(session, survey, departments, 200, seed=3)
    session.commit()
    result = runner.invoke(tallies_group, ["verify"])
    assert result.exit_code == 0, result.output

    row = session.scalars(select(TallyRow).where(TallyRow.question_id != 0).limit(1)).one()
    before = row.count
    session.execute(update(TallyRow).where(TallyRow.id == row.id).values(count=TallyRow.count + 1))
    session.commit()
    result = runner.invoke(tallies_group, ["verify", "--survey", "demo-departments"])
    assert result.exit_code == 1
    assert f"question={row.question_id} option={row.option_id}" in result.output
    assert f"stored {before + 1}, recounted {before}" in result.output


def test_bad_input_is_one_line(cli_env, session, demo):
    for args, fragment in (
        (["tallies", "--survey", "demo-departments", "--by", "colour"], "unknown dimension 'colour'"),
        (["tallies", "--survey", "nope"], "nope"),
        (["tallies", "--survey", "demo-departments", "--period", "2024-13"], "period"),
        (["tallies", "--survey", "demo-departments", "--department", "ZZ9"], "ZZ9"),
        (["tallies", "--by", "department"], "--survey is required"),
    ):
        result = run_cli(*args, env=cli_env)
        assert result.returncode != 0, args
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("wxsurvey: error: ") and fragment in lines[0], (
            result.stderr
        )


def test_verify_exits_non_zero_from_the_shell(cli_env, session, demo):
    hand_made_responses(session)
    assert run_cli("tallies", "verify", env=cli_env).returncode == 0
    session.execute(update(TallyRow).where(TallyRow.question_id == 0).values(count=TallyRow.count + 5))
    session.commit()
    result = run_cli("tallies", "verify", env=cli_env)
    assert result.returncode == 1
    assert "differ from the raw answers" in result.stderr
