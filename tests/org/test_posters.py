"""QR posters: every demo department's poster decodes back to its questionnaire URL (or WeChat
code), batches as an RQ job (called directly and through a real worker), and `qr export`."""

from __future__ import annotations

import io
import json
import re
import zipfile

import pytest
import zxingcpp
from PIL import Image

from app.errors import NotFound, Unavailable
from app.jobs.posters import batch_path, build_poster_batch
from app.jobs.queues import get_queue
from app.jobs.worker import WxsurveyWorker
from app.org import posters as service
from app.org.departments import get_department
from app.org.scenes import survey_scene
from app.org.surveys import get_survey
from app.redis_store import redis_store
from app.wechat_api import TICKETS_KEY
from tests.conftest import run_cli
from tests.console.test_console import login, post

BASE = "http://wx.test"


def decoded(png: bytes) -> list[str]:
    image = Image.open(io.BytesIO(png))
    return [code.text for code in zxingcpp.read_barcodes(image)]


def test_every_demo_department_poster_decodes_to_its_questionnaire(app, session, demo, tmp_path):
    settings = app.config["SETTINGS"]
    seen = 0
    for slug in ("demo-departments", "demo-counties"):
        out = tmp_path / f"{slug}.zip"
        count = service.write_batch(session, redis_store.client, settings, slug, "zip", out)
        survey = get_survey(session, slug)
        expected = {d.code: d for d in service.batch_departments(session, survey)}
        assert count == len(expected) > 0
        with zipfile.ZipFile(out) as archive:
            names = archive.namelist()
            assert len(names) == count
            for name in names:
                code = name.split("-", 1)[0]
                assert expected[code].name in name
                assert decoded(archive.read(name)) == [f"{BASE}/q/{slug}/{code}"], name
                seen += 1
    assert seen == 25 + 6 * 4  # every city department; every county and township


def test_existing_wechat_code_goes_on_the_poster(app, session, demo):
    settings = app.config["SETTINGS"]
    scene = survey_scene("demo-departments", "D08")
    record = {
        "ticket": "gQH47joAAAAAAAAAASxodHRw",
        "url": "http://weixin.qq.com/q/02abcDEF",
        "showqrcode_base": "",
    }
    redis_store.client.hset(TICKETS_KEY, scene, json.dumps(record))
    code, png = service.department_poster(session, redis_store.client, settings, "demo-departments", "D08")
    assert (code.kind, code.content) == ("wechat", record["url"])
    assert decoded(png) == [record["url"]]
    # A plain URL code can still be asked for.
    code, png = service.department_poster(
        session, redis_store.client, settings, "demo-departments", "D08", "url"
    )
    assert decoded(png) == [f"{BASE}/q/demo-departments/D08"]


def test_wechat_code_is_created_through_the_simulator_for_the_poster(app, session, demo, live_server):
    """kind="wechat" creates the permanent parametric code through the WeChat API over real HTTP
    (the dev simulator), and the poster carries the URL WeChat's code encodes."""
    settings = app.config["SETTINGS"]
    settings.app.base_url = live_server.url  # the simulator the API client talks to
    scene = survey_scene("demo-departments", "D09")
    assert redis_store.client.hget(TICKETS_KEY, scene) is None
    code, png = service.department_poster(
        session, redis_store.client, settings, "demo-departments", "D09", "wechat"
    )
    assert code.kind == "wechat" and code.content != code.questionnaire_url
    assert decoded(png) == [code.content]
    assert json.loads(redis_store.client.hget(TICKETS_KEY, scene))["url"] == code.content
    again, _ = service.department_poster(session, redis_store.client, settings, "demo-departments", "D09")
    assert again == code  # auto reuses the code, without calling out again


