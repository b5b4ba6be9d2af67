"""Formula injection: a department named like a spreadsheet formula stays inert text in every
download (API, CLI, console, scheduled exports), in CSV and XLSX, while numbers stay numbers."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from openpyxl import load_workbook

from app import accounts
from app.org.departments import update_department
from app.tally.files import FORMULA_STARTS, csv_bytes, xlsx_bytes
from tests.conftest import run_cli
from tests.factories import hand_made_responses

EVIL = '=HYPERLINK("http://evil.example","东湖")'


def xlsx_cells(data: bytes) -> list[list]:
    sheet = load_workbook(io.BytesIO(data)).active
    return [[(c.value, c.data_type, bool(c.quotePrefix)) for c in row] for row in sheet.iter_rows()]


def assert_inert_xlsx(data: bytes, text: str = EVIL) -> None:
    cells = [cell for row in xlsx_cells(data) for cell in row]
    hits = [c for c in cells if c[0] == text]
    assert hits, "the name is missing from the sheet"
    assert all(data_type == "s" and quoted for _, data_type, quoted in hits)
    assert not any(data_type == "f" for _, data_type, _q in cells)
    assert any(data_type == "n" for _, data_type, _q in cells), "counts must stay numbers"


def assert_inert_csv(data: bytes, text: str = EVIL) -> None:
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    cells = [cell for row in rows for cell in row]
    assert "'" + text in cells and text not in cells


@pytest.mark.parametrize("start", FORMULA_STARTS)
def test_every_formula_start_is_inert_and_numbers_stay_numbers(start):
    rows = [{"name": f"{start}1+2", "count": 7, "share": -0.5, "keys": ["-a", "b"]},
            {"name": "东湖", "count": 0}]  # fmt: skip
    columns = ["name", "count", "share", "keys"]
    sheet = xlsx_cells(xlsx_bytes(columns, rows))
    value, data_type, quoted = sheet[1][0]
    if start == "\r":  # XML keeps a carriage return as a line feed
        value = value.replace("\n", "\r")
    assert (value, data_type, quoted) == (f"{start}1+2", "s", True)
    assert sheet[1][1] == (7, "n", False) and sheet[1][2] == (-0.5, "n", False)
    assert sheet[1][3] == ("-a b", "s", True)
    assert sheet[2][0] == ("东湖", "s", False)  # ordinary text is left alone
    table = list(csv.reader(io.StringIO(csv_bytes(columns, rows).decode("utf-8-sig"))))
    assert table[1] == [f"'{start}1+2", "7", "-0.5", "'-a b"] and table[2][0] == "东湖"


@pytest.fixture
def poisoned(session, demo):
    """A township renamed to a formula by its scoped admin, with answers to download."""
    hand_made_responses(session)
    update_department(session, "D08", name=EVIL, actor="east")
    session.commit()


def test_api_downloads_are_inert(client, session, poisoned):
    secret = accounts.create_token(session, "platform").secret
    session.commit()
    headers = {"Authorization": f"Bearer {secret}"}
    for path in ("tallies", "index"):
        query = {"survey": "demo-departments", "group_by": "department"} if path == "tallies" else {
            "survey": "demo-departments"}  # fmt: skip
        xlsx = client.get(f"/api/v1/{path}", query_string={**query, "format": "xlsx"}, headers=headers)
        assert xlsx.status_code == 200
        assert_inert_xlsx(xlsx.data)
        as_csv = client.get(f"/api/v1/{path}", query_string={**query, "format": "csv"}, headers=headers)
        assert_inert_csv(as_csv.data)
    query = {"survey": "demo-departments", "group_by": "department"}
    as_json = client.get("/api/v1/tallies", query_string=query, headers=headers).get_json()
    assert EVIL in {r.get("department_name") for r in as_json["rows"]}  # JSON keeps the data as it is


def test_console_downloads_are_inert(client, session, poisoned):
    from tests.console.test_console import PASSWORD, login

    accounts.create_admin(session, username="city", password=PASSWORD, role="city_admin")
    session.commit()
    login(client, "city")
    query = {"survey": "demo-departments", "group_by": "department"}
    xlsx = client.get("/console/results/download", query_string={**query, "format": "xlsx"})
    assert xlsx.status_code == 200
    assert_inert_xlsx(xlsx.data)
    assert_inert_csv(client.get("/console/results/download", query_string={**query, "format": "csv"}).data)


def test_cli_downloads_are_inert(poisoned, cli_env, tmp_path):
    out = tmp_path / "t.xlsx"
    args = ("tallies", "--survey", "demo-departments", "--by", "department")
    done = run_cli(*args, "--format", "xlsx", "--out", str(out), env=cli_env)
    assert done.returncode == 0, done.stderr
    assert_inert_xlsx(out.read_bytes())
    done = run_cli(*args, "--format", "csv", "--out", str(tmp_path / "t.csv"), env=cli_env)
    assert done.returncode == 0, done.stderr
    assert_inert_csv((tmp_path / "t.csv").read_bytes())


def test_scheduled_exports_are_inert(tmp_path, database_url, redis_url, redis_client):
    from app import create_app
    from app.db import db
    from app.org.demo import load_demo
    from app.tally.exports import run_export
    from tests.conftest import empty_tables, settings_for

    schedule = {"name": "nightly", "cron": "0 2 * * *", "survey": "demo-departments",
                "group_by": "department", "format": ["csv", "xlsx"]}  # fmt: skip
    settings = settings_for(tmp_path, database_url, redis_url,
                            exports={"dir": str(tmp_path / "exports"), "schedules": [schedule]})  # fmt: skip
    app = create_app(settings)
    empty_tables(app.extensions["wxsurvey_db"].engine)
    with app.app_context():
        load_demo(db.session, settings.var_dir)
        hand_made_responses(db.session)
        update_department(db.session, "D08", name=EVIL)
        db.session.commit()
        assert run_export(db.session, settings, "nightly", slot="2026-01-02T02:00:00Z").run.status == "ok"
        db.session.remove()
    app.extensions["wxsurvey_db"].engine.dispose()
    directory = Path(settings.exports.dir) / "nightly"
    manifest = json.loads(next(directory.glob("*.manifest.json")).read_text())
    files = {f["format"]: directory / f["file"] for f in manifest["files"]}
    assert_inert_xlsx(files["xlsx"].read_bytes())
    assert_inert_csv(files["csv"].read_bytes())
