"""`wxsurvey tallies` (categorized tallies, or with `--dataset cases` the 差评 follow-up figures, as
JSON, CSV or XLSX) and `wxsurvey tallies verify`."""

from __future__ import annotations

import sys

import click
from flask.cli import AppGroup, with_appcontext

from app.cli.cases import case_grouping, figures_output
from app.db import db
from app.errors import Invalid
from app.org.surveys import get_survey, list_surveys
from app.tally.exports import DATASETS
from app.tally.files import FORMATS, render
from app.tally.indicators import parse_indicators
from app.tally.params import GROUP_DIMENSIONS, parse_group_by, parse_period
from app.tally.report import row_columns, tally_dict, tally_report
from app.tally.verify import verify_tallies


def register(cli: click.Group) -> None:
    cli.add_command(group)


@click.group(
    "tallies",
    cls=AppGroup,
    invoke_without_command=True,
    help="Categorized tallies of a survey; `tallies verify` recounts them from the raw answers.",
)
@click.option("--survey", "survey_slug", help="Survey slug (required unless running a subcommand).")
@click.option(
    "--dataset", type=click.Choice(DATASETS), default="tallies", show_default=True,
    help="tallies, or cases: the 差评 follow-up figures (--by department,period; --period as here).",
)  # fmt: skip
@click.option("--department", help="A department code; a county includes its townships.")
@click.option("--by", "group_by", default="", help=f"Comma-separated: {','.join(GROUP_DIMENSIONS)}.")
@click.option("--period", help="BUCKET, RANGE or BUCKET:RANGE, e.g. month, 2024-Q2, week:2024-05.")
@click.option("--since", help="Only groups changed since this ISO 8601 time (tallies).")
@click.option("--segment", help="Question key used as the segment dimension (default: respondent type).")
@click.option("--indicator", "indicators", help="Comma-separated indicator codes (with --by indicator).")
@click.option("--format", "fmt", type=click.Choice(sorted(FORMATS)), default="json", show_default=True)
@click.option(
    "--out", type=click.Path(dir_okay=False, writable=True), help="Write to a file (XLSX needs it)."
)
@click.pass_context
@with_appcontext
def group(
    ctx, survey_slug, dataset, department, group_by, period, since, segment, indicators, fmt, out
) -> None:
    """Categorized tallies of one survey (JSON, CSV or XLSX); `tallies verify` recounts them."""
    if ctx.invoked_subcommand is not None:
        return
    if not survey_slug:
        raise click.UsageError("--survey is required")
    if dataset == "cases":
        unused = [name for name, value in (("--since", since), ("--segment", segment),
                                           ("--indicator", indicators)) if value]  # fmt: skip
        if unused:
            raise click.UsageError(f"{unused[0]} is not used with --dataset cases")
        figures_output(survey_slug, case_grouping(group_by, period), fmt, out, department=department)
        return
    _check(parse_group_by, group_by, "--by")
    _check(parse_period, period, "--period")
    if fmt == "xlsx" and not out and sys.stdout.isatty():
        raise click.UsageError("XLSX is binary: pass --out FILE or redirect standard output")
    result = tally_report(
        db.session, survey_slug, department=department, group_by=group_by, period=period, since=since,
        segment=segment, indicators=parse_indicators(indicators),
    )  # fmt: skip
    data = render(fmt, tally_dict(result), row_columns(result))
    if out:
        with open(out, "wb") as fh:
            fh.write(data)
        click.echo(f"{len(result.rows)} rows written to {out}", err=True)
    else:
        sys.stdout.buffer.write(data + (b"\n" if fmt == "json" else b""))
        sys.stdout.flush()


def _check(parse, value: str | None, option: str) -> None:
    """A bad --by or --period is a usage error (exit 2) naming the option, as click's own are."""
    try:
        parse(value)
    except Invalid as exc:
        raise click.BadParameter(
            exc.message.partition(": ")[2] or exc.message, param_hint=f"'{option}'"
        ) from None


@group.command("verify")
@click.option("--survey", "survey_slug", help="One survey (default: every survey).")
@click.option("--limit", default=50, show_default=True, help="Differences printed at most.")
def verify_command(survey_slug: str | None, limit: int) -> None:
    """Recount every tally row from the raw answers; exit 1 on any difference."""
    surveys = [get_survey(db.session, survey_slug)] if survey_slug else list_surveys(db.session)
    total = 0
    for survey in surveys:
        differences = verify_tallies(db.session, survey)
        for difference in differences[: max(limit - total, 0)]:
            click.echo(f"{survey.slug}: {difference.describe()}")
        total += len(differences)
        click.echo(
            f"{survey.slug}: {'OK' if not differences else f'{len(differences)} differences'}", err=True
        )
    if total:
        raise click.ClickException(f"{total} tally rows differ from the raw answers")
