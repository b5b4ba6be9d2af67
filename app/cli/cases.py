"""`wxsurvey cases list|figures|escalate|rotate-key`, `wxsurvey cases holidays import|list` and
`wxsurvey surveys publish SLUG [--withdraw]`: the 差评 follow-up loop from the command line.
The figures' output is shared with `wxsurvey tallies --dataset cases`."""

from __future__ import annotations

import json
import sys
from datetime import date
from pathlib import Path
from typing import Any

import click
from flask import current_app
from flask.cli import AppGroup

from app import cases as service
from app.cases.calendar import list_holidays
from app.cases.publication import set_published
from app.cli.surveys import group as surveys_group
from app.cli.surveys import iso_date
from app.db import db
from app.errors import Invalid
from app.org.departments import get_department, subtree_ids
from app.org.surveys import get_survey
from app.tally.files import FORMATS, render

group = AppGroup("cases", help="差评 follow-up cases: figures, escalation, holidays, the contact key.")
holidays = AppGroup("holidays", help="The holiday list that deadlines in working days skip.")
group.add_command(holidays)


def register(cli: click.Group) -> None:
    cli.add_command(group)


@group.command("list")
@click.option("--survey", "survey_slug", help="Only this survey's cases.")
@click.option("--status", type=click.Choice(["open", "answered", "closed", "escalated"]))
@click.option("--json", "as_json", is_flag=True, help="JSON (the default is a table).")
def list_command(survey_slug, status, as_json) -> None:
    """Cases with their state and deadlines (no personal data)."""
    survey_id = get_survey(db.session, survey_slug).id if survey_slug else None
    rows: list[dict[str, Any]] = [
        {
            "id": c.id,
            "survey_id": c.survey_id,
            "department_id": c.department_id,
            "status": c.status,
            "due_at": c.due_at.isoformat(),
            "escalation_level": c.escalation_level,
            "holder_department_id": c.holder_department_id,
            "rerating": c.rerating,
            "contact_kept": c.contact is not None,
        }
        for c in service.list_cases(db.session, status=status, survey_id=survey_id, limit=10_000)
    ]
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False))
        return
    for r in rows:
        click.echo(f"{r['id']}\t{r['status']}\t{r['due_at'][:10]}\tlevel {r['escalation_level']}")


BY_HELP = "department (default), period or both: per department and/or period of opening."
PERIOD_HELP = "BUCKET, RANGE or BUCKET:RANGE as for tallies (month, week:2024-05, 2024-Q2): when opened."


def case_grouping(by: str | None, period: str | None) -> service.Grouping:
    """--by and --period read as the API's group_by and period; a bad value is a usage error (exit 2)."""
    try:
        return service.parse_grouping(by or None, period or None)
    except Invalid as exc:
        hint = "--by" if exc.field == "group_by" else "--period"
        raise click.BadParameter(
            exc.message.partition(": ")[2] or exc.message, param_hint=f"'{hint}'"
        ) from None


def figures_output(
    survey_slug: str, grouping: service.Grouping, fmt: str, out: str | None, *, department: str | None = None,
    since: date | None = None, until: date | None = None,
) -> None:  # fmt: skip
    """Write the follow-up figures of one survey (a department's subtree, opened in a range) as `fmt`."""
    if fmt == "xlsx" and not out and sys.stdout.isatty():
        raise click.UsageError("XLSX is binary: pass --out FILE or redirect standard output")
    survey = get_survey(db.session, survey_slug)
    ids = subtree_ids(db.session, get_department(db.session, department).id) if department else None
    rows, total = service.case_figures(db.session, survey.id, department_ids=ids, since=since, until=until,
                                       grouping=grouping)  # fmt: skip
    data = render(fmt, service.figures_dict(survey.slug, rows, total, grouping), grouping.columns)
    if out:
        Path(out).write_bytes(data)
        click.echo(f"{len(rows)} rows written to {out}", err=True)
    else:
        sys.stdout.buffer.write(data + (b"\n" if fmt == "json" else b""))
        sys.stdout.flush()


@group.command("figures")
@click.option("--survey", "survey_slug", required=True)
@click.option("--department", help="A department code; a county includes its townships.")
@click.option("--by", "by", help=BY_HELP)
@click.option("--period", help=PERIOD_HELP)
@click.option("--since", callback=iso_date, help="Cases opened on or after this day (city time).")
@click.option("--until", callback=iso_date, help="Cases opened on or before this day.")
@click.option("--format", "fmt", type=click.Choice(sorted(FORMATS)), default="json", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, writable=True), help="Write to a file.")
def figures_command(survey_slug, department, by, period, since, until, fmt, out) -> None:
    """Per department and/or period: opened, answered on time, overdue, escalated, re-rating
    satisfaction, median days."""
    grouping = case_grouping(by, period)
    figures_output(survey_slug, grouping, fmt, out, department=department, since=since, until=until)


@group.command("escalate")
def escalate_command() -> None:
    """Escalate every open case past its deadline now (the worker does this every 10 minutes)."""
    days = current_app.config["SETTINGS"].cases.deadline_working_days
    moved = service.escalate_overdue(db.session, working_days=days)
    db.session.commit()
    click.echo(f"{len(moved)} cases escalated")


@group.command("rotate-key")
def rotate_key_command() -> None:
    """Re-seal every kept contact under cases.contact_key (old keys in cases.previous_contact_keys)."""
    count = service.reseal_contacts(db.session, service.sealer_for(current_app.config["SETTINGS"]))
    db.session.commit()
    click.echo(f"{count} contacts re-sealed under the current key")


@holidays.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
def holidays_import(file) -> None:
    """CSV lines `date,kind,name` (kind 假日/holiday or 补班/workday); replaces those years' lists."""
    text = Path(file).read_bytes().decode("utf-8-sig", errors="replace")
    count = service.replace_year_holidays(db.session, service.parse_holidays(text))
    db.session.commit()
    click.echo(f"{count} days imported")


@holidays.command("list")
def holidays_list() -> None:
    for day in list_holidays(db.session):
        click.echo(f"{day.day}\t{day.kind}\t{day.name}")


@surveys_group.command("publish")
@click.argument("slug")
@click.option("--withdraw", is_flag=True, help="Take the public results page down again.")
def publish_command(slug, withdraw) -> None:
    """Publish a survey's results at /results/SLUG (or withdraw them)."""
    set_published(db.session, slug, not withdraw, actor="cli")
    db.session.commit()
    from app.public.results import forget_results

    forget_results(slug)
    click.echo(f"{slug}: results {'withdrawn' if withdraw else 'published'}")
