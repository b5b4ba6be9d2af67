"""Respondent identity: the HMAC key stored instead of the openid, and the scans seen per person.

The raw openid never reaches SQL or an export; only `respondent_key(openid)` does. A scan of a
department's code is remembered in Redis for `survey.scan_window_hours`, so that a submission
with no prior scan can be flagged for review.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from redis import Redis

from app.intake.shards import scan_key, shard_of


def respondent_key(secret: str, openid: str) -> str:
    """HMAC-SHA256 of the openid under survey.respondent_secret, as 64 hex characters."""
    if not openid:
        raise ValueError("empty openid")
    return hmac.new(secret.encode(), openid.encode(), hashlib.sha256).hexdigest()


def _scan_key(key: str, department_code: str, shards: int = 1) -> str:
    """In the department's intake shard: the record script reads it with the done key."""
    return scan_key(shard_of(department_code, shards), key, department_code)


def record_scan(redis: Any, key: str, department_code: str, window_hours: int, shards: int = 1) -> None:
    """Remember that this respondent scanned this department's code (called by the scan handlers)."""
    redis.set(_scan_key(key, department_code, shards), "1", ex=max(1, window_hours) * 3600)


def scanned_recently(redis: Redis, key: str, department_code: str, shards: int = 1) -> bool:
    return bool(redis.exists(_scan_key(key, department_code, shards)))
