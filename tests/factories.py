"""Test data: responses and answers inserted the way the drain does, tally rows included."""

from __future__ import annotations

import random
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Answer, Department, Response, Survey, TallyMonth, TallyRow
from app.org.departments import get_department
from app.org.surveys import get_survey
from app.tally.rows import apply_tally, response_tally_keys


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


def hand_made_responses(session: Session) -> Survey:
    """Seven hand-made responses to the demo department survey (load the demo first)."""
    survey = get_survey(session, "demo-departments")
    year = survey.period_start.year
    d08, d09, d18 = (get_department(session, c) for c in ("D08", "D09", "D18"))

    def at(month, day, hour=10):
        return datetime(year, month, day, hour, tzinfo=UTC)

    add_response(session, survey, d08, {"overall": "very_satisfied", "respondent_type": "citizen"},
                 submitted_at=at(1, 15))  # fmt: skip
    # 20:00 UTC is 04:00 the next day in the city: counted on Jan 16.
    add_response(session, survey, d08, {"overall": "satisfied", "respondent_type": "enterprise"},
                 submitted_at=at(1, 15, 20), channel="web")  # fmt: skip
    add_response(session, survey, d08,
                 {"overall": "dissatisfied", "respondent_type": "citizen", "suggestion": "排队太久"},
                 submitted_at=at(2, 3))  # fmt: skip
    add_response(session, survey, d09, {"overall": "basic"}, submitted_at=at(2, 3))
    add_response(session, survey, d09, {"overall": "very_satisfied", "respondent_type": "citizen"},
                 submitted_at=at(2, 10), status="quarantined")  # fmt: skip
    add_response(session, survey, d18, {"overall": "very_dissatisfied"}, submitted_at=at(3, 1),
                 status="rejected")  # fmt: skip
    add_response(session, survey, d18, {"overall": "satisfied", "respondent_type": "other"},
                 submitted_at=at(4, 1))  # fmt: skip
    session.commit()
    return survey


def stored_tallies(session: Session, survey: Survey) -> tuple[Counter, Counter]:
    """(the daily tally rows summed per month, the monthly rollup rows) of a survey, zeros left out."""
    from app.tally.rows import KEY_COLUMNS, MONTH_COLUMNS, month_counts

    def read(model, columns) -> Counter:
        selected = [getattr(model, c) for c in columns]
        rows = session.execute(select(*selected, model.count).where(model.survey_id == survey.id))
        return Counter({tuple(r[:-1]): int(r[-1]) for r in rows if r[-1]})

    daily = month_counts(read(TallyRow, KEY_COLUMNS))
    return Counter({k: n for k, n in daily.items() if n}), read(TallyMonth, MONTH_COLUMNS)


def open_evaluation(session: Session, slug: str = "eval") -> Survey:
    """The built-in department_evaluation template (every question kind) as an open city survey
    around today; not committed."""
    from app import clock
    from app.org import surveys

    today = clock.today()
    survey = surveys.create_survey(
        session,
        slug=slug,
        template="department_evaluation",
        levels=["city"],
        period_start=today - timedelta(days=30),
        period_end=today + timedelta(days=30),
    )
    surveys.open_survey(session, slug)
    return survey
