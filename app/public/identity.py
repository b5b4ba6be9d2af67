"""Who is answering: the openid from WeChat OAuth (snsapi_base), kept in the signed session.

The questionnaire view does `openid = current_openid()` and, when it is None, returns
`begin_identity(request.url)`: the OAuth redirect in WeChat's browser, the "open in WeChat"
page elsewhere, or (require_wechat_browser off, or dev mode with the simulator) a cookie identity.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import secrets
import time
from urllib.parse import urlsplit

from flask import Response, current_app, redirect, render_template, request, session, url_for
from redis.exceptions import RedisError
from werkzeug.wrappers import Response as ResponseBase

from app.errors import Invalid
from app.org import scan_pass
from app.public.blueprint import bp
from app.public.wechat_oauth import OAuthIdentity, exchange_oauth_code, oauth_authorize_url
from app.redis_store import ScriptRunner, redis_store
from app.wechat_api import WeChatApiError, talks_to_simulator, uses_simulator
from qr import url_qr_png

OPENID_KEY = "wx_openid"
CHANNEL_KEY = "wx_channel"
STATE_KEY = "wx_oauth_state"
RETURN_KEY = "wx_return_to"
# Set by the simulator's phone page (/dev/open): this browser plays WeChat's browser.
SIMULATED_BROWSER_KEY = "wx_sim_browser"
CHANNELS = ("wechat", "dev", "web")
MAX_STATE = 128  # ours are 22 characters; WeChat passes state back as given (at most 128 bytes)
# The WSGI environ key under which app.fast.callback hands the view its exchange's (code, outcome).
EXCHANGED_KEY = "wxsurvey.oauth_exchanged"
# ... and app.fast.questionnaire the scan pass it took: (pass, openid or None).
PASS_TAKEN_KEY = "wxsurvey.scan_pass_taken"
MAX_CODE = 128  # WeChat's codes are 32 characters: a longer one is no code, and is not sent on
EXCHANGE_TTL = 300  # seconds: a code lives five minutes at WeChat
TWIN_WAIT = 6.0  # seconds a twin callback waits for the first one's exchange (its timeout is 5 s)
# A way back the callback answers itself (questionnaire_path): a questionnaire's plain address.
_QUESTIONNAIRE = re.compile(r"/q/([A-Za-z0-9_.-]{1,40})/([A-Za-z0-9_.-]{1,20})")

log = logging.getLogger(__name__)


def openid_of(data) -> str | None:
    """The openid a session's data carries (Flask's session, or the fast path's decoded cookie)."""
    openid = data.get(OPENID_KEY)
    return openid if isinstance(openid, str) and openid else None


def channel_of(data) -> str:
    channel = data.get(CHANNEL_KEY)
    return channel if openid_of(data) and channel in CHANNELS else "web"


def current_openid() -> str | None:
    return openid_of(session)


def current_channel() -> str:
    return channel_of(session)


def in_wechat_browser() -> bool:
    if "MicroMessenger" in request.headers.get("User-Agent", ""):
        return True
    return uses_simulator(_settings()) and bool(session.get(SIMULATED_BROWSER_KEY))


def wechat_browser_required() -> bool:
    """require_wechat_browser as it applies: dev mode with the simulator lets desktop browsers in."""
    settings = _settings()
    return bool(settings.wechat.require_wechat_browser) and not uses_simulator(settings)


def begin_identity(return_to: str) -> ResponseBase:
    """What a page needing an openid returns when there is none yet."""
    path = local_path(return_to)
    if in_wechat_browser():
        return redirect(start_oauth(session, path, url_for("public.oauth_callback"), _settings()))
    if wechat_browser_required():
        page_url = _settings().app.base_url + path
        qr = base64.b64encode(url_qr_png(page_url, box_size=6, border=2)).decode()
        html = render_template("public/open_in_wechat.html", page_url=page_url, qr_data=qr)
        return Response(html, status=200, headers={"Cache-Control": "no-store"})
    session[OPENID_KEY] = "dev-" + secrets.token_urlsafe(16)
    session[CHANNEL_KEY] = "dev"
    return redirect(path)


