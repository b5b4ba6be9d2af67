"""`wxsurvey token create|revoke` and `wxsurvey admin create`."""

from __future__ import annotations

import sys

import click
from flask.cli import AppGroup

from app import accounts as service
from app.db import db

token_group = AppGroup("token", help="API tokens for the performance platform.")
admin_group = AppGroup("admin", help="Console administrators.")


def register(cli: click.Group) -> None:
    cli.add_command(token_group)
    cli.add_command(admin_group)


@token_group.command("create")
@click.argument("name")
@click.option("--survey", "surveys", multiple=True, help="Limit the token to this survey slug (repeatable).")
def token_create(name: str, surveys: tuple[str, ...]) -> None:
    """Create a token and print it once (only its hash is kept)."""
    from app.org.surveys import get_survey

    for slug in surveys:
        get_survey(db.session, slug)
    issued = service.create_token(db.session, name, list(surveys), actor="cli")
    db.session.commit()
    click.echo(issued.secret)


@token_group.command("revoke")
@click.argument("name")
def token_revoke(name: str) -> None:
    """Revoke a token by name."""
    service.revoke_token(db.session, name, actor="cli")
    db.session.commit()
    click.echo(f"token {name} revoked")


@admin_group.command("create")
@click.option("--username", required=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.option("--role", required=True, type=click.Choice(["city_admin", "scoped_admin", "viewer"]))
@click.option(
    "--scope", "scope_code", help="Department code of the subtree a scoped admin or viewer may see."
)
def admin_create(username: str, password_stdin: bool, role: str, scope_code: str | None) -> None:
    """Create a console administrator."""
    if not password_stdin:
        raise click.UsageError("pass the password on standard input with --password-stdin")
    password = sys.stdin.readline().rstrip("\r\n")
    user = service.create_admin(
        db.session, username=username, password=password, role=role, scope_code=scope_code, actor="cli"
    )
    db.session.commit()
    click.echo(f"admin {user.username} created ({user.role})")
