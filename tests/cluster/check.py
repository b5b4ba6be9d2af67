"""`python -m tests.cluster.check ACKS` inside the data centre (its WXSURVEY_* environment): the
intake's state, or with ACKS the verdict on the acknowledged answers, as one JSON line."""

from __future__ import annotations

import json
import sys
from collections import Counter

from sqlalchemy import func, select


def main() -> None:
    from app import create_app
    from app.db import db
    from app.intake.drain import intake_status
    from app.intake.respondents import respondent_key
    from app.models import ExportRun, Response
    from app.redis_store import redis_store

    app = create_app()
    with app.app_context():
        settings = app.config["SETTINGS"]
        status = intake_status(db.session, redis_store.client, settings.survey.intake_shards)
        report: dict = {"backlog": status["backlog"], "pending": status["pending"]}
        if len(sys.argv) > 1:
            acked = [line.split()[1] for line in open(sys.argv[1]) if not line.split()[1].startswith("-")]
            key_of = {openid: respondent_key(settings.survey.respondent_secret, openid) for openid in acked}
            keys = set(key_of.values())
            grouped = select(Response.respondent_key, func.count()).group_by(Response.respondent_key)
            rows = Counter({key: count for key, count in db.session.execute(grouped)})
            via = Counter(
                (row.meta or {}).get("via", "stream") for row in db.session.scalars(select(Response))
            )
            runs = db.session.execute(
                select(ExportRun.name, ExportRun.slot, func.count()).group_by(ExportRun.name, ExportRun.slot)
            ).all()
            report.update(
                acknowledged=len(acked),
                distinct_acknowledged=len(keys),
                in_sql=sum(1 for k in keys if rows.get(k, 0) >= 1),
                lost=sum(1 for k in keys if rows.get(k, 0) == 0),
                doubled=sum(1 for k in keys if rows.get(k, 0) > 1),
                lost_ids=[o for o, k in key_of.items() if rows.get(k, 0) == 0][:1000],
                doubled_ids=[o for o, k in key_of.items() if rows.get(k, 0) > 1][:1000],
                rows=sum(rows.values()),
                via=dict(via),
                export_slots=len(runs),
                export_slots_run_twice=sum(1 for r in runs if r[2] > 1),
                token_fetches=int(redis_store.client.get("wx:sim:token_fetches") or 0),
                redis_masters=_redis_totals(redis_store.client),
                sql_bytes_per_response=_sql_bytes(db.session, sum(rows.values())),
            )
        print(json.dumps(report))


def _redis_totals(client) -> dict:
    """Commands and network bytes the cluster's masters handled since they started."""
    totals = {"commands": 0, "net_input_bytes": 0, "net_output_bytes": 0, "used_memory": 0}
    for node in client.get_primaries():
        info = node.redis_connection.info()
        totals["commands"] += int(info["total_commands_processed"])
        totals["net_input_bytes"] += int(info["total_net_input_bytes"])
        totals["net_output_bytes"] += int(info["total_net_output_bytes"])
        totals["used_memory"] += int(info["used_memory"])
    return totals


def _sql_bytes(session, responses: int) -> float | None:
    """PostgreSQL bytes (tables and indexes) of responses, answers and tally rows per response."""
    from sqlalchemy import text

    if session.get_bind().dialect.name != "postgresql" or not responses:
        return None
    size = session.scalar(
        text(
            "SELECT pg_total_relation_size('responses') + pg_total_relation_size('answers')"
            " + pg_total_relation_size('tally_rows')"
        )
    )
    return round(size / responses, 1)


if __name__ == "__main__":
    main()
