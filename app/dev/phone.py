"""The simulator's phone page: pick a department's code, "scan" it (a signed, optionally encrypted
event POSTed over HTTP to /wechat), read the reply bubble, tap through the fake OAuth.
"""

from __future__ import annotations

import json
import re

import requests
from flask import abort, current_app, redirect, render_template, request, session, url_for
from markupsafe import Markup, escape

from app import clock
from app.db import db
from app.dev.blueprint import bp
from app.dev.fake_wechat import browser_openid, remember_openid, ticket_scene
from app.dev.wechat_server import MODE_NAMES, MODES, event_xml, open_reply, seal, text_xml
from app.org.scenes import scene_rows
from app.org.surveys import list_surveys
from app.public.identity import SIMULATED_BROWSER_KEY, local_path
from app.redis_store import redis_store

ACCOUNT = "gh_wxsurvey_sim"
CHAT_LIMIT = 30
MODE_KEY = "wx_sim_mode"
SCENE_KEY = "wx_sim_scene"
LINK_RE = re.compile(r'<a href="([^"]+)">([^<]*)</a>')


def _chat_key(openid: str) -> str:
    return f"wx:sim:chat:{openid}"


def _follower_key(openid: str) -> str:
    return f"wx:sim:follower:{openid}"


def _say(openid: str, who: str, text: str, card: dict | None = None) -> None:
    key = _chat_key(openid)
    item = {"who": who, "text": text, **({"card": card} if card else {})}
    redis_store.client.rpush(key, json.dumps(item, ensure_ascii=False))
    redis_store.client.ltrim(key, -CHAT_LIMIT, -1)
    redis_store.client.expire(key, 86400)


def bubble_html(text: str) -> Markup:
    """A reply's text, escaped, with its links opened as the simulated WeChat browser."""
    parts, last = [], 0
    for match in LINK_RE.finditer(text):
        parts.append(escape(text[last : match.start()]))
        target = url_for("dev.open_in_phone", url=match.group(1))
        parts.append(Markup('<a href="{}">{}</a>').format(target, match.group(2)))
        last = match.end()
    parts.append(escape(text[last:]))
    return Markup("").join(parts).replace("\n", Markup("<br>"))


def _card_links(item: dict) -> dict:
    """A card's picture as this site serves it, and its link opened as the simulated WeChat browser."""
    card = item.get("card")
    if not card:
        return {}
    base = current_app.config["SETTINGS"].app.base_url
    picture = card["picurl"][len(base) :] if card["picurl"].startswith(base + "/") else card["picurl"]
    return {"picture": picture, "open": url_for("dev.open_in_phone", url=card["url"])}


DEFAULT_MENU = [{"type": "click", "name": "我要评价", "key": "EVALUATE"},
                {"type": "click", "name": "使用帮助", "key": "HELP"}]  # fmt: skip


def _published_menu() -> list[dict]:
    """The top-level buttons last published to the fake WeChat API (the default menu before that)."""
    raw = redis_store.client.get("wx:sim:menu")
    buttons = (json.loads(raw) if raw else {}).get("button") or DEFAULT_MENU
    return [b for b in buttons if isinstance(b, dict) and b.get("name")][:3]


def _scenes() -> list[dict]:
    rows = scene_rows(db.session, redis_store.client, current_app.config["SETTINGS"])
    titles = {s.slug: s.title for s in list_surveys(db.session)}
    for row in rows:
        row["survey_title"] = titles.get(row["survey_slug"], row["survey_slug"])
    return rows


