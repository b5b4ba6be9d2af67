# Follows and unfollows of the official account, remembered per respondent key for a day or two:
# the webhook's subscribe/unsubscribe handlers write them, the detector reads them (bought followers
# follow, rate and leave).
from __future__ import annotations

from redis import Redis

from app.intake.shards import all_shards, tag
from app.integrity.signals import LEFT_AFTER_MS

TTL = 2 * 86400  # seconds
WATCH = "wx:ig:watch"  # answers by new followers, scored by answer time: unfollows looked for a day


def followed_key(rkey: str, shard: int = 0) -> str:
    """When this person last followed the account: the intake script copies it onto the stream.
    One copy per intake shard, in the shard's slot (the script reads it with the shard's keys)."""
    return f"wx:fw:{tag(shard)}:{rkey}"


def _left(rkey: str) -> str:
    return f"wx:left:{rkey}"


def record_follow(effects, rkey: str, ms: int, shards: int = 1) -> None:
    """A subscribe event (effects: Redis, or the webhook's DeferredWrites): written to every
    intake shard, since the person may answer for a department in any of them."""
    for shard in all_shards(shards):
        effects.set(followed_key(rkey, shard), ms, ex=TTL)


def record_leave(effects, rkey: str, ms: int) -> None:
    """An unsubscribe event."""
    effects.set(_left(rkey), ms, ex=TTL)


def watch(redis: Redis, facts: list) -> None:
    """Answers by people who had just followed: the sweep looks for their unfollow for a day."""
    pending = {
        f"{f.survey_id}:{f.department_id}:{f.respondent_key}": f.ms for f in facts if f.left_ms is None
    }
    if pending:
        redis.zadd(WATCH, pending)


def leavers(redis: Redis, now_ms: int) -> list[tuple[int, int, str, int, int]]:
    """(survey, department, respondent key, answered ms, left ms) of watched answers whose person
    has left; forgets those and any answer older than a day."""
    redis.zremrangebyscore(WATCH, "-inf", now_ms - LEFT_AFTER_MS - 1)
    members: list[tuple[str, float]] = list(redis.zrange(WATCH, 0, -1, withscores=True))  # type: ignore[arg-type]
    if not members:
        return []
    pipe = redis.pipeline(transaction=False)  # not MGET: on a cluster the keys span slots
    for member, _ in members:
        pipe.get(_left(str(member).rsplit(":", 1)[1]))
    lefts = pipe.execute()
    out = []
    for (member, answered), left in zip(members, lefts, strict=True):
        if left is None:
            continue
        survey_id, dept_id, rkey = str(member).split(":")
        out.append((int(survey_id), int(dept_id), rkey, int(answered), int(left)))
    if out:
        redis.zrem(WATCH, *[f"{s}:{d}:{r}" for s, d, r, _, _ in out])
    return out
