"""The scan card's picture: drawn once per department name, kept in Redis, served with caching
headers (a year for the current version, five minutes otherwise) and conditional requests."""

from __future__ import annotations

import re

from app.org import departments
from app.org.cards import card_url


def test_picture_is_drawn_once_and_served_with_caching(app, client, demo, session, redis_client):
    settings = app.config["SETTINGS"]
    url = card_url(settings, "D08", "市教育局")
    assert re.fullmatch(r"http://wx\.test/cards/D08\.png\?v=[0-9a-f]{12}", url)
    path = url.removeprefix(settings.app.base_url)
    first = client.get(path)
    assert first.status_code == 200 and first.mimetype == "image/png" and first.data.startswith(b"\x89PNG")
    assert first.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert redis_client.keys("wx:card:D08:*") == [f"wx:card:D08:{url.rsplit('=', 1)[1]}"]
    again = client.get(path)  # read back from Redis as bytes, not drawn again
    assert again.status_code == 200 and again.data == first.data
    etag = first.headers["ETag"]
    assert client.get(path, headers={"If-None-Match": etag}).status_code == 304
    stale = client.get("/cards/D08.png?v=old")
    assert stale.status_code == 200 and stale.headers["Cache-Control"] == "public, max-age=300"
    assert client.get("/cards/NOPE.png").status_code == 404


def test_a_renamed_department_gets_a_new_picture_and_url(app, client, demo, session):
    settings = app.config["SETTINGS"]
    before = card_url(settings, "D08", "市教育局")
    departments.update_department(session, "D08", name="市教育和体育局")
    session.commit()
    after = card_url(settings, "D08", "市教育和体育局")
    assert before != after
    old = client.get(before.removeprefix(settings.app.base_url))
    assert old.headers["Cache-Control"] == "public, max-age=300"  # the old link shows the new name briefly
    new = client.get(after.removeprefix(settings.app.base_url))
    assert new.headers["Cache-Control"].endswith("immutable") and new.data == old.data
