"""Backup and restore: the SQL database plus what only Redis holds (answers still queued in the intake
streams, the one-per-person marks, the cache of permanent QR tickets) in one file.

Order makes it consistent without stopping anything: Redis is read FIRST, then SQL is copied.
An answer drained in between is then in both parts, and the restored drain's idempotent insert
counts it once; read the other way round it would be in neither. The file is a tar archive:
`manifest.json`, `database.sqlite` (SQLite's online backup API) or `database.pgdump` (pg_dump's
custom format), and `redis.jsonl.gz` (one JSON object per stream entry, mark or ticket).
"""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from redis import Redis
from sqlalchemy import Engine, inspect, text
from sqlalchemy.engine import make_url

from app.errors import Invalid, Unavailable

FORMAT = "wxsurvey-backup"
VERSION = 1
STREAM_PATTERN = "wx:intake*"  # the intake stream(s), shards and the dead letters
MARK_PATTERN = "wx:done:*"
TICKETS_KEY = "wx:api:qr_tickets"
VALUED_TABLES = ("departments", "surveys", "responses", "admin_users")  # "empty" = none of these
PAGE = 5000


@dataclass
class BackupReport:
    path: Path
    dialect: str
    queued: int
    marks: int
    tickets: int
    bytes: int
    revision: str | None

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "path": str(self.path)}


# --- Redis ---------------------------------------------------------------------------------------


def _scan(redis: Redis, pattern: str, kind: str | None = None) -> Iterator[str]:
    for key in redis.scan_iter(match=pattern, count=1000, _type=kind):
        yield key.decode() if isinstance(key, bytes) else key


def _redis_records(redis: Redis) -> Iterator[dict[str, Any]]:
    """Every queued stream entry, mark and ticket, as JSON-ready dicts (raw bytes as latin-1 text)."""

    def s(value: Any) -> str:
        return value.decode("latin-1") if isinstance(value, bytes) else str(value)

    for stream in sorted(_scan(redis, STREAM_PATTERN, "stream")):
        start = "-"
        while True:
            entries: list[Any] = redis.xrange(stream, min=start, count=PAGE) or []
            for entry_id, fields in entries:
                yield {
                    "t": "entry",
                    "k": stream,
                    "id": s(entry_id),
                    "f": {s(k): s(v) for k, v in (fields or {}).items()},
                }
            if len(entries) < PAGE:
                break
            start = "(" + s(entries[-1][0])
    keys = list(_scan(redis, MARK_PATTERN))
    for i in range(0, len(keys), PAGE):
        chunk = keys[i : i + PAGE]
        pipe = redis.pipeline(transaction=False)
        for key in chunk:
            pipe.get(key)
            pipe.pttl(key)
        replies = pipe.execute()
        for key, value, ttl in zip(chunk, replies[::2], replies[1::2], strict=True):
            if value is not None:
                yield {"t": "mark", "k": key, "v": s(value), "ttl": int(ttl) if ttl and ttl > 0 else None}
    for scene, ticket in redis.hgetall(TICKETS_KEY).items():
        yield {"t": "ticket", "k": s(scene), "v": s(ticket)}


def _redis_is_empty(redis: Redis) -> bool:
    for pattern in (STREAM_PATTERN, MARK_PATTERN):
        if next(iter(_scan(redis, pattern)), None) is not None:
            return False
    return not redis.exists(TICKETS_KEY)


def _restore_redis(redis: Redis, lines: Iterator[bytes]) -> dict[str, int]:
    counts = {"entry": 0, "mark": 0, "ticket": 0}
    pipe = redis.pipeline(transaction=False)
    for line in lines:
        record = json.loads(line)
        kind, key = record["t"], record["k"]
        enc = {"encoding": "latin-1"}
        if kind == "entry":
            fields = {k.encode("latin-1"): v.encode("latin-1") for k, v in record["f"].items()}
            pipe.xadd(key, fields, id=record["id"])
        elif kind == "mark":
            value = record["v"].encode(**enc)
            pipe.set(key, value, px=record["ttl"] or None)
        elif kind == "ticket":
            pipe.hset(TICKETS_KEY, key.encode(**enc), record["v"].encode(**enc))
        else:
            raise Invalid(f"backup file: unknown record type {kind!r}", field="file")
        counts[kind] += 1
        if len(pipe) >= PAGE:
            pipe.execute()
    pipe.execute()
    return counts


# --- SQL -------------------------------------------------------------------------------------------


def _libpq(engine: Engine) -> tuple[str, dict[str, str]]:
    """A libpq URI for pg_dump / pg_restore, and the environment carrying its password (not argv)."""
    url = engine.url
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    return url.set(drivername="postgresql", password=None).render_as_string(hide_password=False), env


def _pg_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise Unavailable(f"{name} is not installed (apt-get install postgresql-client)")
    return path


def _last_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1] if lines else "no message"


def _schema(engine: Engine) -> str:
    with engine.connect() as conn:
        return str(conn.execute(text("SELECT current_schema()")).scalar())


