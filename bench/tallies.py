# The tallies benchmark: one year of data (1.4 million responses over about 300 departments) pulled
# through GET /api/v1/tallies, against a plain SQL GROUP BY over the raw answers of the same run.
from __future__ import annotations

import random
import statistics
import time
import urllib.request
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any

from bench.harness import Context, Result, Scenario

FULL_RESPONSES = 1_400_000
QUICK_RESPONSES = 20_000
EXTRA_COUNTIES = 40  # with 7 townships each: 25 + 6 + 18 demo units + 40 + 280 = 369 departments
TOWNSHIPS_PER_COUNTY = 7
CHUNK = 20_000
SURVEY = "bench-year"
RESPONSE_COLUMNS = ("id", "idempotency_key", "survey_id", "department_id", "respondent_key", "submitted_at",
                    "received_at", "channel", "status", "meta", "flags")  # fmt: skip
TALLY_COLUMNS = ("channel", "status", "segment_option_id", "question_id", "option_id", "count", "updated_at")
PULLS = (
    ("by_department_question_option", "department,question,option", None),
    ("by_category_month", "category,period", "month"),
)
RAW_SQL = {
    "by_department_question_option": (
        "SELECT r.department_id, a.question_id, a.option_id, count(*) FROM responses r "
        "JOIN answers a ON a.response_id = r.id WHERE r.survey_id = :survey AND r.status = 'counted' "
        "GROUP BY r.department_id, a.question_id, a.option_id"
    ),
    "by_category_month": None,  # filled per dialect below
}


def _raw_month_sql(dialect: str) -> str:
    month = (
        "to_char(r.submitted_at AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM')"
        if dialect == "postgresql"
        else "strftime('%Y-%m', r.submitted_at, '+8 hours')"
    )
    return (
        f"SELECT d.category, {month}, count(*) FROM responses r JOIN departments d ON d.id = r.department_id "
        "WHERE r.survey_id = :survey AND r.status = 'counted' GROUP BY d.category, 2"
    )


def _setup(app, n: int) -> dict[str, Any]:
    """The org chart grown to ~370 units, a survey over all of them, and n responses in bulk."""
    from sqlalchemy import select, text

    from app.accounts.tokens import create_token
    from app.db import db
    from app.models import Department
    from app.org import departments, surveys
    from app.tally.rows import month_counts, response_tally_keys

    with app.app_context():
        session = db.session
        rows = []
        for c in range(EXTRA_COUNTIES):
            code = f"K{c:02d}"
            rows.append({"code": code, "name": f"测试县{c}", "category": "县区", "level": "county"})
            for t in range(TOWNSHIPS_PER_COUNTY):
                rows.append({"code": f"{code}T{t}", "name": f"测试县{c}乡镇{t}", "category": "乡镇",
                             "level": "township", "parent_code": code})  # fmt: skip
        report = departments.import_departments(session, rows, actor="bench")
        assert report.ok, report.errors[:3]
        year = date.today().year
        survey = surveys.create_survey(
            session, slug=SURVEY, template="department_satisfaction", period_start=date(year, 1, 1),
            period_end=date(year, 12, 31),
        )  # fmt: skip
        surveys.open_survey(session, SURVEY)
        token = create_token(session, "bench").secret
        session.commit()
        dept_ids = list(session.scalars(select(Department.id)))
        questions = [q for q in survey.questions if q.kind == "single"]
        text_q = next(q.id for q in survey.questions if q.kind == "text")
        segment = next(q.id for q in survey.questions if q.segment)
        dialect = session.get_bind().dialect.name

        conn = session.connection()
        load = _copy_loader(conn) if dialect == "postgresql" else _executemany_loader(conn)

        rng = random.Random(5)
        start = datetime(year, 1, 1, tzinfo=UTC)
        tally: Counter = Counter()
        answer_id = 0
        began = time.monotonic()
        for base in range(0, n, CHUNK):
            responses, answers = [], []
            for rid in range(base + 1, min(base + CHUNK, n) + 1):
                dept = rng.choice(dept_ids)
                at = start + timedelta(seconds=rng.randrange(365 * 86400))
                status = "counted" if rng.random() < 0.97 else "quarantined"
                channel = "wechat" if rng.random() < 0.9 else "web"
                triples = []
                for q in questions:
                    option = q.options[min(int(rng.random() ** 2 * len(q.options)), len(q.options) - 1)].id
                    answer_id += 1
                    answers.append((answer_id, rid, q.id, option, None))
                    triples.append((q.id, option, False))
                if rng.random() < 0.1:
                    answer_id += 1
                    answers.append((answer_id, rid, text_q, None, "希望提高办事效率"))
                    triples.append((text_q, None, True))
                stamp = at if dialect == "postgresql" else at.strftime("%Y-%m-%d %H:%M:%S.%f")
                responses.append((rid, f"bench-{rid}", survey.id, dept, f"{rid:064x}", stamp, stamp, channel,
                                  status, "{}", "[]"))  # fmt: skip
                tally.update(response_tally_keys(survey_id=survey.id, department_id=dept, submitted_at=at,
                                                 channel=channel, status=status, answers=triples,
                                                 segment_question_id=segment))  # fmt: skip
            load("responses", RESPONSE_COLUMNS, responses)
            load("answers", ("id", "response_id", "question_id", "option_id", "text"), answers)
        generated = time.monotonic()
        now = datetime.now(UTC)
        now_value = now if dialect == "postgresql" else now.strftime("%Y-%m-%d %H:%M:%S.%f")
        as_day = (lambda d: d) if dialect == "postgresql" else date.isoformat
        tally_rows = [(*k[:2], as_day(k[2]), *k[3:], c, now_value) for k, c in tally.items()]
        load("tally_rows", ("survey_id", "department_id", "day", *TALLY_COLUMNS), tally_rows)
        month_rows = [(*k[:2], as_day(k[2]), *k[3:], c, now_value) for k, c in month_counts(tally).items()]
        load("tally_months", ("survey_id", "department_id", "month", *TALLY_COLUMNS), month_rows)
        session.commit()
        if dialect == "postgresql":  # what autovacuum does to a table this size: statistics, visibility map
            with session.get_bind().connect() as admin:
                admin.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))
        else:
            session.execute(text("ANALYZE"))
            session.commit()
        return {"survey_id": survey.id, "token": token, "departments": len(dept_ids), "answers": answer_id,
                "tally_rows": len(tally_rows), "tally_months": len(month_rows),
                "raw_load_seconds": round(generated - began, 1),
                "load_seconds": round(time.monotonic() - began, 1),
                "dialect": dialect}  # fmt: skip


