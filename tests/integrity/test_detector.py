"""The stuffing detector in the drain, on real Redis and real SQL: scores stored with each response,
retroactive quarantine moving tally rows exactly, follow-and-leave through the real webhook, the
review queue's reasons in Chinese, and the retention purge leaving tallies unchanged."""

from __future__ import annotations

import random
import re
import time
import zlib
from datetime import UTC, datetime, timedelta

import pytest
import redis
from sqlalchemy import func, select, update
from werkzeug.datastructures import MultiDict

from app import accounts, clock, intake
from app.dev.wechat_server import event_xml, seal
from app.intake.drain import drain_backlog
from app.intake.respondents import record_scan, respondent_key
from app.integrity import held
from app.integrity.detector import Detector
from app.integrity.quarantine import sweep_leavers
from app.models import AuditEntry, Response, TallyRow
from app.org.surveys import get_survey
from app.tally.verify import verify_tallies
from tests.relay import Relay

SURVEY, DEPT = "demo-departments", "D08"
OFFICE_UA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36"
PHONE_UA = "Mozilla/5.0 (iPhone) AppleWebKit/605.1.15 Mobile/15E148 MicroMessenger/8.0.40 NetType/4G"


def answers(form, choice: int | None, seed: int = 0) -> MultiDict:
    """Every rating `choice` (0 = 非常满意), or (None) a citizen's own mix of the top three."""
    rng = random.Random(seed)
    data = MultiDict()
    for q in form.questions:
        if q.kind == "single":
            data.add(q.input_name, q.options[rng.randrange(3) if choice is None else choice].key)
    return data


def submit(app, session, redis, openid, *, ip, ua=PHONE_UA, choice: int | None = 0, scanned=False,
           now: datetime | None = None):  # fmt: skip
    settings = app.config["SETTINGS"]
    form, dept = intake.load_form(session, SURVEY, DEPT)
    if scanned:
        record_scan(redis, respondent_key(settings.survey.respondent_secret, openid), DEPT, 24)
    token = intake.issue_form_token(settings.app.secret_key, (now.timestamp() if now else time.time()) - 45)
    outcome = intake.record_response(
        session, redis, settings, form=form, department=dept, openid=openid,
        data=answers(form, choice, zlib.crc32(openid.encode())), form_token=token, user_agent=ua,
        remote_addr=ip, now=now,
    )  # fmt: skip
    assert outcome.kind == "accepted"


def official(session) -> dict[str, int]:
    session.rollback()
    rows = session.execute(
        select(TallyRow.status, func.sum(TallyRow.count))
        .where(TallyRow.question_id == 0)
        .group_by(TallyRow.status)
    )
    return {status: int(n) for status, n in rows}


