"""GET /metrics, read by Prometheus: every process's counters (app/metrics.py; added up from
PROMETHEUS_MULTIPROC_DIR in multiprocess mode) plus gauges read at scrape time from Redis and SQL
(the intake stream, the queues, Redis memory, held responses, the access token), and who may read it.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import REGISTRY, Collector

import app.metrics  # noqa: F401  (defines the counters this process exposes)

log = logging.getLogger(__name__)


class StateCollector(Collector):
    """Gauges read when Prometheus scrapes: never on a citizen's path."""

    def __init__(self, session, redis, raw, shards: int = 1) -> None:
        self.session, self.redis, self.raw = session, redis, raw
        self.shards = shards  # survey.intake_shards: the backlog gauges cover every shard

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield from self._intake()
        yield from self._queues()
        yield from self._redis_memory()
        yield from self._responses()
        yield from self._token()

    def _gauge(self, name: str, doc: str, value: float | None, labels: dict[str, str] | None = None):
        family = GaugeMetricFamily(name, doc, labels=list(labels or {}))
        if value is not None:
            family.add_metric(list((labels or {}).values()), value)
        return family

    def _intake(self) -> Iterator[GaugeMetricFamily]:
        from app.intake.drain import intake_status

        try:
            status = intake_status(self.session, self.redis, self.shards)
        except Exception as exc:  # Redis down: the scrape still answers, the "up" gauge says so
            log.warning("metrics: intake state unavailable (%s)", type(exc).__name__)
            yield self._gauge("wxsurvey_redis_up", "1 when Redis answered this scrape", 0)
            return
        yield self._gauge("wxsurvey_redis_up", "1 when Redis answered this scrape", 1)
        yield self._gauge("wxsurvey_intake_backlog", "Answers queued in the intake stream", status["backlog"])
        yield self._gauge(
            "wxsurvey_intake_pending", "Queued answers handed to a drain, not yet acked", status["pending"]
        )
        yield self._gauge(
            "wxsurvey_intake_oldest_age_seconds",
            "Age of the oldest queued answer (0 when the stream is empty)",
            status["oldest_seconds"] or 0.0,
        )
        yield self._gauge("wxsurvey_intake_dead_letters", "Unparseable entries", status["dead_letters"])

    def _queues(self) -> Iterator[GaugeMetricFamily]:
        from app.ops.health import queue_lag

        try:
            lag = queue_lag(self.raw)
        except Exception:
            return
        waiting = GaugeMetricFamily("wxsurvey_queue_jobs_waiting", "RQ jobs waiting", labels=["queue"])
        oldest = GaugeMetricFamily(
            "wxsurvey_queue_oldest_age_seconds", "Age of the oldest waiting job per queue", labels=["queue"]
        )
        for name, info in lag.items():
            waiting.add_metric([name], info["waiting"])
            oldest.add_metric([name], info["oldest_seconds"] or 0.0)
        yield waiting
        yield oldest

    def _redis_memory(self) -> Iterator[GaugeMetricFamily]:
        try:
            memory = self.redis.info("memory")
        except Exception:
            return
        yield self._gauge("wxsurvey_redis_used_memory_bytes", "Redis used_memory", memory.get("used_memory"))
        yield self._gauge(
            "wxsurvey_redis_maxmemory_bytes", "Redis maxmemory (0 = no limit)", memory.get("maxmemory", 0)
        )

    def _responses(self) -> Iterator[GaugeMetricFamily]:
        from sqlalchemy import func, select

        from app.models import Response

        family = GaugeMetricFamily(
            "wxsurvey_responses_held", "Responses left out of official figures", labels=["status"]
        )
        try:
            rows = dict(
                self.session.execute(
                    select(Response.status, func.count())
                    .where(Response.status.in_(("quarantined", "rejected")))
                    .group_by(Response.status)
                ).all()
            )
            self.session.rollback()
        except Exception as exc:
            self.session.rollback()
            log.warning("metrics: SQL unavailable (%s)", type(exc).__name__)
            yield self._gauge("wxsurvey_database_up", "1 when the database answered this scrape", 0)
            return
        yield self._gauge("wxsurvey_database_up", "1 when the database answered this scrape", 1)
        for status in ("quarantined", "rejected"):
            family.add_metric([status], rows.get(status, 0))
        yield family

    def _token(self) -> Iterator[GaugeMetricFamily]:
        from app.wechat_api import TOKEN_KEY

        try:
            ttl = self.redis.ttl(TOKEN_KEY)
            fetched = self.redis.get(f"wx:api:token_fetches:{time.strftime('%Y%m%d')}")
        except Exception:
            return
        yield self._gauge(
            "wxsurvey_wechat_token_ttl_seconds",
            "Seconds the shared access token has left (0 = none cached)",
            max(0, int(ttl or 0)),
        )
        yield self._gauge(
            "wxsurvey_wechat_token_fetches_today", "Tokens fetched today (limit 2,000)", int(fetched or 0)
        )


def exposition(session, redis, raw, shards: int = 1) -> tuple[bytes, str]:
    """The text Prometheus reads: every process's counters plus the state gauges."""
    counters = REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        counters = CollectorRegistry()
        multiprocess.MultiProcessCollector(counters)
    state = CollectorRegistry()
    state.register(StateCollector(session, redis, raw, shards))
    return generate_latest(counters) + generate_latest(state), CONTENT_TYPE_LATEST


def allowed(settings, headers: Any, remote_addr: str | None) -> bool:
    """With app.metrics_token set, the bearer token must match. Without one, only a loopback or
    private address reaching the app directly may read the metrics: a request forwarded by a proxy
    (X-Forwarded-For) may come from anywhere, so it needs the token."""
    import hmac

    token = settings.app.metrics_token
    if token:
        given = headers.get("Authorization", "")
        return hmac.compare_digest(given.encode(), f"Bearer {token}".encode())
    if headers.get("X-Forwarded-For"):
        return False
    try:
        address = ipaddress.ip_address(remote_addr or "")
    except ValueError:
        return False
    return address.is_loopback or any(address in network for network in INTERNAL)


# Loopback aside, the addresses that may read /metrics without a token: RFC 1918 and IPv6 ULA.
INTERNAL = tuple(
    ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")
)
