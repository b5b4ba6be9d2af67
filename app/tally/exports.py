"""Scheduled exports: [[exports.schedules]] from the config, run once per slot by RQ's cron scheduler,
written as timestamped files with a SHA-256 manifest, optionally pushed (HMAC-signed) to the platform.

Exactly once per slot: however many schedulers enqueue a schedule, the first run inserts the
ExportRun row (unique name + slot) and the others find it there and stop.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.errors import ConfigError, NotFound
from app.models import ExportRun, utcnow

if TYPE_CHECKING:
    from app.config import Settings

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
ENTRY_KEYS = {
    "name",
    "cron",
    "interval",
    "survey",
    "group_by",
    "format",
    "destination",
    "period",
    "department",
    "dataset",
}
DATASETS = ("tallies", "cases")  # cases: the 差评 follow-up figures (app.cases.figures)
EXPORT_FORMATS = ("csv", "xlsx", "json")
SIGNATURE_HEADER = "X-Wxsurvey-Signature"
TIMESTAMP_HEADER = "X-Wxsurvey-Timestamp"


@dataclass(frozen=True)
class ExportSchedule:
    name: str
    survey: str
    group_by: tuple[str, ...] = ()
    formats: tuple[str, ...] = ("csv",)
    destination: str = ""
    period: str | None = None
    department: str | None = None
    cron: str | None = None
    interval: int | None = None
    dataset: str = "tallies"

    def slot(self, moment: datetime) -> str:
        """The slot a run enqueued at `moment` belongs to: the latest cron time, or interval window."""
        moment = moment.astimezone(UTC)
        if self.interval:
            start = int(moment.timestamp()) // self.interval * self.interval
            return datetime.fromtimestamp(start, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        if self.cron:
            from croniter import croniter

            # RQ's cron scheduler matches cron fields in the process's local time: so does this.
            local = (moment + timedelta(seconds=1)).astimezone().replace(tzinfo=None)
            previous = croniter(self.cron, local).get_prev(datetime)
            return datetime.fromtimestamp(previous.timestamp(), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        raise ValueError(f"schedule {self.name} has neither cron nor interval")


def _entry_error(index: int, key: str, message: str) -> ConfigError:
    return ConfigError(f"exports.schedules[{index}].{key}: {message}")


def _string_list(index: int, key: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        items = [part.strip() for part in value.split(",")]
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        items = [v.strip() for v in value]
    else:
        raise _entry_error(index, key, f"expected a string or a list of strings, got {value!r}")
    return tuple(item for item in items if item)


def parse_schedules(entries: list[Any]) -> list[ExportSchedule]:
    """Validate [[exports.schedules]] tables; a bad entry raises ConfigError naming its key."""
    from croniter import croniter

    from app.errors import Invalid
    from app.tally.params import GROUP_DIMENSIONS, parse_period

    schedules: list[ExportSchedule] = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise ConfigError(f"exports.schedules[{index}]: must be a table ([[exports.schedules]])")
        unknown = sorted(set(entry) - ENTRY_KEYS)
        if unknown:
            raise _entry_error(index, unknown[0], f"unknown key; known: {', '.join(sorted(ENTRY_KEYS))}")
        name = entry.get("name")
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise _entry_error(index, "name", f"required, 1-40 of a-z 0-9 _ -, got {name!r}")
        if name in {s.name for s in schedules}:
            raise _entry_error(index, "name", f"{name!r} is used by another schedule")
        survey = entry.get("survey")
        if not isinstance(survey, str) or not survey:
            raise _entry_error(index, "survey", "required: the survey slug to export")
        cron, interval = entry.get("cron"), entry.get("interval")
        if (cron is None) == (interval is None):
            raise _entry_error(
                index, "cron", "give exactly one of cron (an expression) or interval (seconds)"
            )
        if cron is not None and (not isinstance(cron, str) or not croniter.is_valid(cron)):
            raise _entry_error(
                index, "cron", f"not a cron expression (minute hour day month weekday): {cron!r}"
            )
        if interval is not None and (
            isinstance(interval, bool) or not isinstance(interval, int) or interval < 1
        ):
            raise _entry_error(index, "interval", f"expected a number of seconds >= 1, got {interval!r}")
        group_by = _string_list(index, "group_by", entry.get("group_by", ""))
        bad = [d for d in group_by if d not in GROUP_DIMENSIONS]
        if bad:
            raise _entry_error(
                index, "group_by", f"unknown dimension {bad[0]!r}; use {', '.join(GROUP_DIMENSIONS)}"
            )
        formats = _string_list(index, "format", entry.get("format", "csv")) or ("csv",)
        bad = [f for f in formats if f not in EXPORT_FORMATS]
        if bad:
            raise _entry_error(index, "format", f"unknown format {bad[0]!r}; use {', '.join(EXPORT_FORMATS)}")
        destination = entry.get("destination", "")
        if not isinstance(destination, str) or (
            destination and not destination.startswith(("http://", "https://"))
        ):
            raise _entry_error(index, "destination", f"expected an http(s) URL or empty, got {destination!r}")
        period = entry.get("period")
        if period is not None:
            try:
                parse_period(str(period))
            except Invalid as exc:
                raise _entry_error(index, "period", exc.message) from None
        department = entry.get("department")
        if department is not None and not isinstance(department, str):
            raise _entry_error(index, "department", f"expected a department code, got {department!r}")
        dataset = entry.get("dataset", "tallies")
        if dataset not in DATASETS:
            raise _entry_error(index, "dataset", f"use {' or '.join(DATASETS)}, got {dataset!r}")
        if dataset == "cases":
            _check_case_grouping(index, group_by, period)
        schedules.append(
            ExportSchedule(
                name=name,
                survey=survey,
                group_by=group_by,
                formats=formats,
                destination=destination,
                period=period,
                department=department,
                cron=cron,
                interval=interval,
                dataset=dataset,
            )  # fmt: skip
        )
    return schedules


def _check_case_grouping(index: int, group_by: tuple[str, ...], period: Any) -> None:
    """The follow-up figures group by department and/or period only (app.cases.figures)."""
    from app.cases.figures import parse_grouping
    from app.errors import Invalid

    try:
        parse_grouping(group_by, None if period is None else str(period))
    except Invalid as exc:
        detail = exc.message.partition(": ")[2]
        raise _entry_error(index, exc.field or "group_by", f"{detail} (dataset = cases)") from None


def schedules(settings: Settings) -> dict[str, ExportSchedule]:
    return {s.name: s for s in parse_schedules(settings.exports.schedules)}


def get_schedule(settings: Settings, name: str) -> ExportSchedule:
    found = schedules(settings)
    if name not in found:
        names = ", ".join(sorted(found)) or "none configured"
        raise NotFound(f"no export schedule named {name!r} ({names})", field="name")
    return found[name]


# --- running one export -------------------------------------------------------------------------------


@dataclass
class ExportOutcome:
    run: ExportRun | None  # None when another run already holds this slot
    slot: str
    files: list[dict[str, Any]] = field(default_factory=list)

    @property
    def duplicate(self) -> bool:
        return self.run is None


def claim_slot(session: Session, name: str, slot: str) -> ExportRun | None:
    """Insert the run row for this slot and commit; None if another run got there first."""
    run = ExportRun(name=name, slot=slot, status="running", attempts=0, files=[])
    session.add(run)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        return None
    return run


def write_files(
    session: Session, schedule: ExportSchedule, directory: Path, stamp: str
) -> list[dict[str, Any]]:
    """The tallies in each format plus a manifest (rows, bytes, SHA-256 of every file)."""
    from app.tally.files import render
    from app.tally.report import row_columns, tally_dict, tally_report

    if schedule.dataset == "cases":
        document, columns, summary = _case_figures(session, schedule)
    else:
        result = tally_report(
            session, schedule.survey, department=schedule.department, group_by=list(schedule.group_by),
            period=schedule.period,
        )  # fmt: skip
        document, columns = tally_dict(result), row_columns(result)
        summary = {"group_by": list(result.group_by), "period": result.period.as_dict(),
                   "responses": result.responses, "quarantined": result.quarantined}  # fmt: skip
    directory.mkdir(parents=True, exist_ok=True)
    files = []
    for fmt in schedule.formats:
        data = render(fmt, document, columns)
        path = directory / f"{schedule.name}-{stamp}.{fmt}"
        tmp = path.with_suffix(path.suffix + ".part")
        tmp.write_bytes(data)
        tmp.replace(path)
        files.append({"file": path.name, "format": fmt, "rows": len(document["rows"]), "bytes": len(data),
                      "sha256": hashlib.sha256(data).hexdigest()})  # fmt: skip
    manifest = {"name": schedule.name, "survey": schedule.survey, **summary, "generated_at": stamp,
                "files": files}  # fmt: skip
    manifest_path = directory / f"{schedule.name}-{stamp}.manifest.json"
    manifest_path.write_text(json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8")
    return files + [{"file": manifest_path.name, "format": "manifest"}]


def _case_figures(session: Session, schedule: ExportSchedule):
    """The follow-up figures of a `dataset = "cases"` schedule: document, columns, manifest summary."""
    from app.cases.figures import case_figures, figures_dict, parse_grouping
    from app.org.departments import get_department, subtree_ids
    from app.org.surveys import get_survey

    survey = get_survey(session, schedule.survey)
    grouping = parse_grouping(schedule.group_by, None if schedule.period is None else str(schedule.period))
    ids = (
        subtree_ids(session, get_department(session, schedule.department).id) if schedule.department else None
    )
    rows, total = case_figures(session, survey.id, department_ids=ids, grouping=grouping)
    return (
        figures_dict(survey.slug, rows, total, grouping),
        list(grouping.columns),
        {
            "dataset": "cases",
            "group_by": list(grouping.dims),
            "period": grouping.period.as_dict(),
            "total": total.as_dict(),
        },
    )


def run_export(session: Session, settings: Settings, name: str, *, slot: str | None = None) -> ExportOutcome:
    """Run schedule `name` for `slot` (default: a manual slot of its own); at most once per slot."""
    schedule = get_schedule(settings, name)
    now = utcnow()
    slot = slot or "manual-" + now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    run = claim_slot(session, name, slot)
    if run is None:
        return ExportOutcome(None, slot)
    stamp = now.strftime("%Y%m%dT%H%M%S%fZ")
    try:
        run.files = write_files(session, schedule, Path(settings.exports.dir) / name, stamp)
    except Exception as exc:
        session.rollback()
        run.status, run.error, run.finished_at = "failed", f"{type(exc).__name__}: {exc}"[:2000], utcnow()
        session.commit()
        raise
    run.status = "retrying" if schedule.destination else "ok"
    if not schedule.destination:
        run.finished_at = utcnow()
    session.commit()
    return ExportOutcome(run, slot, run.files)


# --- pushing ------------------------------------------------------------------------------------------


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """HMAC-SHA256 over `<timestamp>.<body>`, hex, as sent in X-Wxsurvey-Signature (sha256=...)."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def push_body(settings: Settings, run: ExportRun) -> bytes:
    """The pushed document: the run, its manifest entries and each file's content (base64 for XLSX)."""
    import base64

    directory = Path(settings.exports.dir) / run.name
    files = []
    for entry in run.files:
        data = (directory / entry["file"]).read_bytes()
        files.append({**entry, "content_base64": base64.b64encode(data).decode()})
    return json.dumps({"name": run.name, "slot": run.slot, "files": files}, ensure_ascii=False).encode()


