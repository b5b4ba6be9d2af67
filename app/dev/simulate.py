# `wxsurvey simulate campaign`, an edge beside the WeChat simulator: a labelled campaign
# (app.integrity.campaign) played through the real intake path (WeChat events through the webhook,
# answers through record_response, the drain with the detector), measured against the labels.
from __future__ import annotations

import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from flask import Flask
from sqlalchemy import select

from app.integrity.campaign import KINDS, WINDOW_DEPARTMENTS, Campaign, Event, Options

SURVEY = "sim-campaign"
ACCOUNT = "gh_wxsurvey_sim"
DRAIN_EVERY_MS = 5 * 60_000  # the drain runs about every 5 simulated minutes (real ones: ~1 s)


@dataclass
class Outcome:
    options: dict[str, Any]
    answers: Counter = field(default_factory=Counter)  # label -> answers stored
    held: Counter = field(default_factory=Counter)  # label -> quarantined
    organic_by_department: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> (held, all)
    retroactive: int = 0
    tally_differences: int = 0
    seconds: float = 0.0
    events: int = 0

    @property
    def stuffed(self) -> int:
        return sum(n for label, n in self.answers.items() if label != "organic")

    @property
    def stuffed_held(self) -> int:
        return sum(n for label, n in self.held.items() if label != "organic")

    @property
    def precision(self) -> float:
        held = sum(self.held.values())
        return self.stuffed_held / held if held else 1.0

    @property
    def recall(self) -> float:
        return self.stuffed_held / self.stuffed if self.stuffed else 1.0

    def recall_of(self, label: str) -> float:
        return self.held[label] / self.answers[label] if self.answers[label] else 0.0

    def as_dict(self) -> dict[str, Any]:
        organic = self.answers["organic"]
        return {
            "options": self.options,
            "events": self.events,
            "seconds": round(self.seconds, 1),
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
            "organic": {
                "answers": organic,
                "quarantined": self.held["organic"],
                "share": round(self.held["organic"] / organic, 4) if organic else 0.0,
            },  # fmt: skip
            "kinds": {
                label: {
                    "answers": self.answers[label],
                    "quarantined": self.held[label],
                    "recall": round(self.recall_of(label), 4),
                }  # fmt: skip
                for label in self.answers
                if label != "organic"
            },
            "organic_by_department": {
                name: {"quarantined": held, "answers": total}
                for name, (held, total) in sorted(self.organic_by_department.items())
            },
            "retroactive": self.retroactive,
            "tally_differences": self.tally_differences,
        }


def prepare(app: Flask, options: Options) -> list[str]:
    """The demo org chart, one open survey over the campaign's days, opening hours on the window
    departments. Returns the city departments' codes."""
    from app.db import db
    from app.org import demo, departments, surveys

    session = db.session
    surveys.sync_templates(session)
    departments.import_departments(session, demo.demo_rows(), actor="simulate")
    first: date = options.start.date()
    surveys.create_survey(
        session, slug=SURVEY, template="department_satisfaction", period_start=first - timedelta(days=1),
        period_end=first + timedelta(days=options.days + 5), levels=["city"], actor="simulate",
    )  # fmt: skip
    surveys.open_survey(session, SURVEY, actor="simulate")
    for code, hours in WINDOW_DEPARTMENTS.items():
        departments.set_opening_hours(session, code, hours, actor="simulate")
    session.commit()
    return [code for code, _name, _category in demo.CITY_DEPARTMENTS]


