"""`wxsurvey departments import|list|hours`: the org chart from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import click
from flask.cli import AppGroup

from app.db import db
from app.org import departments as service

group = AppGroup("departments", help="The org chart: city departments, counties, townships.")


def register(cli: click.Group) -> None:
    cli.add_command(group)


@group.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Check the file and report, write nothing.")
def import_command(file: Path, dry_run: bool) -> None:
    """Create or update departments from a CSV or XLSX file (all rows or none)."""
    if not file.exists():
        raise click.ClickException(f"{file}: no such file")
    rows = service.read_rows(file.read_bytes(), file.name)
    report = service.import_departments(db.session, rows, dry_run=dry_run, actor="cli")
    if not report.ok:
        db.session.rollback()
        for line, message in report.errors:
            click.echo(f"{file.name}:{line}: {message}", err=True)
        raise click.ClickException(f"{file}: {len(report.errors)} bad row(s), nothing imported")
    if dry_run:
        db.session.rollback()
    else:
        db.session.commit()
    verb = "would import" if dry_run else "imported"
    click.echo(
        f"{verb} {report.rows} rows: {len(report.created)} new, {len(report.updated)} updated, "
        f"{len(report.unchanged)} unchanged"
    )


@group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--active/--all", default=False, help="Only active departments.")
def list_command(as_json: bool, active: bool) -> None:
    """List departments in org-chart order."""
    rows = [
        service.department_dict(d)
        for d in service.list_departments(db.session, active=True if active else None)
    ]
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    for row in rows:
        mark = "" if row["active"] else "  (inactive)"
        click.echo(f"{row['code']:<10} {row['level']:<9} {row['category']:<8} {row['name']}{mark}")


@group.command("hours")
@click.argument("code")
@click.argument("hours")
def hours_command(code: str, hours: str) -> None:
    """Opening hours of a department served at a window, HH:MM-HH:MM in city time ("none" clears);
    the stuffing detector treats answers outside them as a signal."""
    department = service.set_opening_hours(db.session, code, "" if hours == "none" else hours, actor="cli")
    db.session.commit()
    click.echo(f"{department.code} {department.name}: {department.opening_hours or 'no opening hours'}")