def push_run(session: Session, settings: Settings, run_id: int) -> float | None:
    """One push attempt. Returns the delay before the next attempt, or None when done (ok or failed)."""
    run = session.get(ExportRun, run_id)
    if run is None or run.status not in ("retrying", "running"):
        return None
    schedule = get_schedule(settings, run.name)
    run.attempts += 1
    body = push_body(settings, run)
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: sign(settings.exports.push_secret, timestamp, body),
        "X-Wxsurvey-Export": run.name,
        "X-Wxsurvey-Slot": run.slot,
    }
    try:
        reply = requests.post(
            schedule.destination, data=body, headers=headers, timeout=settings.exports.push_timeout
        )
        error = (
            None
            if 200 <= reply.status_code < 300
            else f"HTTP {reply.status_code} from {schedule.destination}"
        )
    except requests.RequestException as exc:
        error = f"{type(exc).__name__}: {exc}"[:2000]
    run.error = error
    if error is None:
        run.status, run.finished_at = "ok", utcnow()
        session.commit()
        return None
    if run.attempts >= settings.exports.push_retries:
        run.status, run.finished_at = "failed", utcnow()
        session.commit()
        return None
    run.status = "retrying"
    session.commit()
    return settings.exports.push_backoff * 2 ** (run.attempts - 1)


def recent_runs(session: Session, name: str | None = None, limit: int = 20) -> list[ExportRun]:
    query = select(ExportRun).order_by(ExportRun.started_at.desc(), ExportRun.id.desc()).limit(limit)
    if name:
        query = query.where(ExportRun.name == name)
    return list(session.scalars(query))


def run_dict(run: ExportRun) -> dict[str, Any]:
    return {
        "name": run.name, "slot": run.slot, "status": run.status, "attempts": run.attempts,
        "started_at": run.started_at.isoformat() if run.started_at else None,
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "files": run.files, "error": run.error,
    }  # fmt: skip
