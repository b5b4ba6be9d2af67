"""`wxsurvey surveys create|list|open|close`."""

from __future__ import annotations

import json
from datetime import date

import click
from flask.cli import AppGroup

from app.db import db
from app.org import surveys as service

group = AppGroup("surveys", help="Surveys: create from a template, open, close.")


def register(cli: click.Group) -> None:
    cli.add_command(group)


def iso_date(_ctx, param, value):
    """A click callback: YYYY-MM-DD as a date, or a usage error naming the option."""
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)", param=param) from None


@group.command("create")
@click.option("--template", required=True, help="Template name (see wxsurvey init).")
@click.option("--slug", required=True, help="Stable identifier used in links and QR scenes.")
@click.option("--title", help="Title shown to citizens (default: the template's).")
@click.option("--start", "period_start", callback=iso_date, required=True, help="First day, YYYY-MM-DD.")
@click.option("--end", "period_end", callback=iso_date, required=True, help="Last day, YYYY-MM-DD.")
@click.option("--levels", default="", help="Comma-separated: city,county,township (default: all).")
@click.option("--open", "open_now", is_flag=True, help="Open it at once.")
def create_command(template, slug, title, period_start, period_end, levels, open_now) -> None:
    """Create a survey from a template (a draft unless --open)."""
    level_list = [part.strip() for part in levels.split(",") if part.strip()]
    survey = service.create_survey(
        db.session,
        slug=slug,
        template=template,
        period_start=period_start,
        period_end=period_end,
        title=title,
        levels=level_list,
        actor="cli",
    )
    if open_now:
        service.open_survey(db.session, slug, actor="cli")
    db.session.commit()
    click.echo(f"created survey {survey.slug} ({survey.status}) with {len(survey.questions)} questions")


@group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_command(as_json: bool) -> None:
    """List surveys, newest period first."""
    rows = [service.survey_dict(s) for s in service.list_surveys(db.session)]
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    for row in rows:
        click.echo(
            f"{row['slug']:<24} {row['status']:<7} {row['period_start']}..{row['period_end']}  {row['title']}"
        )


@group.command("open")
@click.argument("slug")
def open_command(slug: str) -> None:
    """Open a survey to answers."""
    service.open_survey(db.session, slug, actor="cli")
    db.session.commit()
    click.echo(f"survey {slug} is open")


@group.command("close")
@click.argument("slug")
def close_command(slug: str) -> None:
    """Close a survey: no more answers."""
    service.close_survey(db.session, slug, actor="cli")
    db.session.commit()
    click.echo(f"survey {slug} is closed")