def test_poster_errors_are_clear(app, session, demo, tmp_path):
    settings = app.config["SETTINGS"]
    with pytest.raises(NotFound):  # the county survey does not evaluate city departments
        service.department_poster(session, redis_store.client, settings, "demo-counties", "D08")
    settings.qr.font_path = str(tmp_path / "missing.ttc")
    with pytest.raises(Unavailable, match="中文字体"):
        service.department_poster(session, redis_store.client, settings, "demo-departments", "D08")


def test_batch_job_called_directly_writes_a_pdf_within_scope(app, session, demo):
    county = get_department(session, "C03")
    scope = [county.id] + [c.id for c in county.children]
    result = build_poster_batch("posters-direct", "demo-counties", "pdf", scope)
    assert result["count"] == 4
    data = batch_path(app.config["SETTINGS"], "posters-direct", "pdf").read_bytes()
    assert data.startswith(b"%PDF") and data.count(b"/Type /Page\n") + data.count(b"/Type /Page ") >= 1


def test_console_batch_runs_on_a_real_worker_with_progress(app, session, demo, client, redis_client):
    from app import accounts

    accounts.create_admin(session, username="west", password="correct-horse-battery", role="scoped_admin",
                          scope_code="C02")  # fmt: skip
    session.commit()
    login(client, "west")
    page = client.get("/console/posters?survey=demo-counties").get_data(as_text=True)
    assert "西山区石门镇" in page and "东湖区" not in page
    started = post(client, "/console/posters/demo-counties/batch", {"format": "zip"})
    assert started.status_code == 303
    batch_id = re.search(r"batch=(posters-[0-9a-f]+)", started.headers["Location"]).group(1)
    state = client.get(f"/console/posters/batches/{batch_id}").get_json()
    assert state["status"] == "queued" and "download_url" not in state
    assert client.get(f"/console/posters/batches/{batch_id}/download").status_code == 404

    worker = WxsurveyWorker([get_queue("default")], connection=redis_store.raw)
    assert worker.work(burst=True)
    state = client.get(f"/console/posters/batches/{batch_id}").get_json()
    assert state["status"] == "finished" and state["done"] == state["total"] == 4
    download = client.get(state["download_url"])
    assert download.status_code == 200
    with zipfile.ZipFile(io.BytesIO(download.data)) as archive:
        names = sorted(archive.namelist())
        assert [n.split("-")[0] for n in names] == ["C02", "C02T1", "C02T2", "C02T3"]
        assert decoded(archive.read(names[1])) == [f"{BASE}/q/demo-counties/C02T1"]

    # Another admin may not watch or download someone else's batch.
    other = app.test_client()
    accounts.create_admin(session, username="east", password="correct-horse-battery", role="scoped_admin",
                          scope_code="C01")  # fmt: skip
    session.commit()
    login(other, "east")
    assert other.get(f"/console/posters/batches/{batch_id}").status_code == 403
    assert other.get(f"/console/posters/batches/{batch_id}/download").status_code == 403


def test_qr_export_command(app, session, demo, database_url, redis_url, tmp_path):
    env = {
        "WXSURVEY_DATABASE_URL": database_url,
        "WXSURVEY_REDIS_URL": redis_url,
        "WXSURVEY_APP_VAR_DIR": str(tmp_path / "var"),
        "WXSURVEY_APP_BASE_URL": BASE,
        "WXSURVEY_CONFIG": str(tmp_path / "config.toml"),
    }
    out = tmp_path / "out"
    result = run_cli("qr", "export", "--out", str(out), "--survey", "demo-counties", env=env)
    assert result.returncode == 0, result.stderr
    pngs = sorted((out / "demo-counties").glob("*.png"))
    assert len(pngs) == 24
    assert decoded(pngs[0].read_bytes()) == [f"{BASE}/q/demo-counties/C01"]
    bad = run_cli("qr", "export", "--out", str(out), "--survey", "nope", env=env)
    assert bad.returncode != 0 and len(bad.stderr.strip().splitlines()) == 1 and "nope" in bad.stderr
