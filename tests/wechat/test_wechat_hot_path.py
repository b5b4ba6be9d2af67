"""The webhook's fast path over HTTP: no SQL for a scene routed recently, route changes reaching
it (at once through the ORM of any process, within ROUTE_TTL otherwise), and replay/retry safety
of the single-round-trip admission."""

from __future__ import annotations

import time
from contextlib import contextmanager

import pytest
from sqlalchemy import event, text

from app.dev.wechat_server import event_xml, seal
from app.intake.respondents import respondent_key, scanned_recently
from app.org.scenes import GENERATION_KEY, ROUTE_TTL
from tests.wechat.test_wechat_webhook import ACCOUNT, deliver, new_openid, post

SCENE = "s:demo-departments:D08"


@pytest.fixture
def settings(app):
    return app.config["SETTINGS"]


@contextmanager
def committed(app):
    """A session of a short app context, as a console or CLI request would have: the webhook's
    requests then get app contexts (and sessions) of their own, as they do in production."""
    from app.db import db

    with app.app_context():
        yield db.session
        db.session.commit()


@pytest.fixture
def demo(app):
    from app.org.demo import load_demo

    with committed(app) as session:
        load_demo(session, app.config["SETTINGS"].var_dir)


def said(reply: dict) -> str:
    """What the citizen reads: a text reply's content, or a card's title, description and link."""
    return reply.get("Content") or "\n".join(reply.get(k, "") for k in ("Title", "Description", "Url"))


def scan(client, settings, scene=SCENE, mode="safe", openid=None) -> str:
    return said(deliver(client, settings, event_xml(ACCOUNT, openid or new_openid(), "SCAN", scene), mode))


class StatementCounter:
    def __init__(self, engine) -> None:
        self.engine, self.count = engine, 0

    def _count(self, *_args) -> None:
        self.count += 1

    def __enter__(self) -> StatementCounter:
        event.listen(self.engine, "before_cursor_execute", self._count)
        return self

    def __exit__(self, *exc) -> None:
        event.remove(self.engine, "before_cursor_execute", self._count)


def wait_for(predicate, timeout: float, what: str) -> float:
    """Seconds until predicate() held; fails after `timeout`."""
    started = time.monotonic()
    while not predicate():
        assert time.monotonic() - started < timeout, f"timed out waiting for {what}"
        time.sleep(0.05)
    return time.monotonic() - started


# --- no SQL in the steady state --------------------------------------------------------------------


def test_a_scene_routed_recently_needs_no_sql(app, client, settings, demo, redis_client):
    engine = app.extensions["wxsurvey_db"].engine
    with StatementCounter(engine) as first:
        assert "/q/demo-departments/D08" in scan(client, settings)
    assert first.count > 0
    followers = [new_openid() for _ in range(5)]
    with StatementCounter(engine) as steady:
        for openid in followers:
            assert "/q/demo-departments/D08" in scan(client, settings, openid=openid)
        assert "/q/demo-departments/D08" in scan(client, settings, "qrscene_" + SCENE, "plaintext")
    assert steady.count == 0
    secret = settings.survey.respondent_secret
    assert all(scanned_recently(redis_client, respondent_key(secret, o), "D08") for o in followers)


# --- route changes reach the webhook -------------------------------------------------------------------


def test_changes_through_another_process_reach_the_next_scan(tmp_path, app, client, settings, demo):
    """Another app (as the console or the CLI in another process) commits through the ORM: the
    routing generation moves in Redis and the very next scan is routed afresh."""
    from app import create_app
    from app.org import departments, surveys
    from tests.conftest import settings_for

    assert "/q/demo-departments/D08" in scan(client, settings)
    assert "/q/demo-departments/D09" in scan(client, settings, "s:demo-departments:D09")
    (tmp_path / "other").mkdir()
    other = create_app(settings_for(tmp_path / "other", settings.database.url, settings.redis.url))
    try:
        with committed(other) as session:
            departments.set_active(session, "D09", False)
        inactive = scan(client, settings, "s:demo-departments:D09")
        assert "不在评价范围" in inactive and "<a href" not in inactive
        with committed(other) as session:
            surveys.close_survey(session, "demo-departments")
        closed = scan(client, settings)
        assert "已经结束" in closed and "<a href" not in closed
        with committed(other) as session:
            surveys.open_survey(session, "demo-departments")
            departments.set_active(session, "D09", True)
        assert "/q/demo-departments/D09" in scan(client, settings, "s:demo-departments:D09")
    finally:
        other.extensions["wxsurvey_db"].session.remove()
        other.extensions["wxsurvey_db"].engine.dispose()