def identity_from_pass(data, token: str, slug: str, code: str, settings, redis, environ) -> str | None:
    """The scanner's openid from the scan pass in the link (app.org.scan_pass), kept in the session
    (Flask's, or the fast path's) as OAuth's would be. None, and nothing kept, for a pass used up,
    expired, for another questionnaire or malformed, or a Redis out of reach: the caller then
    starts OAuth. A pass the fast path took for this request is not taken again (PASS_TAKEN_KEY).
    Only in WeChat's browser where it is required: the caller checks."""
    handed = environ.pop(PASS_TAKEN_KEY, None)
    if handed is not None and handed[0] == token:
        openid = handed[1]
    else:
        try:
            openid = scan_pass.take(redis, token, slug, code)
        except RedisError as exc:
            log.warning("scan pass not read (%s); OAuth instead", type(exc).__name__)
            openid = None
    if openid:
        remember_identity(data, OAuthIdentity(openid, False), settings)
    return openid


def start_oauth(data, return_to: str, callback_path: str, settings) -> str:
    """WeChat's OAuth address for this browser, with a new state kept in its session (Flask's, or
    app.fast.questionnaire's) beside where to come back to (begin_identity, and the fast path)."""
    state = secrets.token_urlsafe(16)
    data[STATE_KEY] = state
    data[RETURN_KEY] = return_to
    return oauth_authorize_url(settings, settings.app.base_url + callback_path, state)


@bp.get("/oauth/callback")
def oauth_callback():
    if request.method == "HEAD":  # (Flask runs a GET view for HEAD): a code is spent on a GET only
        return Response(status=405, headers={"Allow": "GET"})
    return_to = session.get(RETURN_KEY) or "/"
    if current_openid():  # a refresh of this URL: the code was already used, never send it again
        return redirect(return_to)
    expected = session.pop(STATE_KEY, None)
    try:
        state, code = request.args.get("state", ""), request.args.get("code", "")
    except UnicodeDecodeError:  # a query string that is not UTF-8 is no link WeChat sent
        state = code = ""
    if not callback_link_holds(expected, state, code):
        return _notice(400, "链接已过期", "这个授权链接已经失效了，请重新扫码或从公众号菜单进入。", return_to)
    try:
        identity = _exchange_once(state, code)
    except Invalid as exc:
        return _notice(400, "授权已失效", exc.message, return_to)
    except WeChatApiError as exc:  # (one line: an outage at WeChat is no bug here)
        current_app.logger.warning("OAuth code exchange failed: %s", exc)
        return _notice(503, "网络有点忙", "暂时无法确认您的身份，请稍后点击下方按钮重试。", return_to)
    if identity.is_snapshotuser:
        return _notice(
            403,
            "请使用完整服务",
            "您正在浏览页面快照，无法参与评价。请点击屏幕下方的「使用完整服务」后再填写问卷，谢谢！",
            None,
        )
    remember_identity(session, identity, _settings())
    where = questionnaire_path(return_to, request.script_root)
    if where is None:
        return redirect(return_to)
    # The questionnaire itself, not a redirect to it: one round trip less for the phone. (Its
    # script puts the questionnaire's address in the address bar, for a refresh or a share.)
    return current_app.view_functions["public.questionnaire"](survey_slug=where[0], department_code=where[1])


def questionnaire_path(return_to: str, script_root: str) -> tuple[str, str] | None:
    """(survey slug, department code) when the way back is a questionnaire's plain address under no
    script root, which the callback answers with the questionnaire itself (the view, and
    app.fast.callback) and the fast path writes as it is (app.fast.questionnaire)."""
    found = None if script_root.rstrip("/") else _QUESTIONNAIRE.fullmatch(return_to)
    return (found.group(1), found.group(2)) if found else None


def callback_link_holds(expected, state: str, code: str) -> bool:
    """Whether a callback carries the state this browser was sent with and a code worth sending to
    WeChat (the view, and app.fast.callback before it exchanges anything)."""
    return _same_state(expected, state) and bool(code) and len(code) <= MAX_CODE


def _same_state(expected, given: str) -> bool:
    """Whether the callback's state is the one this browser was sent with. Compared as UTF-8 bytes:
    compare_digest refuses str with non-ASCII characters (a forged state may carry any)."""
    if not isinstance(expected, str) or not expected or not given or len(given) > MAX_STATE:
        return False
    return hmac.compare_digest(expected.encode(), given.encode("utf-8", "surrogatepass"))


def remember_identity(data, identity: OAuthIdentity, settings) -> None:
    """Keep a successful exchange's openid in the session (Flask's, or the fast path's)."""
    data[OPENID_KEY] = identity.openid
    data[CHANNEL_KEY] = "dev" if talks_to_simulator(settings) else "wechat"


