# Intake: a citizen's submission checked against the survey's frozen questions, held to one per
# respondent per department per survey atomically in Redis, and queued on a stream for the drain.
"""The rules, in one place:

- One response per (survey, department, respondent). Redis decides first: a Lua script sets
  `wx:done:<survey>:<department>:<respondent key>` and XADDs the response to the `wx:intake`
  stream in one atomic step, so two simultaneous submissions by one person cannot both pass.
  SQL backs it with a unique constraint: anything Redis let through twice (after its data
  was lost, say) is dropped by the drain's ON CONFLICT DO NOTHING, never counted twice.
  The done key lives until the survey's period ends (at most DONE_TTL_CAP); after that the
  questionnaire page asks SQL whether the person already answered.
- Idempotency: the form carries a signed token; the response's idempotency key is
  SHA-256(respondent key : token), so a resent or double-clicked form is recognised (the
  citizen sees "thank you" again) and two people can never share a key.
- Integrity flags (stored in `Response.flags`, never a rejection): `straightline` (every
  scored question given the same option, when there are at least
  survey.straightline_min_questions of them), `no_scan` (no scan of this department's code by
  this person within survey.scan_window_hours), `too_fast` (completed in under FAST_MS).
  None of them quarantines by itself: a satisfied citizen ticks 非常满意 everywhere, and the
  dev/web channels never scan. QUARANTINE_FLAGS (app.intake.store) names the flags that do
  put a response under review (`status = "quarantined"`, left out of the official figures); it
  is empty, so all responses are counted, and reviewers (the console) move flagged ones by hand.
- Durable acknowledgements (`redis.ack_replicas` = R > 0): the script is followed by WAIT R on
  the same connection; when fewer than R replicas confirm within `redis.ack_timeout_ms`, the
  response is also written straight to SQL before the thank-you page (a failover could lose it
  from Redis), and the drain of its stream entry later inserts nothing (idempotency key). If SQL
  is down too, the citizen is thanked on the master's word alone, and the log says so.
- Shards (`survey.intake_shards`, app.intake.shards): the keys of one submission carry its
  department's shard tag, so the script's four keys share one Redis Cluster slot.
- Degraded mode: when Redis cannot be reached the response is written straight to SQL (the
  unique constraint still holds one per person), logged, and reported by /readyz; when SQL
  is down, the stream keeps buffering and the drain catches up when it returns.

The response's wire form on the stream and the SQL writer the drain uses live in
app/intake/store.py.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, cast

from redis import Redis
from redis.exceptions import RedisError
from sqlalchemy import Engine, bindparam, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from app import clock
from app.cases.opening import followup_request
from app.db import held_reads, ran_out_of_time
from app.errors import Conflict, Invalid, Unavailable
from app.intake import shards as shard_keys
from app.intake.forms import STATE_MESSAGES, DepartmentInfo, SurveyForm, read_form_token, refusal
from app.intake.respondents import _scan_key, respondent_key
from app.intake.store import Submission, write_responses
from app.intake.validation import FAST_MS, ip_prefix, parse_answers, straightlined, user_agent_class
from app.integrity.facts import answer_facts
from app.metrics import ACCEPTED, LOOK_UPS_GIVEN_UP, SUBMISSIONS
from app.models import Response
from app.redis_store import ScriptRunner
from app.security.rate_limits import Limit, limit_for

if TYPE_CHECKING:
    from app.config import Settings

log = logging.getLogger(__name__)

STREAM = shard_keys.stream_key(0)  # the stream of shard 0, the only one with survey.intake_shards = 1
DEAD_LETTERS = "wx:intake:dead"
DRAIN_FLAG = shard_keys.drain_flag_key(0)
DRAIN_FLAG_TTL = 10  # seconds: at most one drain job is enqueued per this interval by submissions
DONE_TTL_CAP = timedelta(days=35)
CHANNELS = ("wechat", "dev", "web")
# KEYS (one shard's, one slot): done key, stream, scan key, drain flag, follow key[, rate-limit
# counter]. ARGV: done value, done ttl, payload, flag ttl[, allowed per window, counter ttl].
# Returns {0, prior done value}, {1, stream id, 1 if a drain job should be enqueued, 1 if the
# person scanned the department's code}, or {2} past the rate limit (nothing stored).
# The entry carries `ns` (no scan before it) and `fw` (when the person followed the account, if lately).
RECORD_SCRIPT = """
if KEYS[6] then
  local count = redis.call('INCR', KEYS[6])
  if count == 1 then redis.call('EXPIRE', KEYS[6], tonumber(ARGV[6])) end
  if count > tonumber(ARGV[5]) then return {2} end
end
local prior = redis.call('GET', KEYS[1])
if prior then return {0, prior} end
redis.call('SET', KEYS[1], ARGV[1], 'EX', tonumber(ARGV[2]))
local scanned = redis.call('EXISTS', KEYS[3])
local followed = KEYS[5] and redis.call('GET', KEYS[5])
local id
if followed then
  id = redis.call('XADD', KEYS[2], '*', 'p', ARGV[3], 'ns', 1 - scanned, 'fw', followed)
