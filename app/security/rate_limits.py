# Rate limits counted in Redis: per IP prefix on submissions and console sign-ins, per token on the
# API, per openid on the webhook. Set in [limits]; a campaign's normal peak is never near them.
"""Fixed-window counters: key `wx:rl:<kind>:<subject>:<window number>`, one INCR per request.

The submission's counter is folded into the record script (app.intake.record) and the webhook's into
its commit script (app.wechat.delivery), so neither hot path pays a second round trip; sign-ins
and the API pipeline INCR and EXPIRE through `hit`. Redis unreachable: the limit is not applied
(the submission then goes straight to SQL, as it would anyway).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from redis import Redis
from redis.exceptions import RedisError

from app.errors import TooMany

log = logging.getLogger(__name__)

KINDS = {  # kind -> the [limits] key that sets it
    "submit": "submissions_per_prefix",
    "login": "logins_per_prefix",
    "api": "api_per_token",
    "webhook": "webhook_per_openid",
}
MESSAGES = {
    "submit": "提交得太频繁了，请稍等一会儿再试，感谢您的耐心。",
    "login": "登录尝试太频繁，请稍等一会儿再试。",
    "api": "too many requests for this token; retry after the Retry-After seconds",
    "webhook": "",
}


@dataclass(frozen=True)
class Limit:
    kind: str
    allowed: int  # requests per window and subject
    window: int  # seconds

    def key(self, subject: str, now: float, tag: str = "") -> str:
        """`tag`: a Redis Cluster hash tag, putting the counter in the slot of the script it runs in
        (the submission's intake shard, the webhook's `{wh}`): then one counter per shard."""
        where = f"{tag}:" if tag else ""
        return f"wx:rl:{where}{self.kind}:{subject}:{int(now) // self.window}"

    @property
    def ttl(self) -> int:
        return self.window + 1

    def retry_after(self, now: float) -> int:
        return max(1, self.window - int(now) % self.window)

    def refusal(self, now: float) -> TooMany:
        return TooMany(MESSAGES[self.kind], retry_after=self.retry_after(now))


def limit_for(settings, kind: str) -> Limit | None:
    """The limit of this kind, or None when it is switched off (0)."""
    allowed = int(getattr(settings.limits, KINDS[kind]))
    return Limit(kind, allowed, int(settings.limits.window)) if allowed > 0 else None


def hit(redis: Redis, limit: Limit | None, subject: str | None, now: float | None = None) -> None:
    """Count one request of `subject`; raise TooMany (429, Retry-After) past the limit."""
    if limit is None or not subject:
        return
    now = time.time() if now is None else now
    key = limit.key(subject, now)
    try:
        pipe = redis.pipeline(transaction=False)
        pipe.incr(key)
        pipe.expire(key, limit.ttl)
        count, _ = pipe.execute()
    except RedisError as exc:
        log.warning("rate limit %s not applied: Redis unreachable (%s)", limit.kind, type(exc).__name__)
        return
    if int(count) > limit.allowed:
        raise limit.refusal(now)
