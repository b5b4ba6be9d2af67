"""`wxsurvey templates list|check|add`: the questionnaire templates surveys are created from."""

from __future__ import annotations

import json
from pathlib import Path

import click
from flask.cli import AppGroup

from app.db import db
from app.org import surveys as service
from survey_templates import TemplateError, load_template, template_errors

group = AppGroup("templates", help="Questionnaire templates (TOML).")


def register(cli: click.Group) -> None:
    cli.add_command(group)


def _load(file: Path):
    try:
        return load_template(file)
    except TemplateError as exc:
        raise click.ClickException(exc.located()) from None


@group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_command(as_json: bool) -> None:
    """List the templates in the database."""
    rows = [
        {"name": t.name, "title": t.title, "version": t.version} for t in service.list_templates(db.session)
    ]
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    for row in rows:
        click.echo(f"{row['name']:<28} v{row['version']:<4} {row['title']}")


@group.command("check")
@click.argument("file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
def check_command(file: Path) -> None:
    """Validate a template file without loading it: every error, each with its line."""
    errors = template_errors(file)
    if len(errors) == 1:
        raise click.ClickException(errors[0].located())
    if errors:
        for error in errors:
            click.echo(error.located(), err=True)
        raise click.ClickException(f"{file.name}: {len(errors)} errors (listed above)")
    template = _load(file)
    click.echo(f"{file.name}: ok ({template.name}, {len(template.questions)} questions)")


@group.command("add")
@click.argument("file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
def add_command(file: Path) -> None:
    """Add or update a custom template from a TOML file (validated first; nothing changes if broken)."""
    template = _load(file)
    service.save_template(db.session, template, actor="cli")
    db.session.commit()
    click.echo(f"template {template.name} saved ({len(template.questions)} questions)")
