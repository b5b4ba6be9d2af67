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
  dev/web channels never scan. QUARANTINE_FLAGS (app.intake_store) names the flags that do
  put a response under review (`status = "quarantined"`, left out of the official figures); it
  is empty, so all responses are counted, and reviewers (the console) move flagged ones by hand.
- Degraded mode: when Redis cannot be reached the response is written straight to SQL (the
  unique constraint still holds one per person), logged, and reported by /readyz; when SQL
  is down, the stream keeps buffering and the drain catches up when it returns.

The response's wire form on the stream and the SQL writer the drain uses live in
app/intake_store.py.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import logging
import secrets
import threading
import time
import weakref
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from itsdangerous import BadSignature, URLSafeSerializer
from redis import Redis
from redis.exceptions import RedisError
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, selectinload

from app.errors import Conflict, Invalid, NotFound, Unavailable
from app.intake_store import AnswerTriple, Submission, write_responses
from app.models import Department, Question, Response, Survey
from app.rate_limits import Limit, limit_for
from app.redis_store import ScriptRunner
from app.respondents import respondent_key
from app.signing import OnceDerivedSigner, SignedReader
from app.surveys import accepting_state
from app.tally_rows import local_day

log = logging.getLogger(__name__)

STREAM = "wx:intake"
DEAD_LETTERS = "wx:intake:dead"
DRAIN_FLAG = "wx:intake:drain-wanted"
DRAIN_FLAG_TTL = 10  # seconds: at most one drain job is enqueued per this interval by submissions
DONE_TTL_CAP = timedelta(days=35)
FORM_CACHE_SECONDS = 10.0  # opening/closing a survey reaches the questionnaire within this time
FAST_MS = 3000
CHANNELS = ("wechat", "dev", "web")
STATE_MESSAGES = {
    "not_open": "这项调查还没有开始，感谢您的关注，请在调查开始后再来评价。",
    "closed": "这项调查已经结束，感谢您的关注。",
    "department_inactive": "该单位目前不在评价范围内，感谢您的关注。",
    "not_covered": "这项调查不包括该单位，请扫描对应单位的二维码。",
}

# KEYS: done key, stream, scan key, drain flag[, rate-limit counter]. ARGV: done value, done ttl,
# payload, flag ttl[, allowed per window, counter ttl]. Returns {0, prior done value},
# {1, stream id, 1 if a drain job should be enqueued}, or {2} past the rate limit (nothing stored).
RECORD_SCRIPT = """
if KEYS[5] then
  local count = redis.call('INCR', KEYS[5])
  if count == 1 then redis.call('EXPIRE', KEYS[5], tonumber(ARGV[6])) end
  if count > tonumber(ARGV[5]) then return {2} end
end
local prior = redis.call('GET', KEYS[1])
if prior then return {0, prior} end
redis.call('SET', KEYS[1], ARGV[1], 'EX', tonumber(ARGV[2]))
local scanned = redis.call('EXISTS', KEYS[3])
local id = redis.call('XADD', KEYS[2], '*', 'p', ARGV[3], 'ns', 1 - scanned)
local kick = redis.call('SET', KEYS[4], '1', 'NX', 'EX', tonumber(ARGV[4]))
if kick then return {1, id, 1} end
return {1, id, 0}
"""
RECORD = ScriptRunner(RECORD_SCRIPT)


# --- the survey as the questionnaire needs it (cached per process) ----------------------------


@dataclass(frozen=True, slots=True)
class FormOption:
    id: int
    key: str
    label: str


