"""QR scene strings and scan routing: which questionnaire a scanned code, a menu tap or a keyword leads to.

Scene format (at most 64 characters, WeChat's limit for permanent string scenes):
  `d:<department code>`              a department's code: leads to the open survey that covers it
  `s:<survey slug>:<department code>` one survey and one department (slug ≤ 40, code ≤ 20 → ≤ 63)
A new follower's scan arrives as `qrscene_<scene>`; `parse_scene` accepts both forms.

Routes are cached per process (`RouteCache`) so that a scan needs no SQL in the steady state.
Bound: a committed ORM change to a department or survey, by any process of this installation,
bumps `wx:routes:{wh}:generation` in Redis and reaches the webhook on its next delivery; any other
change (raw SQL, another tool) within ROUTE_TTL seconds.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, replace
from datetime import date
from typing import TYPE_CHECKING, Any, Protocol

from redis import Redis, RedisError
from sqlalchemy import event, or_, select
from sqlalchemy.orm import Session

from app.intake.respondents import record_scan, respondent_key
from app.models import Department, Survey
from app.org import scan_pass
from app.org.departments import CODE_RE
from app.org.surveys import SLUG_RE, accepting_state, covers, list_surveys

if TYPE_CHECKING:
    from app.config import Settings

log = logging.getLogger(__name__)

MAX_SCENE_LENGTH = 64
SUBSCRIBE_PREFIX = "qrscene_"


@dataclass(frozen=True)
class Scene:
    department_code: str
    survey_slug: str | None = None  # None: whichever open survey covers the department

    @property
    def text(self) -> str:
        if self.survey_slug is None:
            return department_scene(self.department_code)
        return survey_scene(self.survey_slug, self.department_code)


def department_scene(code: str) -> str:
    if not CODE_RE.match(code or ""):
        raise ValueError(f"invalid department code {code!r}")
    return f"d:{code}"


def survey_scene(slug: str, code: str) -> str:
    if not SLUG_RE.match(slug or ""):
        raise ValueError(f"invalid survey slug {slug!r}")
    return f"s:{slug}:{department_scene(code)[2:]}"


def parse_scene(text: str | None) -> Scene | None:
    """The scene in an EventKey (with or without `qrscene_`), or None when it is not one of ours."""
    if not text or not isinstance(text, str):
        return None
    if text.startswith(SUBSCRIBE_PREFIX):
        text = text[len(SUBSCRIBE_PREFIX) :]
    if len(text) > MAX_SCENE_LENGTH:
        return None
    kind, _, rest = text.partition(":")
    if kind == "d" and CODE_RE.match(rest):
        return Scene(rest)
    if kind == "s":
        slug, _, code = rest.partition(":")
        if SLUG_RE.match(slug) and CODE_RE.match(code):
            return Scene(code, slug)
    return None


def questionnaire_url(settings: Settings, slug: str, code: str) -> str:
    return f"{settings.app.base_url}/q/{slug}/{code}"


# --- routing a scan or a keyword to a questionnaire link ------------------------------------------


@dataclass(frozen=True)
class RoutedDepartment:
    """What a reply needs of a department: a snapshot, safe to keep beyond its session."""

    code: str
    name: str


@dataclass(frozen=True)
class RoutedSurvey:
    slug: str
    title: str


@dataclass(frozen=True)
class Route:
    """Where a scan leads: a link to answer, or the reason there is none (`problem`)."""

    department: RoutedDepartment | None
    survey: RoutedSurvey | None
    url: str | None
    problem: str | None  # unknown_scene, unknown_department, department_inactive, not_covered,
    #                       not_open, closed, no_open_survey


def _route(department: Department | None, survey: Survey | None, url: str | None, problem: str | None):
    return Route(
        RoutedDepartment(department.code, department.name) if department is not None else None,
        RoutedSurvey(survey.slug, survey.title) if survey is not None else None,
        url,
        problem,
    )


def _open_survey_for(session: Session, department: Department, today: date) -> Survey | None:
    """The open survey covering the department today, the most recently started first."""
    for survey in list_surveys(session, status="open"):
        if covers(survey, department) and survey.period_start <= today <= survey.period_end:
            return survey
    return None


def route_scene(session: Session, settings: Settings, scene: Scene | None, today: date) -> Route:
    if scene is None:
        return _route(None, None, None, "unknown_scene")
    department = session.scalar(select(Department).where(Department.code == scene.department_code))
    if department is None:
        return _route(None, None, None, "unknown_department")
    if scene.survey_slug is None:
        if not department.active:
            return _route(department, None, None, "department_inactive")
        survey = _open_survey_for(session, department, today)
        if survey is None:
            return _route(department, None, None, "no_open_survey")
    else:
        survey = session.scalar(select(Survey).where(Survey.slug == scene.survey_slug))
        if survey is None:
            return _route(department, None, None, "unknown_scene")
        problem = accepting_state(survey, department, today)
        if problem is not None:
            # A poster for last year's survey still finds this year's, if there is one.
            current = _open_survey_for(session, department, today) if department.active else None
            if current is None:
                return _route(department, survey, None, problem)
            survey = current
    return _route(department, survey, questionnaire_url(settings, survey.slug, department.code), None)


# --- the route cache and its invalidation -----------------------------------------------------------

ROUTE_TTL = 5.0  # seconds a cached route may live: the bound for changes made outside the ORM
# Bumped after every commit touching departments or surveys. HASH_TAG keeps it in one Redis Cluster
# slot with the webhook's nonce and message keys and the scan passes (app.wechat.delivery reads and
# writes them in one atomic call; the pass module, imported here, holds the one definition).
HASH_TAG = scan_pass.HASH_TAG
GENERATION_KEY = f"wx:routes:{HASH_TAG}:generation"
_ROUTING_MODELS = (Department, Survey)


class RouteCache:
    """Routes by (scene, day), kept in this process for at most `ttl` seconds and dropped as soon
    as a delivery sees a new routing generation (checked in Redis by the webhook's commit call)."""

    MAX_ENTRIES = 20_000  # well above the codes of one city; beyond it the cache starts over

    def __init__(self, ttl: float = ROUTE_TTL) -> None:
        self.ttl = ttl
        self._lock = threading.Lock()
        self._generation: str | None = None
        self._routes: dict[tuple[Scene | None, date], tuple[float, Route]] = {}

    @property
    def generation(self) -> str | None:
        """The last routing generation a delivery of this process saw (None: none yet)."""
        return self._generation

    def observe(self, generation: str) -> str:
        """Note the generation one delivery read; a new one empties the cache. Returns it."""
        if generation != self._generation:
            with self._lock:
                if generation != self._generation:
                    self._routes = {}
                    self._generation = generation
        return generation

    def get(self, scene: Scene | None, today: date) -> Route | None:
        entry = self._routes.get((scene, today))
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def put(self, scene: Scene | None, today: date, route: Route, generation: str) -> None:
        """Keep a route read under `generation`, unless the cache has moved on since."""
        with self._lock:
            if generation != self._generation:
                return
            if len(self._routes) >= self.MAX_ENTRIES:
                self._routes = {}
            self._routes[(scene, today)] = (time.monotonic() + self.ttl, route)


def watch_routing_changes(sessions, redis: Redis) -> None:
    """Bump the routing generation after each commit (of a session from `sessions`, a sessionmaker
    or scoped_session) that inserted, changed or deleted a department or a survey."""

    @event.listens_for(sessions, "after_flush")
    def _note(session: Session, _flush_context) -> None:
        for obj in (*session.new, *session.dirty, *session.deleted):
            if isinstance(obj, _ROUTING_MODELS):
                session.info["routing_changed"] = True
                return

    @event.listens_for(sessions, "after_commit")
    def _bump(session: Session) -> None:
        if session.info.pop("routing_changed", False):
            try:
                redis.incr(GENERATION_KEY)
            except RedisError:  # the commit stands; the webhook then sees it within ROUTE_TTL
                log.warning("could not bump %s; routes refresh within %ss", GENERATION_KEY, ROUTE_TTL)

    @event.listens_for(sessions, "after_rollback")
    def _forget(session: Session) -> None:
        session.info.pop("routing_changed", None)


def cached_route(
    session: Session,
    settings: Settings,
    event_key: str | None,
    today: date,
    cache: RouteCache,
    generation: str,
) -> Route:
    """route_scene through the cache: no SQL when this scene was routed recently."""
    scene = parse_scene(event_key)
    route = cache.get(scene, today)
    if route is None:
        route = route_scene(session, settings, scene, today)
        cache.put(scene, today, route, generation)
    return route


def route_scan(
    session: Session,
    redis: Effects,
    settings: Settings,
    event_key: str | None,
    openid: str,
    today: date,
    cache: RouteCache | None = None,
    generation: str = "",
) -> Route:
    """Route a scanned code and remember the scan for the integrity check of the submission; the
    link carries a scan pass for the scanner (app.org.scan_pass) unless `wechat.scan_pass_seconds`
    is 0. `redis` may be a pipeline: the writes are then made when the caller executes it."""
    if cache is None:
        route = route_scene(session, settings, parse_scene(event_key), today)
    else:
        route = cached_route(session, settings, event_key, today, cache, generation)
    if route.department is not None and openid:
        key = respondent_key(settings.survey.respondent_secret, openid)
        survey = settings.survey
        record_scan(redis, key, route.department.code, survey.scan_window_hours, survey.intake_shards)
        seconds = settings.wechat.scan_pass_seconds
        if route.url and route.survey is not None and seconds > 0:
            token = scan_pass.issue(redis, openid, route.survey.slug, route.department.code, seconds)
            route = replace(route, url=scan_pass.with_pass(route.url, token))
    return route


class Effects(Protocol):
    """Where a scan's side effect (the scan memory) is written: Redis itself, or the webhook's
    collector that writes it together with the reply, once per message."""

    def set(self, name: str, value: str, ex: int) -> Any: ...


class ScanRouter:
    """Routing for one delivery: owns the process's scene cache and the routing generation the
    delivery read, so that a handler only names the scene (route_scan in handlers/)."""

    def __init__(self, session: Session, settings: Settings, cache: RouteCache | None = None,
                 generation: str = "") -> None:  # fmt: skip
        self.session, self.settings, self.cache, self.generation = session, settings, cache, generation

    def route_scan(self, effects: Effects, event_key: str | None, openid: str, today: date) -> Route:
        return route_scan(self.session, effects, self.settings, event_key, openid, today, self.cache,
                          self.generation)  # fmt: skip

    def routes_for_keyword(self, text: str, today: date) -> list[Route]:
        return routes_for_keyword(self.session, self.settings, text, today)


MAX_KEYWORD_MATCHES = 5


def routes_for_keyword(session: Session, settings: Settings, text: str, today: date) -> list[Route]:
    """Departments whose code equals, or whose name contains, the text: each with its open link."""
    text = (text or "").strip()
    if not text or len(text) > 40:
        return []
    query = (
        select(Department)
        .where(Department.active.is_(True))
        .where(or_(Department.code == text.upper(), Department.code == text, Department.name.contains(text)))
        .order_by(Department.level, Department.sort_order, Department.code)
        .limit(MAX_KEYWORD_MATCHES)
    )
    return [route_scene(session, settings, Scene(d.code), today) for d in session.scalars(query)]


# --- the codes to print: `wxsurvey qr list --json` ------------------------------------------------


def scene_rows(
    session: Session, redis: Redis, settings: Settings, survey_slug: str | None = None
) -> list[dict]:
    """One row per survey and department it covers (SPEC: qr list --json), closed surveys left out."""
    from app.org.surveys import get_survey, survey_departments
    from app.wechat_api import cached_ticket

    if survey_slug:
        chosen = [get_survey(session, survey_slug)]
    else:
        chosen = [s for s in list_surveys(session) if s.status != "closed"]
    rows = []
    for survey in chosen:
        for department in survey_departments(session, survey):
            scene = survey_scene(survey.slug, department.code)
            ticket = cached_ticket(redis, scene)
            rows.append(
                {
                    "survey_slug": survey.slug,
                    "department_code": department.code,
                    "department_name": department.name,
                    "scene": scene,
                    "department_scene": department_scene(department.code),
                    "url": questionnaire_url(settings, survey.slug, department.code),
                    "wechat_qr_url": ticket.image_url if ticket else None,
                }
            )
    return rows
