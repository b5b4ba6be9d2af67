"""The simulator's fake WeChat API over real HTTP: tokens, stable_token, QR tickets and showqrcode,
OAuth authorize and code exchange, menu and template messages. Its state lives in Redis (wx:sim:*).

The real client code (app/wechat_api.py, app/public/wechat_oauth.py) talks to it through
wechat.api_base_url/oauth_base_url.
It answers as slowly as WeChat (wechat.simulator_latency_ms per endpoint, 80 ms for the code
exchange by default) and fails as rarely (wechat.simulator_error_rate: errcode -1, "system
busy"), so it runs in a process of its own (app/dev/simulator.py) where its waits hold none of
the web server's threads; the web app serves it too (wechat.simulator_url empty), for tests.
"""

from __future__ import annotations

import json
import random
import secrets
import time
from urllib.parse import urlencode, urlsplit, urlunsplit

from flask import Blueprint, Response, current_app, jsonify, make_response, redirect, request

from app.config import per_endpoint
from app.redis_store import redis_store
from qr import url_qr_png

TOKEN_TTL = 7200
CODE_TTL = 300  # an OAuth code lives five minutes and is used once
OPENID_COOKIE = "wxsim_openid"
PREFIX = "/dev/wechat/"
# Pages a browser opens (WeChat answers those with a page, not an errcode): slowed, never failed.
BROWSER_PAGES = ("connect/oauth2/authorize", "cgi-bin/showqrcode")

bp = Blueprint("wechat_sim", __name__)


@bp.before_request
def like_wechat():
    """WeChat's latency and its rare "system busy", per endpoint, before the endpoint runs
    (a failed code exchange leaves the code unused, as a busy WeChat would)."""
    wechat = _wechat()
    endpoint = request.path[len(PREFIX) :] if request.path.startswith(PREFIX) else request.path
    latency = per_endpoint(wechat.simulator_latency_ms, endpoint)
    if latency > 0:
        time.sleep(latency / 1000)
    failing = per_endpoint(wechat.simulator_error_rate, endpoint)
    if endpoint not in BROWSER_PAGES and random.random() < failing:
        return _error(-1, "system error")
    return None


def _wechat():
    return current_app.config["SETTINGS"].wechat


def _error(errcode: int, errmsg: str):
    return jsonify({"errcode": errcode, "errmsg": errmsg})


def _credentials_ok(appid: str | None, secret: str | None) -> bool:
    return appid == _wechat().appid and secret == _wechat().secret


def _issue_token() -> Response:
    token = "SIM_" + secrets.token_urlsafe(32)
    redis_store.client.set(f"wx:sim:token:{token}", "1", ex=TOKEN_TTL)
    redis_store.client.incr("wx:sim:token_fetches")
    return jsonify({"access_token": token, "expires_in": TOKEN_TTL})


def _token_ok() -> bool:
    token = request.args.get("access_token", "")
    return bool(token) and bool(redis_store.client.exists(f"wx:sim:token:{token}"))


def _json_body() -> dict:
    data = request.get_json(silent=True, force=True)
    return data if isinstance(data, dict) else {}


@bp.get("/wechat/cgi-bin/token")
def sim_token():
    if request.args.get("grant_type") != "client_credential":
        return _error(40002, "invalid grant_type")
    if not _credentials_ok(request.args.get("appid"), request.args.get("secret")):
        return _error(40125, "invalid appsecret")
    return _issue_token()


@bp.post("/wechat/cgi-bin/stable_token")
def sim_stable_token():
    body = _json_body()
    if body.get("grant_type") != "client_credential":
        return _error(40002, "invalid grant_type")
    if not _credentials_ok(body.get("appid"), body.get("secret")):
        return _error(40125, "invalid appsecret")
    return _issue_token()


@bp.post("/wechat/cgi-bin/qrcode/create")
def sim_qrcode_create():
    if not _token_ok():
        return _error(40001, "invalid credential, access_token is invalid or not latest")
    body = _json_body()
    scene = ((body.get("action_info") or {}).get("scene") or {}).get("scene_str")
    if (
        body.get("action_name") != "QR_LIMIT_STR_SCENE"
        or not isinstance(scene, str)
        or not 1 <= len(scene) <= 64
    ):
        return _error(40053, "invalid action info")
    # Like WeChat, one permanent code per scene: asking again returns the same ticket.
    ticket = redis_store.client.hget("wx:sim:scene_tickets", scene)
    if ticket is None:
        ticket = "gQSIM" + secrets.token_urlsafe(24)
        redis_store.client.hset("wx:sim:scene_tickets", scene, ticket)
        redis_store.client.hset("wx:sim:tickets", ticket, scene)
    return jsonify({"ticket": ticket, "url": _ticket_content_url(str(ticket))})


def _ticket_content_url(ticket: str) -> str:
    """What the simulated code encodes: a page of the simulator that scans it on the phone."""
    return f"{current_app.config['SETTINGS'].app.base_url}/dev/phone?ticket={ticket}"


def ticket_scene(ticket: str) -> str | None:
    scene = redis_store.client.hget("wx:sim:tickets", ticket)
    return None if scene is None else str(scene)