else
  id = redis.call('XADD', KEYS[2], '*', 'p', ARGV[3], 'ns', 1 - scanned)
end
local kick = redis.call('SET', KEYS[4], '1', 'NX', 'EX', tonumber(ARGV[4]))
if kick then return {1, id, 1, scanned} end
return {1, id, 0, scanned}
"""
RECORD = ScriptRunner(RECORD_SCRIPT)


# --- recording a submission -----------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """accepted: new; resent: the same form again (thank again); already: answered before."""

    kind: str
    submitted_at: datetime
    degraded: bool = False
    drain_wanted: bool = False  # the caller enqueues a drain job (the domain enqueues nothing)
    shard: int = 0  # the intake shard whose drain is wanted
    unreplicated: bool = False  # fewer replicas than redis.ack_replicas confirmed: also in SQL


class _Degraded:
    """When this process last had to write around Redis (for logs and /readyz)."""

    since: float | None = None
    last: float | None = None
    direct_writes: int = 0
    unreplicated: int = 0  # answers written to SQL because too few replicas confirmed them


degraded = _Degraded()


def done_key(survey_id: int, department_id: int, rkey: str, code: str = "", shards: int = 1) -> str:
    """The one-per-person key of (survey, department, respondent), in the department's shard."""
    return shard_keys.done_key(shard_keys.shard_of(code, shards), survey_id, department_id, rkey)


