"""Printable QR posters per survey and department: which code goes on the wall (a WeChat
permanent parametric code when one exists or is asked for, else the questionnaire's plain URL),
rendered with qr.render_poster, alone or as a batch (a directory, a ZIP or one multi-page PDF)."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from redis import Redis
from sqlalchemy.orm import Session

import qr
from app.errors import Invalid, NotFound, Unavailable
from app.models import Department, Survey
from app.org.departments import get_department
from app.org.scenes import questionnaire_url, survey_scene
from app.org.surveys import covers, get_survey, survey_departments

if TYPE_CHECKING:
    from app.config import Settings

FORMATS = ("png", "zip", "pdf")
CODE_KINDS = ("auto", "url", "wechat")  # auto: a WeChat code already created, else the URL
INSTRUCTION = "微信扫一扫，评价我们的服务"


@dataclass(frozen=True)
class PosterCode:
    kind: str  # "wechat" or "url"
    content: str  # what the QR code encodes
    questionnaire_url: str


def poster_code(
    redis: Redis, settings: Settings, survey: Survey, department: Department, kind: str = "auto"
) -> PosterCode:
    """The code for one department's poster. `wechat` creates the permanent code through the
    WeChat API (or the simulator in dev) when it does not exist yet; `auto` never calls out."""
    if kind not in CODE_KINDS:
        raise Invalid(f"二维码类型 {kind!r} 无效：应为 {' / '.join(CODE_KINDS)}", field="kind")
    url = questionnaire_url(settings, survey.slug, department.code)
    if kind == "url":
        return PosterCode("url", url, url)
    from app.wechat_api import WeChatApi, cached_ticket

    scene = survey_scene(survey.slug, department.code)
    ticket = cached_ticket(redis, scene, settings)
    if ticket is None and kind == "wechat":
        ticket = WeChatApi(settings, redis).create_permanent_ticket(scene)
    if ticket is None:
        return PosterCode("url", url, url)
    return PosterCode("wechat", ticket.url, url)


def render_department_poster(
    settings: Settings, survey: Survey, department: Department, code: PosterCode
) -> bytes:
    try:
        return qr.render_poster(
            qr_png=qr.url_qr_png(code.content),
            department_name=department.name,
            account_name=settings.app.account_name,
            instruction=INSTRUCTION,
            survey_title=survey.title,
            footer=f"单位编码 {department.code}",
            font_path=Path(settings.qr.font_path) if settings.qr.font_path else None,
        )
    except qr.FontNotFound as exc:
        raise Unavailable(f"无法生成海报：找不到中文字体（{exc}）") from None


def department_poster(
    session: Session,
    redis: Redis,
    settings: Settings,
    survey_slug: str,
    department_code: str,
    kind: str = "auto",
) -> tuple[PosterCode, bytes]:
    """One department's poster for one survey: (the code on it, PNG bytes)."""
    survey = get_survey(session, survey_slug)
    department = get_department(session, department_code)
    if not covers(survey, department):
        raise NotFound(f"调查 {survey.title} 不评价 {department.name}")
    code = poster_code(redis, settings, survey, department, kind)
    return code, render_department_poster(settings, survey, department, code)


def poster_stem(department: Department) -> str:
    return f"{department.code}-{department.name}"


def batch_departments(
    session: Session, survey: Survey, department_ids: Collection[int] | None = None
) -> list[Department]:
    """The active departments a survey covers, limited to `department_ids` (an admin's scope)."""
    departments = survey_departments(session, survey)
    if department_ids is not None:
        departments = [d for d in departments if d.id in department_ids]
    return departments


class _Posters:
    """(stem, png) pairs, rendered one at a time as the batch writer asks; has a length for progress."""

    def __init__(self, redis, settings: Settings, survey, departments, kind):
        self.redis, self.settings, self.survey, self.departments, self.kind = (
            redis, settings, survey, departments, kind,
        )  # fmt: skip

    def __len__(self) -> int:
        return len(self.departments)

    def __iter__(self) -> Iterator[tuple[str, bytes]]:
        for department in self.departments:
            code = poster_code(self.redis, self.settings, self.survey, department, self.kind)
            yield (
                poster_stem(department),
                render_department_poster(self.settings, self.survey, department, code),
            )


def _counted(posters: _Posters, progress) -> Iterator[tuple[str, bytes]]:
    for done, item in enumerate(posters, start=1):
        yield item
        if progress:
            progress(done, len(posters))


def write_batch(
    session: Session,
    redis: Redis,
    settings: Settings,
    survey_slug: str,
    fmt: str,
    out: Path,
    *,
    department_ids: Collection[int] | None = None,
    kind: str = "auto",
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Write every poster of a survey to `out`: a directory of PNGs, a ZIP or a PDF. Returns the count."""
    if fmt not in FORMATS:
        raise Invalid(f"格式 {fmt!r} 无效：应为 png / zip / pdf", field="format")
    survey = get_survey(session, survey_slug)
    departments = batch_departments(session, survey, department_ids)
    if not departments:
        raise Invalid(f"调查 {survey.title} 在您的范围内没有可生成海报的单位", field="survey")
    posters = _Posters(redis, settings, survey, departments, kind)
    if fmt == "png":
        return len(qr.write_poster_dir(_counted(posters, progress), out))
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "zip":
        return len(qr.build_zip(posters, out, progress=progress))
    return qr.build_pdf(posters, out, progress=progress)