def test_a_rolled_back_change_does_not_move_the_generation(app, demo, redis_client):
    from app.org import departments

    before = redis_client.get(GENERATION_KEY)
    with committed(app) as session:
        departments.set_active(session, "D09", False)
        session.flush()
        session.rollback()
    assert redis_client.get(GENERATION_KEY) == before
    with committed(app) as session:
        departments.set_active(session, "D09", False)
    assert redis_client.get(GENERATION_KEY) != before


def test_changes_outside_the_orm_reach_the_webhook_within_the_bound(app, client, settings, demo):
    """Raw SQL bumps no generation: the cached route lives at most ROUTE_TTL seconds."""
    assert "/q/demo-departments/D08" in scan(client, settings)
    engine = app.extensions["wxsurvey_db"].engine
    with engine.begin() as conn:
        conn.execute(text("UPDATE surveys SET status = 'closed' WHERE slug = 'demo-departments'"))
    changed_at = time.monotonic()
    wait_for(lambda: "已经结束" in scan(client, settings), ROUTE_TTL + 5, "the closed survey to show")
    assert time.monotonic() - changed_at <= ROUTE_TTL + 2  # the bound, with a little slack for a busy box


# --- replays and retries ---------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["plaintext", "safe"])
def test_a_refused_replay_leaves_the_real_message_unseen(client, settings, demo, redis_client, mode):
    now = int(time.time())
    first = seal(event_xml(ACCOUNT, new_openid(), "SCAN", SCENE, now), settings.wechat, mode, now, "5150")
    assert post(client, first).status_code == 200
    keys_before = set(redis_client.keys("*"))
    real_openid = new_openid()
    real = event_xml(ACCOUNT, real_openid, "SCAN", SCENE, now)
    replayed = post(client, seal(real, settings.wechat, mode, now, "5150"))  # a nonce already used
    assert replayed.status_code == 403
    assert set(redis_client.keys("*")) == keys_before  # refused: nothing written
    # WeChat's own delivery of that message (its own nonce) is a first delivery: handled in full
    reply = deliver(client, settings, real, mode, timestamp=now, nonce="5151")
    assert "/q/demo-departments/D08" in said(reply) and reply["ToUserName"] == real_openid
    key = respondent_key(settings.survey.respondent_secret, real_openid)
    assert scanned_recently(redis_client, key, "D08")


def test_retries_get_the_first_reply_even_after_the_route_changed(app, client, settings, demo, redis_client):
    from app.org import surveys

    openid = new_openid()
    xml = event_xml(ACCOUNT, openid, "subscribe", "qrscene_" + SCENE, int(time.time()))
    first = deliver(client, settings, xml, "safe")
    assert "/q/demo-departments/D08" in said(first)
    with committed(app) as session:
        surveys.close_survey(session, "demo-departments")
    redis_client.delete(*redis_client.keys("wx:scan:*"))
    for mode in ("safe", "compatible", "plaintext"):  # each retry with a nonce of its own
        assert said(deliver(client, settings, xml, mode)) == said(first)
    assert redis_client.keys("wx:scan:*") == []  # side effects once
    assert "已经结束" in scan(client, settings)  # while a new scan sees the closed survey


def test_concurrent_deliveries_of_one_message_share_the_first_reply(app, settings, demo, redis_client):
    """WeChat's retries racing the first delivery (each with a nonce of its own): every one gets
    the reply that was stored first, byte for byte, and the message is handled once."""
    from concurrent.futures import ThreadPoolExecutor

    from app.dev.wechat_server import open_reply

    now = int(time.time())
    xml = event_xml(ACCOUNT, new_openid(), "SCAN", SCENE, now)
    deliveries = [seal(xml, settings.wechat, "safe", now, str(9000 + i)) for i in range(8)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(lambda sealed: post(app.test_client(), sealed), deliveries))
    assert {r.status_code for r in responses} == {200}
    replies = [open_reply(r.get_data(as_text=True), settings.wechat) for r in responses]
    assert all(reply == replies[0] for reply in replies) and "/q/demo-departments/D08" in said(replies[0])
    assert len(redis_client.keys("wx:msg:*")) == 1
    assert len(redis_client.keys("wx:nonce:*")) == len(deliveries)