@bp.get("/phone")
def phone():
    openid, new = browser_openid()
    chosen = (
        ticket_scene(request.args.get("ticket", ""))
        or request.args.get("scene", "")
        or session.get(SCENE_KEY, "")
    )
    chat = [json.loads(item) for item in redis_store.client.lrange(_chat_key(openid), 0, -1)]
    html = render_template(
        "dev/phone.html",
        openid=openid,
        chat=[{**item, "html": bubble_html(item["text"]), **_card_links(item)} for item in chat],
        menu=_published_menu(),
        scenes=_scenes(),
        chosen=chosen,
        modes=[(m, MODE_NAMES[m]) for m in MODES],
        mode=session.get(MODE_KEY, "safe"),
        follower=bool(redis_store.client.exists(_follower_key(openid))),
        today=clock.today(),
    )
    response = current_app.make_response(html)
    return remember_openid(response, openid) if new else response


def _deliver(openid: str, xml: str) -> None:
    """POST the message to our own webhook over HTTP, as WeChat would, and keep the reply bubble."""
    wechat = current_app.config["SETTINGS"].wechat
    sealed = seal(xml, wechat, session.get(MODE_KEY, "safe"))
    try:
        url = request.host_url + "wechat"
        response = requests.post(url, params=sealed.params, data=sealed.body, timeout=5)
    except requests.RequestException as exc:
        _say(openid, "system", f"（模拟器无法连接 /wechat：{type(exc).__name__}）")
        return
    if response.status_code != 200:
        _say(openid, "system", f"（/wechat 返回 {response.status_code}：{response.text[:100]}）")
        return
    reply = open_reply(response.text, wechat)
    if reply.get("MsgType") == "text":
        _say(openid, "account", reply.get("Content", ""))
    elif reply.get("MsgType") == "news":
        card = {k.lower(): reply.get(k, "") for k in ("Title", "Description", "PicUrl", "Url")}
        _say(openid, "account", reply.get("Title", ""), card)
    elif reply:
        _say(openid, "system", f"（收到 {reply.get('MsgType')} 类型的回复）")


@bp.post("/phone/scan")
def phone_scan():
    openid, _ = browser_openid()
    scene = request.form.get("scene", "").strip()
    mode = request.form.get("mode", "safe")
    if not scene or len(scene) > 64 or mode not in MODES:
        abort(400)
    session[MODE_KEY], session[SCENE_KEY] = mode, scene
    follower = redis_store.client.exists(_follower_key(openid))
    _say(openid, "me", f"（扫描了二维码 {scene}，{MODE_NAMES[mode]}）")
    if follower:
        _deliver(openid, event_xml(ACCOUNT, openid, "SCAN", scene))
    else:
        _deliver(openid, event_xml(ACCOUNT, openid, "subscribe", "qrscene_" + scene))
        redis_store.client.set(_follower_key(openid), "1", ex=30 * 86400)
    return redirect(url_for("dev.phone") + "#latest")


@bp.post("/phone/send")
def phone_send():
    openid, _ = browser_openid()
    text = request.form.get("text", "").strip()[:200]
    if not text:
        return redirect(url_for("dev.phone"))
    _say(openid, "me", text)
    _deliver(openid, text_xml(ACCOUNT, openid, text))
    return redirect(url_for("dev.phone") + "#latest")


@bp.post("/phone/menu")
def phone_menu():
    openid, _ = browser_openid()
    key = request.form.get("key", "")
    if not key or len(key) > 128:
        abort(400)
    if key == "UNFOLLOW":
        _say(openid, "me", "（取消关注）")
        _deliver(openid, event_xml(ACCOUNT, openid, "unsubscribe"))
        redis_store.client.delete(_follower_key(openid), _chat_key(openid))
    else:
        _say(openid, "me", f"【菜单】{request.form.get('name', key)[:20]}")
        _deliver(openid, event_xml(ACCOUNT, openid, "CLICK", key))
    return redirect(url_for("dev.phone") + "#latest")


@bp.get("/open")
def open_in_phone():
    """Open a link as WeChat's browser would: this browser now plays WeChat's (OAuth, not a cookie id)."""
    session[SIMULATED_BROWSER_KEY] = True
    return redirect(local_path(request.args.get("url", "/")))