def by_status(session, prefix: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in session.scalars(select(Response)):
        if (r.meta or {}).get("ip", "").startswith(prefix):
            out[r.status] = out.get(r.status, 0) + 1
    return out


def citizens(app, session, redis, n: int, start: int = 0) -> None:
    for i in range(start, start + n):  # honest citizens: scanned, WeChat, their own carriers' prefixes
        submit(app, session, redis, f"citizen-{i}", ip=f"112.{i}.{i % 7}.9", choice=None, scanned=True)


def test_office_network_is_quarantined_retroactively_and_tallies_move_exactly(
    app, session, demo, redis_client
):
    detector = Detector(55)
    citizens(app, session, redis_client, 20)
    for i in range(4):  # the office starts: four answers are not a cluster yet
        submit(app, session, redis_client, f"staff-{i}", ip=f"10.9.9.{i + 1}", ua=OFFICE_UA)
    first = drain_backlog(session, redis_client, detector=detector)
    assert first.inserted == 24 and first.quarantined == 0
    assert official(session) == {"counted": 24}
    stored = session.scalars(select(Response)).all()
    assert all(r.score is not None for r in stored)  # every response carries its score ...
    for i in range(4, 20):
        submit(app, session, redis_client, f"staff-{i}", ip=f"10.9.9.{i + 1}", ua=OFFICE_UA)
    second = drain_backlog(session, redis_client, detector=detector)
    assert second.quarantined == 16 and second.retroactive == 4  # the first four follow the other sixteen
    assert by_status(session, "10.9.9.") == {"quarantined": 20}
    assert by_status(session, "112.") == {"counted": 20}
    assert official(session) == {"counted": 20, "quarantined": 20}
    held = session.scalars(select(Response).where(Response.status == "quarantined")).first()
    assert held.score >= 60 and held.reasons[0][0] == "ip_cluster"  # ... and its reasons
    assert verify_tallies(session, get_survey(session, SURVEY)) == []
    entry = session.scalars(select(AuditEntry).where(AuditEntry.action == "response.quarantine")).one()
    assert entry.actor == "integrity" and entry.detail["count"] == 4
    assert entry.detail["ids"] == sorted(entry.detail["ids"])  # in the order stored (the target: a range)


def test_a_second_look_at_answers_whose_counts_were_lost(app, session, demo, redis_client):
    """A second look passes over the answers no signal can touch, as the drain does; when the counts
    no longer hold the answers' own fields (Redis lost them, a drain died before writing) it weighs
    them all instead of failing, and the office is still quarantined by what comes next."""
    citizens(app, session, redis_client, 20)
    for i in range(4):
        submit(app, session, redis_client, f"staff-{i}", ip=f"10.9.9.{i + 1}", ua=OFFICE_UA)
    assert drain_backlog(session, redis_client, detector=Detector(55)).inserted == 24
    lost = list(redis_client.scan_iter("wx:ig:*"))
    assert lost
    redis_client.delete(*lost)  # the window counts are gone; a new drain process starts
    survey_id, dept_id = session.execute(select(Response.survey_id, Response.department_id)).first()
    day = 86_400_000
    now_ms = int(time.time() * 1000)
    assert Detector(55).look_again(session, redis_client, survey_id, dept_id, now_ms - day, now_ms + day) == 0
    for i in range(4, 20):
        submit(app, session, redis_client, f"staff-{i}", ip=f"10.9.9.{i + 1}", ua=OFFICE_UA)
    second = drain_backlog(session, redis_client, detector=Detector(55))
    assert second.quarantined == 16 and second.retroactive == 4
    assert by_status(session, "10.9.9.") == {"quarantined": 20}
    assert by_status(session, "112.") == {"counted": 20}
    assert verify_tallies(session, get_survey(session, SURVEY)) == []


def test_a_phone_room_on_its_own_carriers_is_held_by_identical_choices_and_the_burst(
    app, session, demo, redis_client
):
    """Phones passed around at the window: each scans the code, WeChat, its own carrier's prefix,
    every rating 非常满意 but a different service picked in the segment question (which the choice
    signature leaves out). Citizens in the same twenty minutes stay counted."""
    settings = app.config["SETTINGS"]
    form, dept = intake.load_form(session, SURVEY, DEPT)
    segment = next(q for q in form.questions if q.id == form.segment_question_id)
    citizens(app, session, redis_client, 10)
    for i in range(20):
        openid = f"phone-{i}"
        record_scan(redis_client, respondent_key(settings.survey.respondent_secret, openid), DEPT, 24)
        data = answers(form, 0)
        data.setlist(segment.input_name, [segment.options[i % len(segment.options)].key])
        outcome = intake.record_response(
            session, redis_client, settings, form=form, department=dept, openid=openid, data=data,
            form_token=intake.issue_form_token(settings.app.secret_key, time.time() - 45),
            user_agent=PHONE_UA, remote_addr=f"117.{i + 1}.{i * 7 % 250}.9",
        )  # fmt: skip
        assert outcome.kind == "accepted"
    report = drain_backlog(session, redis_client, detector=Detector(55))
    assert report.inserted == 30
    assert by_status(session, "117.") == {"quarantined": 20}
    assert by_status(session, "112.") == {"counted": 10}
    held = session.scalars(select(Response).where(Response.status == "quarantined")).first()
    assert {name for name, _ in held.reasons} >= {"burst", "same_answers"}
    assert verify_tallies(session, get_survey(session, SURVEY)) == []


def test_an_office_over_two_days_is_held_by_the_two_day_address_cluster(app, session, demo, redis_client):
    """Seven staff from the office network yesterday, seven today, spread over the working day:
    neither day's cluster is enough with straight-lining alone; the two days together are, and
    yesterday's answers follow."""
    day = max(clock.today(), get_survey(session, SURVEY).period_start + timedelta(days=1))  # a yesterday
    with clock.pinned(clock.day_start(day) + timedelta(hours=23)):  # late on that day, city time
        _office_over_two_days(app, session, redis_client, clock.day_start(day) + timedelta(hours=9))


def _office_over_two_days(app, session, redis_client, today) -> None:
    detector = Detector(55)
    yesterday = today - timedelta(days=1)
    for i in range(20):  # citizens: scanned, their own carriers' prefixes
        submit(app, session, redis_client, f"old-{i}", ip=f"112.{i}.{i % 7}.9", choice=None, scanned=True,
               now=yesterday + timedelta(minutes=20 * i))  # fmt: skip
    for i in range(7):
        submit(
            app,
            session,
            redis_client,
            f"staff-{i}",
            ip=f"10.9.9.{i + 1}",
            now=yesterday + timedelta(minutes=40 * i + 5),
        )
    first = drain_backlog(session, redis_client, detector=detector)
    assert first.inserted == 27 and first.quarantined == 0
    for i in range(20):
        submit(app, session, redis_client, f"new-{i}", ip=f"112.{i + 50}.{i % 7}.9", choice=None,
               scanned=True, now=today + timedelta(minutes=20 * i))  # fmt: skip
    for i in range(7):
        submit(
            app,
            session,
            redis_client,
            f"staff-{i + 7}",
            ip=f"10.9.9.{i + 8}",
            now=today + timedelta(minutes=40 * i + 5),
        )
    second = drain_backlog(session, redis_client, detector=detector)
    assert second.quarantined == 7 and second.retroactive == 7  # yesterday's staff follow today's
    assert by_status(session, "10.9.9.") == {"quarantined": 14}
    assert by_status(session, "112.") == {"counted": 40}
    held = session.scalars(select(Response).where(Response.status == "quarantined")).first()
    assert held.reasons[0][0] == "ip_cluster"
    assert verify_tallies(session, get_survey(session, SURVEY)) == []


def test_organic_traffic_alone_is_not_quarantined(app, session, demo, redis_client):
    citizens(app, session, redis_client, 40)
    report = drain_backlog(session, redis_client, detector=Detector(55))
    assert report.inserted == 40 and report.quarantined == 0 and report.retroactive == 0
    assert official(session) == {"counted": 40}


def test_without_a_detector_nothing_is_scored(app, session, demo, redis_client):
    citizens(app, session, redis_client, 3)
    drain_backlog(session, redis_client)
    assert [r.score for r in session.scalars(select(Response))] == [None, None, None]


def deliver(client, settings, openid: str, event: str, key: str | None, when: datetime) -> None:
    xml = event_xml("gh_test", openid, event, key, create_time=int(when.timestamp()))
    sealed = seal(xml, settings.wechat, "plaintext")
    response = client.post("/wechat", query_string=sealed.params, data=sealed.body, content_type="text/xml")
    assert response.status_code == 200


def test_follow_rate_and_leave_through_the_webhook(app, session, demo, redis_client, client):
    settings = app.config["SETTINGS"]
    detector = Detector(55)
    now = datetime.now(UTC)
    scene = f"s:{SURVEY}:{DEPT}"
    deliver(client, settings, "bought-1", "subscribe", "qrscene_" + scene, now - timedelta(minutes=3))
    deliver(client, settings, "loyal-1", "subscribe", "qrscene_" + scene, now - timedelta(minutes=3))
    for openid in ("bought-1", "loyal-1"):
        submit(app, session, redis_client, openid, ip="117.1.2.3", choice=0)  # all 非常满意: straight-lined
    drain_backlog(session, redis_client, detector=detector)
    assert official(session) == {"counted": 2}  # following is no offence
    deliver(client, settings, "bought-1", "unsubscribe", None, now + timedelta(minutes=20))
    moved = sweep_leavers(session, redis_client, detector, int(time.time() * 1000) + 3_600_000)
    session.commit()
    assert moved == 1
    key = respondent_key(settings.survey.respondent_secret, "bought-1")
    held = session.scalars(select(Response).where(Response.status == "quarantined")).one()
    assert held.respondent_key == key and held.reasons[0][0] == "follow_churn"
    assert official(session) == {"counted": 1, "quarantined": 1}
    assert verify_tallies(session, get_survey(session, SURVEY)) == []
    assert sweep_leavers(session, redis_client, detector, int(time.time() * 1000)) == 0  # looked at once


def test_review_queue_shows_reasons_in_chinese_and_a_decision_moves_counts_back(
    app, session, demo, redis_client, client
):  # fmt: skip
    detector = Detector(55)
    citizens(app, session, redis_client, 20)
    for i in range(20):
        submit(app, session, redis_client, f"staff-{i}", ip=f"10.9.9.{i + 1}", ua=OFFICE_UA)
    drain_backlog(session, redis_client, detector=detector)
    accounts.create_admin(session, username="city", password="correct-horse-9", role="city_admin")
    session.commit()
    page = client.get("/console/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    client.post(
        "/console/login", data={"username": "city", "password": "correct-horse-9", "csrf_token": csrf}
    )
    html = client.get("/console/review").get_data(as_text=True)
    assert "刷票嫌疑分" in html and "同一网段集中提交" in html and "非微信浏览器集中提交" in html
    results = client.get(f"/console/results?survey={SURVEY}").get_data(as_text=True)
    assert "各单位计入与待审核" in results
    row = re.search(r"<td>市教育局</td><td class=\"num\">(\d+)</td><td class=\"num\">(\d+)</td>", results)
    assert row and row.groups() == ("20", "20")
    held = session.scalars(select(Response).where(Response.status == "quarantined")).first()
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    client.post(
        f"/console/review/{held.id}",
        data={"decision": "accept", "reason": "核实为真实办事群众", "csrf_token": csrf},
    )
    assert official(session) == {"counted": 21, "quarantined": 19}
    assert verify_tallies(session, get_survey(session, SURVEY)) == []


def test_retention_purge_removes_old_metadata_and_keeps_tallies(app, session, demo, redis_client, runner):
    from app.cli.integrity import retention

    citizens(app, session, redis_client, 6)
    drain_backlog(session, redis_client, detector=Detector(55))
    old = session.scalars(select(Response.id).order_by(Response.id).limit(4)).all()
    session.execute(update(Response).where(Response.id.in_(old)).values(
        submitted_at=datetime.now(UTC) - timedelta(days=100)))  # fmt: skip
    # the tally rows follow the moved day, as if these had been answered then
    from app.models import TallyMonth

    session.execute(TallyRow.__table__.delete())
    session.execute(TallyMonth.__table__.delete())
    from app.tally.rows import apply_tally
    from app.tally.verify import recount

    apply_tally(session, list(recount(session, get_survey(session, SURVEY)).elements()))
    session.commit()
    before = official(session)
    result = runner.invoke(retention, ["purge", "--older-than", "90"])
    assert result.exit_code == 0, result.output
    assert "4 responses" in result.output
    session.rollback()
    metas = {r.id: r.meta for r in session.scalars(select(Response))}
    assert all(metas[i] == {} for i in old)
    assert all(metas[i].get("ip") for i in metas if i not in old)
    assert official(session) == before
    assert verify_tallies(session, get_survey(session, SURVEY)) == []
    assert runner.invoke(retention, ["purge", "--older-than", "0"]).exit_code != 0


def test_each_committed_batch_is_counted_once_by_the_windows(app, session, demo, redis_client):
    """Each committed batch's window counts are written to Redis as the drain goes: after a run
    every answer is counted once, and a second run (a new process: its own copy) adds nothing."""
    citizens(app, session, redis_client, 23)
    report = drain_backlog(session, redis_client, batch_size=5, detector=Detector(55))
    assert (report.batches, report.inserted) == (5, 23)
    day_keys = [k for k in redis_client.scan_iter("wx:ig:*") if re.search(r":d\d+$", str(k))]
    assert sum(int(redis_client.hget(k, "n") or 0) for k in day_keys) == 23
    drain_backlog(session, redis_client, batch_size=5, detector=Detector(55))
    assert sum(int(redis_client.hget(k, "n") or 0) for k in day_keys) == 23


@pytest.fixture
def single_redis_url(redis_url: str) -> str:
    """The test Redis's URL for a relay in front of it: one server (tests/integrity runs on a
    cluster only when WXSURVEY_TEST_CLUSTER_ALSO adds it, and the relay fronts one server)."""
    if redis_url.startswith("redis+cluster://"):
        pytest.skip("the relay stands in front of one server")
    return redis_url


@pytest.mark.parametrize("lost", [1, 2, 3])
def test_counts_whose_write_reply_was_lost_count_once(
    app, session, demo, redis_client, single_redis_url, lost
):
    """Redis writes the counts of the run's first batches (held.WRITE_BATCHES) and the reply is
    lost. 1: the script runner's retry on a new connection writes them again; 2: the retry is lost
    too, and they are written with the next batches'; 3: that is lost once more. The counts are
    values, not increments: every answer is counted once however often a write is made, none is
    left out."""
    answers = 3 * held.WRITE_BATCHES * 2  # two writes' worth of batches of 3, and the run's last
    citizens(app, session, redis_client, answers)
    redis_client.script_load(held.WRITE_SCRIPT.script)
    proxy, proxy_url = Relay.for_redis(single_redis_url)
    through = redis.Redis.from_url(proxy_url, decode_responses=True)
    proxy.lose(held.WRITE_SCRIPT.sha.encode(), times=lost)
    try:
        report = drain_backlog(session, through, batch_size=3, detector=Detector(55))
    finally:
        through.close()
        proxy.close()
    assert proxy.lost == lost
    assert report.inserted == answers
    assert session.scalar(select(func.count(Response.id))) == answers
    day_keys = [k for k in redis_client.scan_iter("wx:ig:*") if re.search(r":d\d+$", str(k))]
    assert sum(int(redis_client.hget(k, "n") or 0) for k in day_keys) == answers


def test_counts_not_written_as_a_run_ends_are_kept_with_the_shard(
    app, session, demo, redis_client, single_redis_url
):
    """The run's last write fails (its reply lost, the retry too): the drain keeps its copy and
    leaves its lease to lapse instead of letting another drain take the shard without those
    counts; taking the shard again, the same process still owns its copy and writes it."""
    citizens(app, session, redis_client, 3)
    redis_client.script_load(held.WRITE_SCRIPT.script)
    proxy, proxy_url = Relay.for_redis(single_redis_url)
    through = redis.Redis.from_url(proxy_url, decode_responses=True)
    proxy.lose(held.WRITE_SCRIPT.sha.encode(), times=2)
    detector = Detector(55)
    try:
        report = drain_backlog(session, through, batch_size=5, detector=detector)
    finally:
        through.close()
        proxy.close()
    assert report.inserted == 3 and proxy.lost >= 1
    assert redis_client.exists(held.lease_key(0)), "the lease is left to lapse"
    redis_client.delete(held.lease_key(0))  # (it lapsed)
    drain_backlog(session, redis_client, detector=detector)
    day_keys = [k for k in redis_client.scan_iter("wx:ig:*") if re.search(r":d\d+$", str(k))]
    assert sum(int(redis_client.hget(k, "n") or 0) for k in day_keys) == 3