def _done_ttl(form: SurveyForm, now: datetime) -> int:
    end = datetime.combine(form.period_end + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    return max(3600, int(min(end - now, DONE_TTL_CAP).total_seconds()))


# When a respondent answered a pair: a Core statement built once (the questionnaire asks it for
# every new citizen; building and ORM-compiling it each time cost more than the query).
_responses = Response.__table__.c
_ANSWERED_AT = select(_responses.submitted_at).where(
    _responses.survey_id == bindparam("survey"),
    _responses.department_id == bindparam("department"),
    _responses.respondent_key == bindparam("rkey"),
)


def previous_answer(session: Session, redis: Redis, form: SurveyForm, dept: DepartmentInfo,
                    rkey: str, shards: int = 1) -> datetime | None:  # fmt: skip
    """When this respondent answered this pair, if they did (Redis first, then SQL)."""
    try:
        prior = redis.get(done_key(form.id, dept.id, rkey, dept.code, shards))
    except RedisError:
        prior = None
    if prior:
        return datetime.fromtimestamp(int(str(prior).split("|", 1)[1]) / 1000, UTC)
    reads = held_reads(cast(Engine, session.get_bind()))
    try:
        found = reads.scalar(_ANSWERED_AT, {"survey": form.id, "department": dept.id, "rkey": rkey})
    except (SQLAlchemyError, reads.errors) as exc:  # slow or unreachable: asked again at the answer
        LOOK_UPS_GIVEN_UP.labels("timeout" if ran_out_of_time(exc) else "unreachable").inc()
        return None
    if isinstance(found, str):  # SQLite keeps the moment as text
        found = datetime.fromisoformat(found)
    if found is not None and found.tzinfo is None:
        found = found.replace(tzinfo=UTC)
    return found


def record_response(*args, **kwargs) -> Outcome:
    """Validate and accept one submission (see _record_response), counted for /metrics by outcome.
    Refusals are counted where they are answered, by the questionnaire view (count_refusal)."""
    outcome = _record_response(*args, **kwargs)
    if outcome.kind == "accepted" and not outcome.degraded:
        ACCEPTED.inc()
    else:
        SUBMISSIONS.labels(outcome.kind, "", "true" if outcome.degraded else "false").inc()
    return outcome


def _record_response(
    session: Session,
    redis: Redis,
    settings: Settings,
    *,
    form: SurveyForm,
    department: DepartmentInfo,
    openid: str,
    data,
    form_token: str,
    channel: str = "wechat",
    user_agent: str = "",
    remote_addr: str | None = None,
    now: datetime | None = None,
) -> Outcome:
    """Validate and accept one submission: queue it in Redis, or (Redis down) write it to SQL."""
    now = now or clock.now()
    state = refusal(form, department, clock.day_of(now))
    if state:
        raise Conflict(STATE_MESSAGES[state], field="state")
    if channel not in CHANNELS:
        raise Invalid("来源无效", field="channel")
    token, started_ms = read_form_token(settings.app.secret_key, form_token)
    answers = parse_answers(form, data, settings.survey.text_max_length, department)
    rkey = respondent_key(settings.survey.respondent_secret, openid)
    completion_ms = max(0, int(now.timestamp() * 1000) - started_ms)
    flags = []
    if straightlined(form, answers, settings.survey.straightline_min_questions, department):
        flags.append("straightline")
    if completion_ms < FAST_MS:
        flags.append("too_fast")
    submission = Submission(
        idempotency_key=hashlib.sha256(f"{rkey}:{token}".encode()).hexdigest(),
        survey_id=form.id,
        department_id=department.id,
        respondent_key=rkey,
        submitted_at=now,
        channel=channel,
        answers=answers,
        segment_question_id=form.segment_question_id,
        meta={
            "completion_ms": completion_ms,
            "ua": user_agent_class(user_agent),
            "ip": ip_prefix(remote_addr),
            **answer_facts(answers, form.segment_question_id),
        },
        flags=flags,
        case=followup_request(settings, form, answers, data, openid),
    )
    try:
        outcome = _queue(
            redis, settings, form, department, submission, token, now, limit_for(settings, "submit")
        )
    except RedisError as exc:
        log.error("intake: Redis unreachable (%s); writing the response straight to SQL", type(exc).__name__)
        return _write_directly(session, redis, settings, department, submission)
    if outcome.unreplicated:
        return _write_unreplicated(session, submission, outcome)
    return outcome


def _queue(redis: Redis, settings, form: SurveyForm, dept: DepartmentInfo, sub: Submission, token: str,
           now: datetime, limit: Limit | None = None) -> Outcome:  # fmt: skip
    from app.integrity.follows import followed_key

    shards = settings.survey.intake_shards
    shard = shard_keys.shard_of(dept.code, shards)
    stamp = int(now.timestamp() * 1000)
    keys = [shard_keys.done_key(shard, form.id, dept.id, sub.respondent_key), shard_keys.stream_key(shard),
            _scan_key(sub.respondent_key, dept.code, shards), shard_keys.drain_flag_key(shard),
            followed_key(sub.respondent_key, shard)]  # fmt: skip
    args = [f"{token}|{stamp}", _done_ttl(form, now), sub.encode(), DRAIN_FLAG_TTL]
    prefix = sub.meta.get("ip")
    if limit is not None and prefix:  # the prefix's counter, in the same round trip and the shard's slot
        keys.append(limit.key(prefix, now.timestamp(), tag=shard_keys.tag(shard)))
        args += [limit.allowed, limit.ttl]
    wanted = settings.redis.ack_replicas
    if wanted > 0:
        result, acked = RECORD(redis, keys, args, replicas=wanted, timeout_ms=settings.redis.ack_timeout_ms)
    else:
        result, acked = RECORD(redis, keys, args), 0
    if int(result[0]) == 2:
        raise limit.refusal(now.timestamp())  # type: ignore[union-attr]
    if int(result[0]) == 0:
        prior_token, _, prior_ms = str(result[1]).partition("|")
        when = datetime.fromtimestamp(int(prior_ms or 0) / 1000, UTC)
        return Outcome("resent" if prior_token == token else "already", when)
    if degraded.since is not None:
        log.warning("intake: Redis is back; queueing again")
        degraded.since = None
    if acked < wanted:
        sub.meta["scanned"] = bool(int(result[3]))
        if not sub.meta["scanned"] and "no_scan" not in sub.flags:
            sub.flags.append("no_scan")
    return Outcome(
        "accepted", now, drain_wanted=bool(int(result[2])), shard=shard, unreplicated=acked < wanted
    )  # fmt: skip


def _write_unreplicated(session: Session, sub: Submission, outcome: Outcome) -> Outcome:
    """Too few replicas confirmed the stream entry in time: SQL keeps the answer as well, under
    the same idempotency key, so the drain of the entry inserts nothing."""
    degraded.unreplicated += 1
    sub.meta["via"] = "sql-unreplicated"
    try:
        write_responses(session, [sub])
        session.commit()
    except SQLAlchemyError as exc:
        session.rollback()
        log.error(
            "intake: too few replicas confirmed an answer and SQL is unavailable (%s); it is held by "
            "the Redis master alone until the drain", type(exc).__name__,
        )  # fmt: skip
        return outcome
    log.warning("intake: too few replicas confirmed an answer in time; written straight to SQL too")
    return outcome


def _write_directly(session: Session, redis: Redis, settings: Settings, dept: DepartmentInfo,
                    sub: Submission) -> Outcome:  # fmt: skip
    now = time.time()
    degraded.since = degraded.since or now
    degraded.last = now
    degraded.direct_writes += 1
    sub.meta["via"] = "sql"
    sub.meta["scanned"] = None  # the scan memory lives in Redis, which is unreachable
    try:
        inserted = write_responses(session, [sub])
        session.commit()
        if inserted:
            return Outcome("accepted", sub.submitted_at, degraded=True)
        prior = session.execute(
            select(Response.idempotency_key, Response.submitted_at).where(
                Response.survey_id == sub.survey_id,
                Response.department_id == sub.department_id,
                Response.respondent_key == sub.respondent_key,
            )
        ).first()
        session.rollback()
    except SQLAlchemyError as exc:
        session.rollback()
        log.error("intake: SQL unavailable too (%s); the submission is refused", type(exc).__name__)
        raise Unavailable("系统繁忙，您的评价没有提交成功，请稍后再试。") from None
    if prior is None:  # the idempotency key exists for another pair: a forged resend
        raise Conflict("这份问卷已经提交过了。", field="form_token")
    when = prior.submitted_at if prior.submitted_at.tzinfo else prior.submitted_at.replace(tzinfo=UTC)
    kind = "resent" if prior.idempotency_key == sub.idempotency_key else "already"
    return Outcome(kind, when, degraded=True)
