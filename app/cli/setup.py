"""`wxsurvey init` (migrate, load templates) and `wxsurvey demo` (the fictional city)."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import with_appcontext

from app.db import db


def register(cli: click.Group) -> None:
    cli.add_command(init)
    cli.add_command(demo)


@click.command()
@with_appcontext
def init() -> None:
    """Migrate the database to the latest schema and load the built-in templates."""
    from app.migrate import upgrade
    from app.org.surveys import sync_templates

    upgrade(db.engine)
    names = sync_templates(db.session)
    db.session.commit()
    click.echo(f"database ready; templates: {', '.join(names)}")


@click.command()
@with_appcontext
def demo() -> None:
    """Load the demo org chart, open the demo surveys, create the demo admin (idempotent)."""
    from app.org.demo import load_demo

    settings = current_app.config["SETTINGS"]
    if settings.is_production:
        raise click.ClickException("the demo is for dev mode only (app.mode is production)")
    info = load_demo(db.session, settings.var_dir)
    db.session.commit()
    click.echo(f"demo ready: survey {info.survey_slug}, console user {info.admin_username}")
