"""The access token renewed ahead of expiry by the scheduled job, by one holder across processes,
against the simulator's fake WeChat over real HTTP."""

from __future__ import annotations

import threading

import redis as redis_lib
from prometheus_client import REGISTRY

from app.wechat_api import REFRESH_AHEAD, TOKEN_KEY, WeChatApi


def fetches(redis_client) -> int:
    return int(redis_client.get("wx:sim:token_fetches") or 0)


def scheduled_refreshes() -> float:
    return REGISTRY.get_sample_value("wxsurvey_wechat_token_refreshes_total", {"trigger": "scheduled"}) or 0.0


def test_a_token_near_expiry_is_renewed_once_by_one_of_many_processes(
    app, live_server, redis_client, redis_url
):
    settings = app.config["SETTINGS"]
    settings.app.base_url = live_server.url  # the simulator's fake WeChat on real HTTP
    old = WeChatApi(settings, redis_client).access_token()
    assert fetches(redis_client) == 1

    from app.jobs.wechat import refresh_access_token

    with app.app_context():
        assert refresh_access_token() == "not due"  # 6,900 s left: nothing to do
    assert fetches(redis_client) == 1

    redis_client.expire(TOKEN_KEY, REFRESH_AHEAD - 20)  # the cached token is about to go
    before = scheduled_refreshes()
    results, errors = [], []

    def one_scheduler():
        client = redis_lib.Redis.from_url(redis_url, decode_responses=True)  # each its own connection
        try:
            results.append(WeChatApi(settings, client).refresh_ahead())
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            client.close()

    threads = [threading.Thread(target=one_scheduler) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors
    renewed = [token for token in results if token]
    assert len(renewed) == 1 and renewed[0] != old
    assert fetches(redis_client) == 2
    assert redis_client.get(TOKEN_KEY) == renewed[0] and redis_client.ttl(TOKEN_KEY) > 6000
    assert scheduled_refreshes() == before + 1


def test_the_job_is_a_no_op_without_credentials(app):
    from app.jobs.wechat import refresh_access_token

    app.config["SETTINGS"].wechat.secret = ""
    with app.app_context():
        assert refresh_access_token() == "no WeChat credentials"


def test_the_scheduler_runs_the_refresh_every_minute(app):
    from app.schedule import periodic_jobs

    jobs = {job.name: job for job in periodic_jobs(app.config["SETTINGS"])}
    refresh = jobs["wechat-token"]
    assert (refresh.func, refresh.queue, refresh.interval) == (
        "app.jobs.wechat.refresh_access_token",
        "wechat",
        60,
    )
