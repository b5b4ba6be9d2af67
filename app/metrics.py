"""The Prometheus counters and histograms, bumped in-process by web, workers and scheduler (no Redis
round trip: with PROMETHEUS_MULTIPROC_DIR set, prometheus_client's multiprocess mode keeps them in
per-process files that /metrics adds up, app/ops/prometheus.py). Infrastructure like app.db: the
domain and the edges both count here.

PROMETHEUS_MULTIPROC_DIR must be in the environment before prometheus_client is first imported:
the systemd units set it, `wxsurvey run` sets it for its children (var/metrics).
"""

from __future__ import annotations

import os
import time

from prometheus_client import Counter, Histogram

if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):  # a missing directory would stop every process at import
    os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)

SUBMISSIONS = Counter(
    "wxsurvey_submissions_total",
    "Questionnaire submissions by outcome (accepted, resent, already, refused), the refusal's reason, "
    "and whether Redis was down so the answer went straight to SQL (degraded)",
    ["outcome", "reason", "degraded"],
)
ACCEPTED = SUBMISSIONS.labels("accepted", "", "false")  # the hot path's child, bound once
LOOK_UPS_GIVEN_UP = Counter(
    "wxsurvey_answered_look_ups_given_up_total",
    "Earlier-answer look-ups given up, the form served without them (the answer repeats the check): "
    "the database slow to answer (timeout: a lock, a long statement) or unreachable",
    ["reason"],
)
WEBHOOK = Counter("wxsurvey_webhook_deliveries_total", "WeChat deliveries to /wechat by kind", ["kind"])
WEBHOOK_SECONDS = Histogram(
    "wxsurvey_webhook_seconds",
    "Time to answer a WeChat delivery (WeChat retries after 5 s)",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
DRAIN_LAG = Histogram(
    "wxsurvey_drain_lag_seconds",
    "Per drained batch: from the thank-you page of its oldest answer to the answer's commit in SQL",
    buckets=(0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0),
)
DRAIN_BATCH = Histogram(
    "wxsurvey_drain_batch_size",
    "Answers per drain transaction",
    buckets=(1, 5, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000),
)
DRAINED = Counter(
    "wxsurvey_drained_total", "Stream entries handled by the drain by result", ["result"]
)  # inserted, duplicate, malformed
EXPORTS = Counter("wxsurvey_export_runs_total", "Scheduled export runs and pushes by result", ["result"])
WECHAT_API = Counter(
    "wxsurvey_wechat_api_calls_total", "WeChat API calls by endpoint and result", ["endpoint", "result"]
)
TOKEN_REFRESHES = Counter(
    "wxsurvey_wechat_token_refreshes_total",
    "Access tokens fetched from WeChat by trigger (scheduled ahead of expiry, missing, stale)",
    ["trigger"],
)


# Refusals are counted by these fields (the survey's state, a forged or stale form token, a bad
# channel); any other by its error's code (invalid answers, unavailable).
REFUSAL_FIELDS = ("state", "form_token", "channel")


def count_refusal(exc) -> None:
    """A submission refused (a DomainError answered by the questionnaire view)."""
    reason = exc.field if exc.field in REFUSAL_FIELDS else exc.code
    SUBMISSIONS.labels("refused", reason, "false").inc()


def count_drained(entry_ids: list[str], inserted: int, duplicates: int, malformed: int) -> None:
    """One batch committed and acknowledged: its size, results, and the lag of its oldest entry
    (a stream id is the millisecond its answer was queued, i.e. its thank-you page)."""
    if not entry_ids:
        return
    DRAIN_BATCH.observe(len(entry_ids))
    for result, n in (("inserted", inserted), ("duplicate", duplicates), ("malformed", malformed)):
        if n:
            DRAINED.labels(result).inc(n)
    oldest_ms = min(_stamp_ms(i) for i in entry_ids[:1] + entry_ids[-1:])
    DRAIN_LAG.observe(max(0.0, time.time() - oldest_ms / 1000))


def _stamp_ms(entry_id: str | bytes) -> int:
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return int(text.split("-", 1)[0])