def _executemany_loader(conn):
    """Rows into a table through the DBAPI's executemany (SQLite)."""

    def load(table: str, columns: tuple[str, ...], rows: list[tuple]) -> None:
        marks = ", ".join("?" * len(columns))
        conn.exec_driver_sql(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)

    return load


def _copy_loader(conn):
    """Rows into a table through COPY FROM STDIN (PostgreSQL, psycopg 3)."""
    raw = conn.connection.driver_connection

    def load(table: str, columns: tuple[str, ...], rows: list[tuple]) -> None:
        with raw.cursor() as cursor, cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)

    return load


def _time(fn, repeat: int) -> float:
    fn()  # warm caches, as a platform pulling every day would find them
    samples = []
    for _ in range(repeat):
        began = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - began)
    return statistics.median(samples)


def run_tallies(ctx: Context) -> list[Result]:
    n = QUICK_RESPONSES if ctx.quick else FULL_RESPONSES
    repeat = 3 if ctx.quick else 5
    results = []
    with ctx.stack("tallies", rq_workers=0) as stack:
        app = stack.app()
        info = _setup(app, n)
        from sqlalchemy import text

        from app.db import db

        for name, group_by, period in PULLS:
            query = f"survey={SURVEY}&group_by={group_by}&limit=10000" + (
                f"&period={period}" if period else ""
            )
            url = f"{stack.base_url}/api/v1/tallies?{query}"

            def pull(url=url):
                request = urllib.request.Request(url, headers={"Authorization": f"Bearer {info['token']}"})
                with urllib.request.urlopen(request, timeout=300) as reply:
                    return reply.read()

            sql = RAW_SQL[name] or _raw_month_sql(info["dialect"])

            def raw(sql=sql):
                with app.app_context():
                    return db.session.execute(text(sql), {"survey": info["survey_id"]}).all()

            api_s, raw_s = _time(pull, repeat), _time(raw, repeat)
            results.append(
                Result(
                    f"tallies.{info['dialect']}.api_{name}_ms",
                    round(api_s * 1000, 1),
                    "ms",
                    baseline=round(raw_s * 1000, 1),
                    baseline_name="plain SQL GROUP BY over the raw answers",
                    target="ratio < 1 (API faster)",
                    ok=api_s < raw_s,
                    detail={"responses": n, **{k: v for k, v in info.items() if k != "token"}},
                )  # fmt: skip
            )
    return results


SCENARIOS = [Scenario("tallies.api_vs_raw", run_tallies)]