class Player:
    """Plays events in time order against the app (which must be in an app context)."""

    def __init__(self, app: Flask, detector) -> None:
        from app.db import db
        from app.intake import load_form
        from app.redis_store import redis_store

        self.app, self.detector = app, detector
        self.settings = app.config["SETTINGS"]
        self.session, self.redis = db.session, redis_store.client
        self.client = app.test_client()
        self.load_form = load_form
        self.labels: dict[str, str] = {}
        self.next_drain = 0
        self.retroactive = 0

    def play(self, events: list[Event]) -> None:
        for event in events:
            if event.ms >= self.next_drain:
                self.drain(event.ms)
                self.next_drain = event.ms + DRAIN_EVERY_MS
            if event.kind == "answer":
                self.answer(event)
            else:
                self.deliver(event)
        last = events[-1].ms if events else 0
        self.drain(last + 1)
        self.drain(last + 2 * 86_400_000)  # the leavers' sweep a day or two on

    def deliver(self, event: Event) -> None:
        from app.dev.wechat_server import event_xml, seal

        scene = f"s:{SURVEY}:{event.department}"
        wechat_event, key = {"subscribe": ("subscribe", "qrscene_" + scene), "scan": ("SCAN", scene),
                             "unsubscribe": ("unsubscribe", None)}[event.kind]  # fmt: skip
        xml = event_xml(ACCOUNT, event.openid, wechat_event, key, create_time=event.ms // 1000)
        sealed = seal(xml, self.settings.wechat, "plaintext")
        reply = self.client.post("/wechat", query_string=sealed.params, data=sealed.body,
                                 content_type="text/xml")  # fmt: skip
        if reply.status_code != 200:
            raise RuntimeError(f"webhook answered {reply.status_code} to a simulated {event.kind}")

    def answer(self, event: Event) -> None:
        from app.intake import issue_form_token, record_response

        a = event.answer or {}
        form, dept = self.load_form(self.session, SURVEY, event.department)
        data: dict[str, list[str]] = {}
        scored = [q for q in form.questions if q.scored and q.kind == "single"]
        for q, level in zip(scored, a["levels"], strict=False):
            data[q.input_name] = [q.options[min(level, len(q.options) - 1)].key]
        for q in form.questions:
            if q.kind == "single" and not q.scored:
                data[q.input_name] = [q.options[a["type"] % len(q.options)].key]
            elif q.kind == "text" and a.get("text"):
                data[q.input_name] = [a["text"]]
        now = datetime.fromtimestamp(event.ms / 1000, UTC)
        token = issue_form_token(self.settings.app.secret_key, event.ms / 1000 - a["completion_s"])
        record_response(
            self.session, self.redis, self.settings, form=form, department=dept, openid=event.openid,
            data=data, form_token=token, user_agent=a["ua"], remote_addr=a["ip"], now=now,
        )  # fmt: skip
        self.labels[event.openid] = event.label

    def drain(self, now_ms: int) -> None:
        from app.intake.drain import drain_backlog
        from app.integrity.quarantine import sweep_leavers

        report = drain_backlog(
            self.session, self.redis, batch_size=5000, max_seconds=600, detector=self.detector
        )
        self.retroactive += report.retroactive
        self.retroactive += sweep_leavers(self.session, self.redis, self.detector, now_ms)
        self.session.commit()


def measure(app: Flask, player: Player, outcome: Outcome) -> Outcome:
    from app.db import db
    from app.intake.respondents import respondent_key
    from app.models import Department, Response
    from app.org.surveys import get_survey
    from app.tally.verify import verify_tallies

    secret = app.config["SETTINGS"].survey.respondent_secret
    label_of = {respondent_key(secret, openid): label for openid, label in player.labels.items()}
    names = dict(db.session.execute(select(Department.id, Department.name)).all())
    organic: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for rkey, dept_id, status in db.session.execute(select(Response.respondent_key, Response.department_id,
                                                           Response.status)):  # fmt: skip
        label = label_of.get(rkey, "unknown")
        outcome.answers[label] += 1
        held = status == "quarantined"
        outcome.held[label] += held
        if label == "organic":
            organic[names[dept_id]][0] += held
            organic[names[dept_id]][1] += 1
    outcome.organic_by_department = {name: (h, n) for name, (h, n) in organic.items()}
    outcome.retroactive = player.retroactive
    outcome.tally_differences = len(verify_tallies(db.session, get_survey(db.session, SURVEY)))
    return outcome


def run(app: Flask, options: Options, threshold: int) -> Outcome:
    """Prepare the (empty) database of `app`, play the campaign and measure the detector."""
    from app.integrity.detector import Detector

    started = time.monotonic()
    with app.app_context():
        codes = prepare(app, options)
        events = Campaign(options, codes).build()
        player = Player(app, Detector(threshold))
        player.play(events)
        outcome = Outcome({
            "seed": options.seed, "days": options.days, "organic_per_day": options.organic_per_day,
            "kinds": list(options.kinds), "incidents": options.incidents, "size": options.size,
            "threshold": threshold, "start": options.start.date().isoformat(),
        })  # fmt: skip
        outcome.events = len(events)
        measure(app, player, outcome)
    outcome.seconds = time.monotonic() - started
    return outcome


def report_lines(outcome: Outcome) -> list[str]:
    """The run as a plain-text report (what the command prints)."""
    d = outcome.as_dict()
    lines = [
        f"campaign: seed {d['options']['seed']}, {d['options']['days']} days, {outcome.events} events, "
        f"threshold {d['options']['threshold']}, {d['seconds']} s",
        f"overall: precision {d['precision']:.3f}  recall {d['recall']:.3f}  "
        f"({outcome.stuffed_held} of {outcome.stuffed} stuffed answers quarantined)",
        f"organic: {d['organic']['quarantined']} of {d['organic']['answers']} quarantined "
        f"({d['organic']['share']:.2%})",
        "per kind:",
    ]
    for kind in KINDS:
        if kind in d["kinds"]:
            k = d["kinds"][kind]
            lines.append(f"  {kind:<18} recall {k['recall']:.3f}  ({k['quarantined']} of {k['answers']})")
    lines.append("organic answers wrongly quarantined, per department (held / answers):")
    for name, row in d["organic_by_department"].items():
        lines.append(f"  {name:<14} {row['quarantined']:>3} / {row['answers']}")
    lines.append(f"retroactively quarantined: {d['retroactive']}; tally differences (tallies verify): "
                 f"{d['tally_differences']}")  # fmt: skip
    return lines