def _revision(engine: Engine) -> str | None:
    if not inspect(engine).has_table("alembic_version"):
        return None
    with engine.connect() as conn:
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def _dump_sql(engine: Engine, directory: Path) -> Path:
    if engine.dialect.name == "sqlite":
        target = directory / "database.sqlite"
        source = sqlite3.connect(str(make_url(str(engine.url)).database))
        copy = sqlite3.connect(str(target))
        try:
            with copy:
                source.backup(copy)  # a consistent copy, page by page, while others keep writing
        finally:
            copy.close()
            source.close()
        return target
    target = directory / "database.pgdump"
    uri, env = _libpq(engine)
    argv = [_pg_tool("pg_dump"), "--format=custom", "--no-owner", "--no-privileges", f"--file={target}"]
    schema = _schema(engine)
    if schema != "public":
        argv.append(f"--schema={schema}")
    result = subprocess.run([*argv, f"--dbname={uri}"], env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise Unavailable(f"pg_dump failed: {_last_line(result.stderr)}")
    return target


def _sql_is_empty(engine: Engine) -> bool:
    tables = set(inspect(engine).get_table_names())
    with engine.connect() as conn:
        for table in VALUED_TABLES:
            if table in tables and conn.execute(text(f"SELECT 1 FROM {table} LIMIT 1")).first():
                return False
    return True


def _restore_sql(engine: Engine, dump: Path, dialect: str) -> None:
    if dialect != engine.dialect.name:
        raise Invalid(
            f"the backup is of a {dialect} database; database.url is {engine.dialect.name}", field="file"
        )
    engine.dispose()
    if dialect == "sqlite":
        path = Path(str(make_url(str(engine.url)).database))
        path.parent.mkdir(parents=True, exist_ok=True)
        source = sqlite3.connect(str(dump))
        target = sqlite3.connect(str(path))
        try:
            with target:
                source.backup(target)
        finally:
            target.close()
            source.close()
        return
    uri, env = _libpq(engine)
    argv = [_pg_tool("pg_restore"), "--clean", "--if-exists", "--no-owner", "--no-privileges",
            "--single-transaction", "--exit-on-error", f"--dbname={uri}", str(dump)]  # fmt: skip
    result = subprocess.run(argv, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise Unavailable(f"pg_restore failed: {_last_line(result.stderr)}")


# --- the file ------------------------------------------------------------------------------------


def backup(engine: Engine, redis: Redis, out: Path) -> BackupReport:
    """Write a backup file at `out` (atomically, mode 0600): Redis first, then SQL."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="wxsurvey-backup-", dir=out.parent) as tmp:
        work = Path(tmp)
        counts = {"entry": 0, "mark": 0, "ticket": 0}
        with gzip.open(work / "redis.jsonl.gz", "wb", compresslevel=5) as fh:
            for record in _redis_records(redis):
                fh.write(json.dumps(record, ensure_ascii=False).encode() + b"\n")
                counts[record["t"]] += 1
        dump = _dump_sql(engine, work)
        revision = _revision(engine)
        manifest: dict[str, Any] = {
            "format": FORMAT,
            "version": VERSION,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "dialect": engine.dialect.name,
            "database": dump.name,
            "revision": revision,
            "queued": counts["entry"],
            "marks": counts["mark"],
            "tickets": counts["ticket"],
        }
        partial = out.with_name(out.name + ".partial")
        with tarfile.open(partial, "w") as tar:
            data = json.dumps(manifest, indent=2).encode()
            info = tarfile.TarInfo("manifest.json")
            info.size, info.mtime = len(data), int(time.time())
            tar.addfile(info, io.BytesIO(data))
            tar.add(dump, arcname=dump.name)
            tar.add(work / "redis.jsonl.gz", arcname="redis.jsonl.gz")
        os.chmod(partial, 0o600)
        os.replace(partial, out)
    return BackupReport(out, engine.dialect.name, counts["entry"], counts["mark"], counts["ticket"],
                        out.stat().st_size, revision)  # fmt: skip


def read_manifest(path: Path) -> dict[str, Any]:
    try:
        with tarfile.open(path, "r") as tar:
            member = tar.extractfile("manifest.json")
            manifest = json.load(member) if member else None
    except (OSError, tarfile.TarError, KeyError, ValueError):
        manifest = None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise Invalid(f"{path}: not a wxsurvey backup file", field="file")
    if manifest.get("database") not in ("database.sqlite", "database.pgdump"):
        raise Invalid(f"{path}: a wxsurvey backup without its database", field="file")
    if int(manifest.get("version", 0)) > VERSION:
        raise Invalid(f"{path}: made by a newer wxsurvey (format {manifest['version']})", field="file")
    return manifest


def restore(engine: Engine, redis: Redis, path: Path) -> dict[str, Any]:
    """Restore a backup into an EMPTY database and Redis, then migrate to this version's schema."""
    from app.migrate import upgrade

    path = Path(path)
    manifest = read_manifest(path)
    if not _sql_is_empty(engine):
        raise Invalid(
            "the database is not empty (departments, surveys, responses or admins): nothing restored",
            field="database",
        )
    if not _redis_is_empty(redis):
        raise Invalid(
            "Redis is not empty (queued answers, marks or QR tickets): nothing restored", field="redis"
        )
    with tempfile.TemporaryDirectory(prefix="wxsurvey-restore-") as tmp, tarfile.open(path, "r") as tar:
        tar.extractall(tmp, members=[tar.getmember(manifest["database"]), tar.getmember("redis.jsonl.gz")],
                       filter="data")  # fmt: skip
        _restore_sql(engine, Path(tmp) / manifest["database"], manifest["dialect"])
        upgrade(engine)  # a backup of an older version: its schema brought up to this one
        with gzip.open(Path(tmp) / "redis.jsonl.gz", "rb") as fh:
            counts = _restore_redis(redis, iter(fh))
    return {"queued": counts["entry"], "marks": counts["mark"], "tickets": counts["ticket"],
            "revision": manifest.get("revision"), "created_at": manifest.get("created_at")}  # fmt: skip
