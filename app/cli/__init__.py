"""The `wxsurvey` command line: a Flask CLI group whose errors are one line, never a traceback."""

from __future__ import annotations

import os
import sys

import click
from flask.cli import FlaskGroup

from app.config import ConfigError
from app.errors import DomainError


def _create_app():
    from app import create_app

    return create_app()


cli = FlaskGroup(
    name="wxsurvey",
    create_app=_create_app,
    add_default_commands=False,
    add_version_option=False,
    load_dotenv=False,
    set_debug_flag=False,
    help="wxsurvey: WeChat public-opinion surveys for a city government.",
)


def _register_commands() -> None:
    from flask.cli import routes_command, shell_command

    from app.cli import (
        accounts,
        exports,
        org,
        posters,
        qr,
        server,
        setup,
        surveys,
        tallies,
        templates,
        worker,
    )  # fmt: skip

    for module in (setup, org, surveys, templates, accounts, server, worker, tallies, exports, qr, posters):
        module.register(cli)
    from app.cli import backup  # backup / restore

    backup.register(cli)
    cli.add_command(shell_command)
    cli.add_command(routes_command)


def fail(message: str) -> click.ClickException:
    """A one-line error for a command to raise."""
    return click.ClickException(message)


def main(argv: list[str] | None = None) -> None:
    _register_commands()
    try:
        rv = cli.main(args=argv, prog_name="wxsurvey", standalone_mode=False)
    except click.UsageError as exc:
        hint = f" (see: {exc.ctx.command_path} --help)" if exc.ctx else ""
        click.echo(f"wxsurvey: error: {exc.format_message()}{hint}", err=True)
        sys.exit(2)
    except click.ClickException as exc:
        click.echo(f"wxsurvey: error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except (ConfigError, DomainError) as exc:
        click.echo(f"wxsurvey: error: {exc}", err=True)
        sys.exit(1)
    except click.exceptions.Abort:
        click.echo("wxsurvey: aborted", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # a bug, not bad input: one line here, the traceback with WXSURVEY_DEBUG=1
        if os.environ.get("WXSURVEY_DEBUG"):
            raise
        click.echo(
            f"wxsurvey: error: unexpected {type(exc).__name__}: {exc} (rerun with WXSURVEY_DEBUG=1)", err=True
        )
        sys.exit(1)
    if isinstance(rv, int):
        sys.exit(rv)