@dataclass(frozen=True, slots=True)
class FormQuestion:
    id: int
    key: str
    kind: str
    title: str
    required: bool
    scored: bool
    max_length: int | None
    max_choices: int | None
    options: tuple[FormOption, ...]
    # Derived from the above (__post_init__): the form field's name (q_<key>), option key -> id.
    input_name: str = field(default="", init=False)
    option_ids: dict[str, int] = field(default_factory=dict, init=False, hash=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_name", f"q_{self.key}")
        object.__setattr__(self, "option_ids", {o.key: o.id for o in self.options})


@dataclass(frozen=True, slots=True)
class SurveyForm:
    """A survey's frozen questions plus what accepting_state() reads."""

    id: int
    slug: str
    title: str
    description: str
    status: str
    period_start: date
    period_end: date
    levels: tuple[str, ...]
    questions: tuple[FormQuestion, ...]
    segment_question_id: int | None
    # Derived from the questions (__post_init__): every input name; for each scored single-choice
    # question, option id -> key (what straightlined() compares).
    field_names: frozenset[str] = field(default=frozenset(), init=False)
    scored_options: dict[int, dict[int, str]] = field(
        default_factory=dict, init=False, hash=False, compare=False
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "field_names", frozenset(q.input_name for q in self.questions))
        scored = {
            q.id: {o.id: o.key for o in q.options} for q in self.questions if q.scored and q.kind == "single"
        }
        object.__setattr__(self, "scored_options", scored)


@dataclass(frozen=True, slots=True)
class DepartmentInfo:
    id: int
    code: str
    name: str
    level: str
    active: bool


class _FormCache:
    """Survey forms and departments for FORM_CACHE_SECONDS; served stale when SQL is down."""

    def __init__(self) -> None:
        self.entries: dict[tuple[str, str], tuple[float, Any]] = {}
        self.lock = threading.Lock()

    def get(self, kind: str, key: str, load) -> Any:
        now = time.monotonic()
        entry = self.entries.get((kind, key))
        if entry and entry[0] > now:
            return entry[1]
        try:
            value = load()
        except SQLAlchemyError:
            if entry:
                log.warning("intake: SQL unavailable, using the cached %s %s", kind, key)
                return entry[1]
            raise Unavailable("系统繁忙，请稍后再试。") from None
        with self.lock:
            self.entries[(kind, key)] = (now + FORM_CACHE_SECONDS, value)
        return value


_caches: weakref.WeakKeyDictionary[Any, _FormCache] = weakref.WeakKeyDictionary()


def _cache_for(session: Session) -> _FormCache:
    # The engine, without making a scoped_session create its Session on a cache hit.
    factory = getattr(session, "session_factory", None)
    engine = factory.kw.get("bind") if factory is not None else session.get_bind()
    cache = _caches.get(engine)
    if cache is None:
        cache = _caches.setdefault(engine, _FormCache())
    return cache


def _load_survey_form(session: Session, slug: str) -> SurveyForm:
    try:
        survey = session.scalar(
            select(Survey)
            .where(Survey.slug == slug)
            .options(selectinload(Survey.questions).selectinload(Question.options))
        )
    except SQLAlchemyError:
        session.rollback()
        raise
    if survey is None:
        raise NotFound("没有找到这项调查，请重新扫描二维码。", field="survey")
    questions = tuple(
        FormQuestion(
            id=q.id,
            key=q.key,
            kind=q.kind,
            title=q.title,
            required=q.required,
            scored=q.scored,
            max_length=q.max_length,
            max_choices=q.max_choices,
            options=tuple(FormOption(o.id, o.key, o.label) for o in q.options),
        )
        for q in survey.questions
    )
    segment = next((q.id for q in survey.questions if q.segment), None)
    form = SurveyForm(
        id=survey.id,
        slug=survey.slug,
        title=survey.title,
        description=str((survey.snapshot or {}).get("description") or ""),
        status=survey.status,
        period_start=survey.period_start,
        period_end=survey.period_end,
        levels=tuple(survey.levels or ()),
        questions=questions,
        segment_question_id=segment,
    )
    session.rollback()  # end the read transaction: nothing else in a submission needs it
    return form


def _load_department(session: Session, code: str) -> DepartmentInfo:
    try:
        dept = session.scalar(select(Department).where(Department.code == code))
    except SQLAlchemyError:
        session.rollback()
        raise
    if dept is None:
        raise NotFound("没有找到这个单位，请重新扫描二维码。", field="department")
    info = DepartmentInfo(dept.id, dept.code, dept.name, dept.level, dept.active)
    session.rollback()
    return info


def load_form(session: Session, slug: str, code: str) -> tuple[SurveyForm, DepartmentInfo]:
    """The survey and department of a questionnaire URL (NotFound for a forged pair)."""
    if not slug or len(slug) > 40 or not code or len(code) > 20:
        raise NotFound("没有找到这项调查，请重新扫描二维码。")
    cache = _cache_for(session)
    form = cache.get("survey", slug, lambda: _load_survey_form(session, slug))
    dept = cache.get("department", code, lambda: _load_department(session, code))
    return form, dept


def refusal(form: SurveyForm, dept: DepartmentInfo, today: date | None = None) -> str | None:
    """Why this pair takes no answers now ("not_open", "closed", ...), or None."""
    return accepting_state(form, dept, today or local_day(datetime.now(UTC)))  # type: ignore[arg-type]


# --- form tokens --------------------------------------------------------------------------------


@functools.lru_cache(maxsize=8)  # one per secret key: building it derives keys each time
def _token_serializer(secret_key: str) -> URLSafeSerializer:
    return URLSafeSerializer(secret_key, salt="wxsurvey.questionnaire", signer=OnceDerivedSigner)


@functools.lru_cache(maxsize=8)
def _token_reader(secret_key: str) -> SignedReader:
    return SignedReader(_token_serializer(secret_key))


def issue_form_token(secret_key: str, now: float | None = None) -> str:
    """A signed (random token, render time in ms) pair for the form's hidden field."""
    started = int((time.time() if now is None else now) * 1000)
    return _token_serializer(secret_key).dumps([secrets.token_hex(16), started])


def read_form_token(secret_key: str, value: str) -> tuple[str, int]:
    try:
        content = _token_reader(secret_key).loads(value or "")
        if content is None:  # not one the reader vouches for: the serializer decides
            content = _token_serializer(secret_key).loads(value or "")
        token, started = content
        if not isinstance(token, str) or not isinstance(started, int) or len(token) != 32:
            raise ValueError
    except (BadSignature, ValueError, TypeError):
        raise Invalid("页面已过期，请刷新后重新填写。", field="form_token") from None
    return token, started


# --- validation --------------------------------------------------------------------------------


def parse_answers(form: SurveyForm, data, text_limit: int) -> list[AnswerTriple]:
    """Answers from form fields `q_<key>`; Invalid with one message per question otherwise.

    `data` is a MultiDict (request.form) or any mapping of name -> list of strings.
    """
    getlist = data.getlist if hasattr(data, "getlist") else (lambda name: data.get(name) or ())
    errors: dict[str, str] = {}
    answers: list[AnswerTriple] = []
    known = form.field_names
    unknown = sorted(name for name in data.keys() if name.startswith("q_") and name not in known)
    if unknown:
        message = "问卷中没有这些题目，请刷新后重新填写。"
        raise Invalid(message, errors={"_form": "未知题目：" + ", ".join(unknown)})
    for q in form.questions:
        values = [v for v in getlist(q.input_name) if isinstance(v, str)]
        if q.kind == "text":
            if len(values) > 1:
                errors[q.key] = "这道题只能填写一段文字。"
                continue
            text = (values[0] if values else "").strip()
            limit = min(q.max_length or text_limit, text_limit)
            if len(text) > limit:
                errors[q.key] = f"请不要超过 {limit} 个字（现在 {len(text)} 个字）。"
            elif not text and q.required:
                errors[q.key] = "请填写这道题。"
            elif text:
                answers.append((q.id, None, text))
            continue
        chosen = [c for c in (v.strip() for v in values) if c]
        if not chosen:
            if q.required:
                errors[q.key] = "请选择一项。" if q.kind == "single" else "请至少选择一项。"
            continue
        if len(chosen) > 1:
            if q.kind == "single":
                errors[q.key] = "这道题只能选择一项。"
                continue
            if len(set(chosen)) != len(chosen):
                errors[q.key] = "同一个选项只能选一次。"
                continue
            if q.max_choices and len(chosen) > q.max_choices:
                errors[q.key] = f"最多选择 {q.max_choices} 项。"
                continue
        option_ids = [q.option_ids.get(c) for c in chosen]
        if None in option_ids:
            errors[q.key] = "所选的选项不存在，请重新选择。"
            continue
        answers.extend((q.id, oid, None) for oid in option_ids)
    if errors:
        raise Invalid("还有题目没有填好，请检查标红的地方。", errors=errors)
    return answers


# --- integrity metadata --------------------------------------------------------------------------


def user_agent_class(user_agent: str) -> str:
    ua = user_agent or ""
    if not ua:
        return "none"
    if "MicroMessenger" in ua:
        return "wechat"
    lowered = ua.lower()
    if any(word in lowered for word in ("bot", "spider", "crawl", "curl", "python", "wget")):
        return "bot"
    if any(word in ua for word in ("Mobile", "Android", "iPhone", "iPad")):
        return "mobile"
    return "desktop"


@functools.lru_cache(maxsize=4096)
def ip_prefix(address: str | None) -> str | None:
    """The /24 (IPv4) or /48 (IPv6) network of an address: enough to spot floods, not a person."""
    try:
        ip = ipaddress.ip_address((address or "").strip())
    except ValueError:
        return None
    bits = 24 if ip.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{bits}", strict=False))


def straightlined(form: SurveyForm, answers: list[AnswerTriple], min_questions: int) -> bool:
    scored = form.scored_options
    if len(scored) < max(2, min_questions):
        return False
    chosen: dict[int, str] = {}
    for qid, oid, _ in answers:
        options = scored.get(qid)
        if options is not None and oid in options:
            chosen[qid] = options[oid]
    return len(chosen) == len(scored) and len(set(chosen.values())) == 1


# --- recording a submission -----------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """accepted: new; resent: the same form again (thank again); already: answered before."""

    kind: str
    submitted_at: datetime
    degraded: bool = False


class _Degraded:
    """When this process last had to write around Redis (for logs and /readyz)."""

    since: float | None = None
    last: float | None = None
    direct_writes: int = 0


degraded = _Degraded()


def done_key(survey_id: int, department_id: int, rkey: str) -> str:
    return f"wx:done:{survey_id}:{department_id}:{rkey}"


def _done_ttl(form: SurveyForm, now: datetime) -> int:
    end = datetime.combine(form.period_end + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    return max(3600, int(min(end - now, DONE_TTL_CAP).total_seconds()))


def previous_answer(session: Session, redis: Redis, form: SurveyForm, dept: DepartmentInfo,
                    rkey: str) -> datetime | None:  # fmt: skip
    """When this respondent answered this pair, if they did (Redis first, then SQL)."""
    try:
        prior = redis.get(done_key(form.id, dept.id, rkey))
    except RedisError:
        prior = None
    if prior:
        return datetime.fromtimestamp(int(prior.split("|", 1)[1]) / 1000, UTC)
    try:
        found = session.scalar(
            select(Response.submitted_at).where(
                Response.survey_id == form.id,
                Response.department_id == dept.id,
                Response.respondent_key == rkey,
            )
        )
        session.rollback()
    except SQLAlchemyError:
        session.rollback()
        return None
    if found is not None and found.tzinfo is None:
        found = found.replace(tzinfo=UTC)
    return found


def record_response(
    session: Session,
    redis: Redis,
    settings,
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
    now = now or datetime.now(UTC)
    state = refusal(form, department, local_day(now))
    if state:
        raise Conflict(STATE_MESSAGES[state], field="state")
    if channel not in CHANNELS:
        raise Invalid("来源无效", field="channel")
    token, started_ms = read_form_token(settings.app.secret_key, form_token)
    answers = parse_answers(form, data, settings.survey.text_max_length)
    rkey = respondent_key(settings.survey.respondent_secret, openid)
    completion_ms = max(0, int(now.timestamp() * 1000) - started_ms)
    flags = []
    if straightlined(form, answers, settings.survey.straightline_min_questions):
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
        },
        flags=flags,
    )
    try:
        return _queue(redis, form, department, submission, token, now, limit_for(settings, "submit"))
    except RedisError as exc:
        log.error("intake: Redis unreachable (%s); writing the response straight to SQL", type(exc).__name__)
        return _write_directly(session, redis, settings, department, submission)


def _queue(redis: Redis, form: SurveyForm, dept: DepartmentInfo, sub: Submission, token: str,
           now: datetime, limit: Limit | None = None) -> Outcome:  # fmt: skip
    from app.respondents import _scan_key  # the scan memory's own key format

    stamp = int(now.timestamp() * 1000)
    keys = [done_key(form.id, dept.id, sub.respondent_key), STREAM, _scan_key(sub.respondent_key, dept.code),
            DRAIN_FLAG]  # fmt: skip
    args = [f"{token}|{stamp}", _done_ttl(form, now), sub.encode(), DRAIN_FLAG_TTL]
    prefix = sub.meta.get("ip")
    if limit is not None and prefix:  # the prefix's counter, in the same round trip
        keys.append(limit.key(prefix, now.timestamp()))
        args += [limit.allowed, limit.ttl]
    result = RECORD(redis, keys, args)
    if int(result[0]) == 2:
        raise limit.refusal(now.timestamp())  # type: ignore[union-attr]
    if int(result[0]) == 0:
        prior_token, _, prior_ms = str(result[1]).partition("|")
        when = datetime.fromtimestamp(int(prior_ms or 0) / 1000, UTC)
        return Outcome("resent" if prior_token == token else "already", when)
    if degraded.since is not None:
        log.warning("intake: Redis is back; queueing again")
        degraded.since = None
    if int(result[2]):
        request_drain()
    return Outcome("accepted", now)


def request_drain() -> None:
    """Enqueue a drain job (needs an app context: the RQ connection comes from the app)."""
    from app.jobs.intake import drain_intake
    from app.queues import enqueue

    try:
        enqueue("intake", drain_intake)
    except RedisError:
        log.warning("intake: could not enqueue a drain job; the periodic drain will pick the backlog up")


def _write_directly(session: Session, redis: Redis, settings, dept: DepartmentInfo,
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
