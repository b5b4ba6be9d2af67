"""Test data: responses and answers inserted the way the drain does, tally rows included."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from app.models import Answer, Department, Response, Survey
from app.tally_rows import apply_tally, response_tally_keys


def add_response(
    session: Session,
    survey: Survey,
    department: Department,
    answers: dict[str, str | list[str]],
    *,
    submitted_at: datetime | None = None,
    channel: str = "wechat",
    status: str = "counted",
    respondent: str | None = None,
) -> Response:
    """One response; `answers` maps question keys to an option key, a list of them, or free text."""
    questions = {q.key: q for q in survey.questions}
    response = Response(
        idempotency_key=uuid.uuid4().hex,
        survey_id=survey.id,
        department_id=department.id,
        respondent_key=respondent or uuid.uuid4().hex,
        submitted_at=submitted_at or datetime.now(UTC),
        channel=channel,
        status=status,
        meta={},
        flags=[],
    )
    triples = []
    for key, value in answers.items():
        question = questions[key]
        if question.kind == "text":
            response.answers.append(Answer(question_id=question.id, text=value))
            triples.append((question.id, None, bool(value)))
            continue
        options = {o.key: o for o in question.options}
        for option_key in [value] if isinstance(value, str) else value:
            response.answers.append(Answer(question_id=question.id, option_id=options[option_key].id))
            triples.append((question.id, options[option_key].id, False))
    session.add(response)
    session.flush()
    segment = next((q.id for q in survey.questions if q.segment), None)
    apply_tally(
        session,
        response_tally_keys(
            survey_id=survey.id,
            department_id=department.id,
            submitted_at=response.submitted_at,
            channel=channel,
            status=status,
            answers=triples,
            segment_question_id=segment,
        ),
    )
    return response


def random_answers(survey: Survey, rng: random.Random) -> dict[str, str | list[str]]:
    answers: dict[str, str | list[str]] = {}
    for question in survey.questions:
        if question.kind == "text":
            if rng.random() < 0.3:
                answers[question.key] = rng.choice(["很好", "排队太久", "希望延长办公时间"])
        elif question.kind == "single":
            answers[question.key] = rng.choice(question.options).key
        else:
            answers[question.key] = [o.key for o in rng.sample(question.options, 2)]
    return answers


def random_load(
    session: Session, survey: Survey, departments: list[Department], n: int, *, seed: int = 1
) -> list[Response]:
    """n responses with random answers, days, channels and statuses."""
    rng = random.Random(seed)
    start = datetime(survey.period_start.year, survey.period_start.month, survey.period_start.day, tzinfo=UTC)
    made = []
    for _ in range(n):
        made.append(
            add_response(
                session,
                survey,
                rng.choice(departments),
                random_answers(survey, rng),
                submitted_at=start + timedelta(minutes=rng.randrange(0, 60 * 24 * 200)),
                channel=rng.choice(["wechat", "wechat", "web"]),
                status=rng.choice(["counted"] * 8 + ["quarantined", "rejected"]),
            )
        )
    return made