def _exchange_once(state: str, code: str) -> OAuthIdentity:
    """The code's exchange: the one the fast path (app.fast.callback) already made for this
    request, if it handed the request over after it (a code is single-use), else a new one."""
    handed = request.environ.pop(EXCHANGED_KEY, None)
    if handed is not None and handed[0] == code:
        if isinstance(handed[1], BaseException):
            raise handed[1]
        return handed[1]
    return exchange_once(_settings(), redis_store.client, state, code)


# KEYS[1]: the exchange's key. ARGV: its TTL, then the outcome to keep (none: claim it).
# Claiming returns 1 when this request is the first, else what the first has kept so far.
EXCHANGE_SCRIPT = ScriptRunner("""
if ARGV[2] == nil then
  if redis.call('SET', KEYS[1], '-', 'NX', 'EX', ARGV[1]) then return 1 end
  return redis.call('GET', KEYS[1]) or ''
end
if ARGV[2] == '' then return redis.call('DEL', KEYS[1]) end
return redis.call('SET', KEYS[1], ARGV[2], 'XX', 'EX', ARGV[1]) and 1 or 0
""")


def exchange_once(settings, redis, state: str, code: str) -> OAuthIdentity:
    """The one exchange of a callback's code (the view, and app.fast.callback). A twin of the
    callback (a double tap, a browser sending it twice at once) with the same state and code waits
    for the first one's outcome instead of sending the code again: WeChat would refuse it as used,
    and that kind 400, landing last, would leave the browser without the identity just won. Kept
    in Redis for the code's life under a hash of state and code, so only a browser holding that
    state (callback_link_holds, checked before) gets the outcome. Without Redis the code is sent
    (WeChat refuses a second use itself). One script call to claim, one to keep the outcome."""
    key = "wx:oauth:x:" + hashlib.sha256(f"{state}\n{code}".encode()).hexdigest()[:40]
    try:
        claimed = EXCHANGE_SCRIPT(redis, [key], [EXCHANGE_TTL])
    except RedisError:
        return exchange_oauth_code(settings, code)
    if claimed != 1:
        return _twins_outcome(redis, key, claimed)
    try:
        identity = exchange_oauth_code(settings, code)
    except Invalid:
        _keep(redis, key, "bad")
        raise
    except BaseException:
        _keep(redis, key, "")  # WeChat busy or unreachable: the code was not used up
        raise
    _keep(redis, key, f"ok|{int(identity.is_snapshotuser)}|{identity.openid}")
    return identity


def _keep(redis, key: str, outcome: str) -> None:
    """The first callback's outcome for its twins ("": none, the key dropped)."""
    try:
        EXCHANGE_SCRIPT(redis, [key], [EXCHANGE_TTL, outcome])
    except RedisError as exc:  # a twin then waits its time and gets the kind 503 retry page
        log.warning("oauth: the exchange's outcome was not kept (%s)", type(exc).__name__)


def _twins_outcome(redis, key: str, outcome) -> OAuthIdentity:
    """The outcome of the first callback's exchange, once it has one (waiting at most TWIN_WAIT)."""
    deadline = time.monotonic() + TWIN_WAIT
    while True:
        outcome = outcome.decode() if isinstance(outcome, bytes) else outcome
        if not outcome:  # the first one's exchange failed (its key dropped), or Redis is gone
            raise WeChatApiError("微信授权正在另一个请求中进行，未能确认结果")
        if outcome == "bad":
            raise Invalid("授权已失效，请重新打开问卷链接", field="code")
        if outcome.startswith("ok|"):
            _, snapshot, openid = outcome.split("|", 2)
            return OAuthIdentity(openid, snapshot == "1")
        if time.monotonic() > deadline:
            raise WeChatApiError("微信授权等待超时")
        time.sleep(0.02)  # the first callback is waiting on WeChat: tens of milliseconds
        try:
            outcome = redis.get(key)
        except RedisError:
            outcome = None


def _notice(status: int, title: str, message: str, retry_to: str | None):
    html = render_template("public/identity_notice.html", title=title, message=message, retry_to=retry_to)
    return Response(html, status=status, headers={"Cache-Control": "no-store"})


def local_path(url: str) -> str:
    """Only a path on this site (with its query): never an open redirect to somewhere else."""
    parts = urlsplit(url or "/")
    path = parts.path or "/"
    if not path.startswith("/") or path.startswith("//") or "\\" in path:
        path = "/"
    return path + (f"?{parts.query}" if parts.query else "")


def _settings():
    return current_app.config["SETTINGS"]
