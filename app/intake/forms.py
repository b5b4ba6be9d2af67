"""The questionnaire as intake needs it: survey forms and departments cached per process,
why a pair takes no answers now, and the signed form token (random token + render time)."""

from __future__ import annotations

import functools
import logging
import secrets
import threading
import time
import weakref
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, selectinload

from app import clock
from app.errors import Invalid, NotFound, Unavailable
from app.fast.signing import OnceDerivedSigner, SignedReader
from app.intake.shape import EVERYONE, Audience, Condition, build_blocks, question_extras
from app.models import Department, Question, Survey
from app.org.surveys import accepting_state

log = logging.getLogger(__name__)

FORM_CACHE_SECONDS = 10.0  # opening/closing a survey reaches the questionnaire within this time
STATE_MESSAGES = {
    "not_open": "这项调查还没有开始，感谢您的关注，请在调查开始后再来评价。",
    "closed": "这项调查已经结束，感谢您的关注。",
    "department_inactive": "该单位目前不在评价范围内，感谢您的关注。",
    "not_covered": "这项调查不包括该单位，请扫描对应单位的二维码。",
}


# --- the survey as the questionnaire needs it (cached per process) ----------------------------


@dataclass(frozen=True, slots=True)
class FormOption:
    id: int
    key: str
    label: str
    negative: bool = False  # a 差评 (bottom two levels): with a comment it opens a follow-up case


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
    matrix: str | None = None  # the matrix (key) this question is a row of
    show_if: Condition | None = None  # a follow-up: asked only when this holds
    audience: Audience = EVERYONE  # asked only of these departments / categories
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
    blocks: tuple[Any, ...] = ()  # the questions as shown: FormQuestion or FormMatrix (app.intake.shape)
    # Derived from the questions (__post_init__): every input name; for each scored single-choice
    # question, option id -> key (what straightlined() compares).
    field_names: frozenset[str] = field(default=frozenset(), init=False)
    scored_options: dict[int, dict[int, str]] = field(
        default_factory=dict, init=False, hash=False, compare=False
    )
    negative_options: frozenset[int] = field(default=frozenset(), init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "field_names", frozenset(q.input_name for q in self.questions))
        scored = {
            q.id: {o.id: o.key for o in q.options} for q in self.questions if q.scored and q.kind == "single"
        }
        object.__setattr__(self, "scored_options", scored)
        negative = frozenset(o.id for q in self.questions for o in q.options if o.negative)
        object.__setattr__(self, "negative_options", negative)

    def questions_for(self, dept: DepartmentInfo) -> tuple[FormQuestion, ...]:
        """The questions this department's respondents are asked (audiences applied)."""
        return tuple(q for q in self.questions if q.audience.includes(dept))

    def blocks_for(self, dept: DepartmentInfo) -> tuple[Any, ...]:
        return tuple(b for b in self.blocks if b.audience.includes(dept))


@dataclass(frozen=True, slots=True)
class DepartmentInfo:
    id: int
    code: str
    name: str
    level: str
    active: bool
    category: str = ""


class _FormCache:
    """Survey forms and departments for FORM_CACHE_SECONDS; served stale when SQL is down.

    One thread per key reloads an expired entry while the others go on with the expired one (for
    the few milliseconds of the reload): at campaign peak every thread of a process would otherwise
    find it expired at once and all read the same survey from SQL. A reload still running after
    LOAD_WAIT (a connection gone half-open) is taken over by the next reader, so one stuck read
    does not keep the old entry. A key never loaded has its first readers wait for the one load
    (LOAD_WAIT at most, then they read it themselves)."""

    LOAD_WAIT = 5.0  # seconds

    def __init__(self, clock=time.monotonic) -> None:
        self.clock = clock
        self.entries: dict[tuple[str, str], tuple[float, Any]] = {}
        self.loading: dict[tuple[str, str], tuple[threading.Event, float]] = {}  # (done, since)
        self.lock = threading.Lock()

    def get(self, kind: str, key: str, load) -> Any:
        now = self.clock()
        entry = self.entries.get((kind, key))
        if entry and entry[0] > now:
            return entry[1]
        with self.lock:
            entry = self.entries.get((kind, key))  # (a reload may have ended meanwhile)
            if entry and entry[0] > now:
                return entry[1]
            other = self.loading.get((kind, key))
            if other is None or now - other[1] > self.LOAD_WAIT:
                mine = self.loading[(kind, key)] = (threading.Event(), now)
                other = None
        if other is not None:  # another thread is reading it
            if entry:
                return entry[1]
            other[0].wait(self.LOAD_WAIT)
            entry = self.entries.get((kind, key))
            if entry and entry[0] > self.clock():
                return entry[1]
            return self._load(kind, key, load, entry)
        try:
            return self._load(kind, key, load, entry)
        finally:
            with self.lock:
                if self.loading.get((kind, key)) is mine:
                    del self.loading[(kind, key)]
            mine[0].set()

    def _load(self, kind: str, key: str, load, entry: tuple[float, Any] | None) -> Any:
        started = self.clock()  # the data is as of the read: the entry's age counts from it
        try:
            value = load()
        except SQLAlchemyError:
            if entry:
                log.warning("intake: SQL unavailable, using the cached %s %s", kind, key)
                return entry[1]
            raise Unavailable("系统繁忙，请稍后再试。") from None
        with self.lock:
            known = self.entries.get((kind, key))
            if known is None or known[0] < started + FORM_CACHE_SECONDS:  # (not over a newer read)
                self.entries[(kind, key)] = (started + FORM_CACHE_SECONDS, value)
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
    extras = question_extras(survey.snapshot)
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
            options=tuple(FormOption(o.id, o.key, o.label, o.negative) for o in q.options),
            matrix=q.matrix,
            show_if=extras.get(q.key, {}).get("show_if"),
            audience=extras.get(q.key, {}).get("audience", EVERYONE),
        )
        for q in survey.questions
    )
    titles = {key: e["matrix_title"] for key, e in extras.items() if "matrix_title" in e}
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
        blocks=build_blocks(questions, titles),
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
    info = DepartmentInfo(dept.id, dept.code, dept.name, dept.level, dept.active, dept.category)
    session.rollback()
    return info


def load_form(session: Session, slug: str, code: str) -> tuple[SurveyForm, DepartmentInfo]:
    """The survey and department of a questionnaire URL (NotFound for a forged pair)."""
    if not slug or len(slug) > 40 or not code or len(code) > 20 or not (slug + code).isprintable():
        raise NotFound("没有找到这项调查，请重新扫描二维码。")  # (PostgreSQL refuses a NUL: no outage)
    cache = _cache_for(session)
    form = cache.get("survey", slug, lambda: _load_survey_form(session, slug))
    dept = cache.get("department", code, lambda: _load_department(session, code))
    return form, dept


def refusal(form: SurveyForm, dept: DepartmentInfo, today: date | None = None) -> str | None:
    """Why this pair takes no answers now ("not_open", "closed", ...), or None."""
    return accepting_state(form, dept, today or clock.today())  # type: ignore[arg-type]


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
