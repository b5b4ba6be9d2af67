"""The WeChat API client against the simulator's fake WeChat over real HTTP: one shared access
token for every process, stale-token recovery, permanent QR tickets, menu, template messages,
the RQ jobs and the `qr` / `wechat` commands."""

from __future__ import annotations

import io
import json
import threading

import pytest
import requests
import zxingcpp
from PIL import Image

from app.errors import Unavailable
from app.wechat_api import TOKEN_KEY, WeChatApi, WeChatApiError, default_menu
from tests.conftest import run_cli


@pytest.fixture
def wechat(app, live_server, redis_client):
    """Settings whose simulator is this live server."""
    app.config["SETTINGS"].app.base_url = live_server.url
    return app.config["SETTINGS"]


def fetches(redis_client) -> int:
    return int(redis_client.get("wx:sim:token_fetches") or 0)


def test_one_token_shared_by_every_process(app, wechat, redis_client, redis_url):
    import redis as redis_lib

    tokens, errors = [], []

    def one_process():
        # each "process" has its own Redis connection and HTTP session, like gunicorn workers
        client = redis_lib.Redis.from_url(redis_url, decode_responses=True)
        try:
            tokens.append(WeChatApi(wechat, client).access_token())
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            client.close()

    threads = [threading.Thread(target=one_process) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors
    assert len(tokens) == 8 and len(set(tokens)) == 1
    assert fetches(redis_client) == 1
    assert 6000 < redis_client.ttl(TOKEN_KEY) <= 7200 - 300


def test_a_stale_token_is_replaced_once(wechat, redis_client):
    api = WeChatApi(wechat, redis_client)
    old = api.access_token()
    redis_client.delete(f"wx:sim:token:{old}")  # WeChat no longer accepts it
    api.create_menu(default_menu(wechat))
    assert fetches(redis_client) == 2 and api.access_token() != old
    menu = api.get_menu()
    assert [b["name"] for b in menu["selfmenu_info"]["button"]] == ["我要评价", "使用帮助"]
    assert api.send_template_message("oTEST1", "tmpl-1", {"first": {"value": "感谢"}}, url="http://x/") == 1
    sent = json.loads(redis_client.lindex("wx:sim:template_messages", 0))
    assert sent["touser"] == "oTEST1" and sent["data"]["first"]["value"] == "感谢"


def test_plain_token_endpoint_and_bad_credentials(wechat, redis_client):
    api = WeChatApi(wechat, redis_client)
    assert api.fetch_access_token(stable=False).startswith("SIM_")
    from dataclasses import replace

    wrong = replace(wechat, wechat=replace(wechat.wechat, secret="wrong"))
    redis_client.delete(TOKEN_KEY)
    with pytest.raises(WeChatApiError) as caught:
        WeChatApi(wrong, redis_client).access_token()
    assert caught.value.errcode == 40125


def test_unreachable_wechat_is_unavailable(app, redis_client):
    app.config["SETTINGS"].wechat.api_base_url = "http://127.0.0.1:9"
    with pytest.raises(Unavailable):
        WeChatApi(app.config["SETTINGS"], redis_client, timeout=2).access_token()


def test_permanent_ticket_created_once_and_its_image_scans(wechat, redis_client, demo, session):
    from app.org.scenes import scene_rows

    api = WeChatApi(wechat, redis_client)
    first = api.create_permanent_ticket("s:demo-departments:D08")
    again = api.create_permanent_ticket("s:demo-departments:D08")
    assert first == again
    assert redis_client.hlen("wx:sim:tickets") == 1
    image = requests.get(first.image_url, timeout=10)
    assert image.status_code == 200 and image.headers["Content-Type"] == "image/png"
    decoded = zxingcpp.read_barcodes(Image.open(io.BytesIO(image.content)))
    assert [d.text for d in decoded] == [first.url]
    rows = {r["scene"]: r for r in scene_rows(session, redis_client, wechat, "demo-departments")}
    assert rows["s:demo-departments:D08"]["wechat_qr_url"] == first.image_url
    assert rows["s:demo-departments:D09"]["wechat_qr_url"] is None
    with pytest.raises(ValueError):
        api.create_permanent_ticket("x" * 65)


def test_jobs_run_by_a_real_worker(app, wechat, redis_client, demo):
    from app.jobs.queues import enqueue, get_queue
    from app.jobs.wechat import create_wechat_tickets, publish_menu
    from app.jobs.worker import WxsurveyWorker
    from app.redis_store import redis_store

    with app.app_context():
        job = enqueue("wechat", create_wechat_tickets, "demo-departments")
        enqueue("wechat", publish_menu)
        WxsurveyWorker([get_queue("wechat")], connection=redis_store.raw).work(burst=True)
        job.refresh()
        assert job.get_status() == "finished" and job.return_value() == 25
    assert redis_client.hlen("wx:api:qr_tickets") == 25
    assert json.loads(redis_client.get("wx:sim:menu"))["button"][0]["key"] == "EVALUATE"


@pytest.fixture
def cli_env(cli_env, live_server):
    return {**cli_env, "WXSURVEY_APP_BASE_URL": live_server.url}


def test_qr_commands(cli_env, demo, live_server, app):
    app.config["SETTINGS"].app.base_url = live_server.url  # the simulator the CLI talks to
    listed = run_cli("qr", "list", "--json", env=cli_env)
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert len(rows) == 25 + 6 + 18
    row = next(r for r in rows if r["department_code"] == "D08")
    assert set(row) >= {"survey_slug", "department_code", "department_name", "scene", "url", "wechat_qr_url"}
    assert row == {
        "survey_slug": "demo-departments",
        "department_code": "D08",
        "department_name": "市教育局",
        "scene": "s:demo-departments:D08",
        "department_scene": "d:D08",
        "url": f"{live_server.url}/q/demo-departments/D08",
        "wechat_qr_url": None,
    }
    assert all(len(r["scene"]) <= 64 for r in rows)
    made = run_cli("qr", "tickets", "--survey", "demo-counties", env=cli_env)
    assert made.returncode == 0 and "24 WeChat codes ready" in made.stdout, made.stderr
    rows = json.loads(run_cli("qr", "list", "--json", "--survey", "demo-counties", env=cli_env).stdout)
    assert all(
        r["wechat_qr_url"].startswith(live_server.url + "/dev/wechat/cgi-bin/showqrcode?ticket=")
        for r in rows
    )
    menu = run_cli("wechat", "menu", env=cli_env)
    assert menu.returncode == 0 and "menu published" in menu.stdout
    unknown = run_cli("qr", "list", "--survey", "nope", env=cli_env)
    assert unknown.returncode == 1 and unknown.stderr.count("\n") == 1 and "nope" in unknown.stderr
