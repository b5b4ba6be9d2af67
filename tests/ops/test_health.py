"""Operators' endpoints report the database, Redis and queue lag."""

from __future__ import annotations


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.get_json() == {"status": "ok"}


def test_readyz_reports_dependencies_and_queues(client):
    response = client.get("/readyz")
    body = response.get_json()
    assert response.status_code == 200
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["redis"]["ok"] is True
    assert set(body["checks"]["queues"]) >= {"intake", "default", "exports", "wechat"}


def test_readyz_shows_waiting_jobs(app, client):
    from app.jobs.queues import get_queue

    with app.app_context():
        get_queue("exports").enqueue("builtins.len", "abc")
    body = client.get("/readyz").get_json()
    assert body["checks"]["queues"]["exports"]["waiting"] == 1
    assert body["checks"]["queues"]["exports"]["oldest_seconds"] is not None


def test_readyz_degraded_when_database_is_gone(tmp_path, redis_url, redis_client):
    from app import create_app
    from tests.conftest import settings_for

    refused = "postgresql+psycopg://nobody@127.0.0.1:9/none?connect_timeout=2"
    app = create_app(settings_for(tmp_path, refused, redis_url))
    response = app.test_client().get("/readyz")
    body = response.get_json()
    assert response.status_code == 200
    assert body["status"] == "degraded"
    assert body["checks"]["database"]["ok"] is False
    assert body["checks"]["redis"]["ok"] is True
    app.extensions["wxsurvey_db"].engine.dispose()


def test_unknown_page_is_a_kind_chinese_404(client):
    response = client.get("/no/such/page")
    assert response.status_code == 404
    assert "页面不存在" in response.get_data(as_text=True)