@bp.get("/wechat/cgi-bin/showqrcode")
def sim_showqrcode():
    ticket = request.args.get("ticket", "")
    if not ticket or ticket_scene(ticket) is None:
        return Response("ticket not found", status=404, mimetype="text/plain")
    png = url_qr_png(_ticket_content_url(ticket), box_size=8, border=4)
    return Response(png, mimetype="image/png", headers={"Cache-Control": "max-age=3600"})


# --- OAuth ----------------------------------------------------------------------------------------


def browser_openid(explicit: str | None = None) -> tuple[str, bool]:
    """This browser's simulated openid (its own, stable), or an explicit one; and whether it is new."""
    if explicit:
        return explicit, True
    known = request.cookies.get(OPENID_COOKIE, "")
    if known.startswith("o") and 10 <= len(known) <= 64:
        return known, False
    return "oSIM" + secrets.token_urlsafe(18), True


def remember_openid(response: Response, openid: str) -> Response:
    response.set_cookie(
        OPENID_COOKIE, openid, max_age=365 * 86400, path="/dev", httponly=True, samesite="Lax"
    )
    return response


@bp.get("/wechat/connect/oauth2/authorize")
def sim_authorize():
    args = request.args
    redirect_uri = args.get("redirect_uri", "")
    parts = urlsplit(redirect_uri)
    if args.get("appid") != _wechat().appid:
        return Response("appid 无效", status=400, mimetype="text/plain")
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return Response("redirect_uri 无效", status=400, mimetype="text/plain")
    if args.get("response_type") != "code" or args.get("scope") not in ("snsapi_base", "snsapi_userinfo"):
        return Response("scope 无效", status=400, mimetype="text/plain")
    openid, new = browser_openid(args.get("openid"))
    code = "SIMCODE" + secrets.token_urlsafe(16)
    grant = {"openid": openid, "scope": args["scope"], "snapshot": args.get("snapshot") == "1"}
    redis_store.client.set(f"wx:sim:code:{code}", json.dumps(grant), ex=CODE_TTL)
    query = (parts.query + "&" if parts.query else "") + urlencode(
        {"code": code, "state": args.get("state", "")}
    )
    response = make_response(redirect(urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))))
    return remember_openid(response, openid) if new and not args.get("openid") else response


@bp.get("/wechat/sns/oauth2/access_token")
def sim_oauth_access_token():
    args = request.args
    if args.get("grant_type") != "authorization_code":
        return _error(40002, "invalid grant_type")
    if not _credentials_ok(args.get("appid"), args.get("secret")):
        return _error(40125, "invalid appsecret")
    key = f"wx:sim:code:{args.get('code', '')}"
    pipe = redis_store.client.pipeline(transaction=True)
    pipe.get(key)
    pipe.delete(key)
    raw, _ = pipe.execute()
    if raw is None:
        return _error(40163, "code been used or invalid")
    grant = json.loads(raw)
    body = {
        "access_token": "SIMUSER_" + secrets.token_urlsafe(24),
        "expires_in": TOKEN_TTL,
        "refresh_token": "SIMREFRESH_" + secrets.token_urlsafe(24),
        "openid": grant["openid"],
        "scope": grant["scope"],
    }
    if grant["snapshot"]:
        body["is_snapshotuser"] = 1
    return jsonify(body)


# --- menu and template messages ------------------------------------------------------------------


@bp.post("/wechat/cgi-bin/menu/create")
def sim_menu_create():
    if not _token_ok():
        return _error(40001, "invalid credential")
    body = _json_body()
    buttons = body.get("button")
    if not isinstance(buttons, list) or not 1 <= len(buttons) <= 3:
        return _error(40016, "invalid button size")
    redis_store.client.set("wx:sim:menu", json.dumps(body, ensure_ascii=False))
    return _error(0, "ok")


@bp.get("/wechat/cgi-bin/get_current_selfmenu_info")
def sim_menu_get():
    if not _token_ok():
        return _error(40001, "invalid credential")
    raw = redis_store.client.get("wx:sim:menu")
    menu = json.loads(raw) if raw else None
    return jsonify({"is_menu_open": 1 if menu else 0, "selfmenu_info": menu or {"button": []}})


@bp.post("/wechat/cgi-bin/message/template/send")
def sim_template_send():
    if not _token_ok():
        return _error(40001, "invalid credential")
    body = _json_body()
    if not body.get("touser") or not body.get("template_id"):
        return _error(40003, "invalid openid")
    msgid = redis_store.client.rpush("wx:sim:template_messages", json.dumps(body, ensure_ascii=False))
    _show_on_phone(body)
    return jsonify({"errcode": 0, "errmsg": "ok", "msgid": msgid})


def _show_on_phone(body: dict) -> None:
    """The message as a bubble in the simulated phone's chat of that openid (app/dev/phone.py)."""
    data = body.get("data")
    fields = data if isinstance(data, dict) else {}
    lines = [str((fields.get(k) or {}).get("value", "")) for k in ("first", "remark") if fields.get(k)]
    if body.get("url"):
        lines.append('<a href="{}">查看答复并评价</a>'.format(body["url"]))
    key = f"wx:sim:chat:{body['touser']}"
    item = {"who": "account", "text": "【模板消息】" + "\n".join(lines)}
    redis_store.client.rpush(key, json.dumps(item, ensure_ascii=False))
    redis_store.client.expire(key, 86400)
