"""The WeChat API client: the access token shared by every process through Redis, QR tickets,
the custom menu and template messages (the OAuth code exchange: app.public.wechat_oauth). Never
called on the webhook path.

In dev mode with the simulator on, `wechat.api_base_url` / `oauth_base_url` left at WeChat's
addresses mean the simulator instead: `wechat.simulator_url` (its own process, as `wxsurvey run`
starts it), else `{app.base_url}/dev/wechat` in the web app itself.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import requests
from redis import Redis

from app import clock
from app.config import DEFAULTS
from app.errors import Unavailable
from app.metrics import TOKEN_REFRESHES, WECHAT_API
from qr import SHOWQRCODE_BASE, permanent_scene_payload, showqrcode_url

if TYPE_CHECKING:
    from app.config import Settings

SIMULATOR_PATH = "/dev/wechat"
TOKEN_KEY = "wx:api:access_token"
TOKEN_LOCK = "wx:api:access_token:lock"
TICKETS_KEY = "wx:api:qr_tickets"  # hash: scene -> {"ticket", "url"} as JSON
# The shared token is dropped from the cache this long before WeChat's 7,200 s expiry, so no request
# races the deadline (in its last 5 minutes WeChat's stable_token hands out the next token).
TOKEN_MARGIN = 300
# The scheduled refresh (every minute) fetches the next token once the cached one has less than this
# left, so requests find a fresh token instead of fetching one on their own path.
REFRESH_AHEAD = 120
# errcodes meaning "this access token is no longer valid": drop it and fetch once more.
STALE_TOKEN_CODES = {40001, 40014, 42001}


_local = threading.local()


def shared_http() -> requests.Session:
    """This thread's keep-alive session to WeChat: a call reuses the connection the last one
    opened instead of a TCP (and in production TLS) handshake per call. One per thread,
    since a requests.Session is not meant to be shared between threads; a forked child (an RQ
    work horse) opens its own rather than write on its parent's sockets."""
    held = getattr(_local, "http", None)
    if held is None or held[0] != os.getpid():
        held = _local.http = (os.getpid(), requests.Session())
    return held[1]


def checked(data: Any, path: str) -> dict[str, Any]:
    """WeChat's answer, or WeChatApiError with its errcode; counted either way."""
    if not isinstance(data, dict):
        WECHAT_API.labels(path, "error").inc()
        raise WeChatApiError(f"微信接口返回了无法识别的内容（{path}）")
    try:  # WeChat's is an int; a string of one is read as it, anything else is no answer of WeChat's
        errcode = int(data.get("errcode") or 0)
    except (TypeError, ValueError):
        WECHAT_API.labels(path, "error").inc()
        raise WeChatApiError(f"微信接口返回了无法识别的内容（{path}）") from None
    if errcode:
        WECHAT_API.labels(path, "error").inc()
        raise WeChatApiError(f"微信接口错误 {errcode}：{data.get('errmsg', '')}（{path}）", errcode)
    WECHAT_API.labels(path, "ok").inc()
    return data


class WeChatApiError(Unavailable):
    """WeChat refused or could not be reached; `errcode` is WeChat's when it answered."""

    def __init__(self, message: str, errcode: int | None = None):
        super().__init__(message)
        self.errcode = errcode


def uses_simulator(settings: Settings) -> bool:
    return not settings.is_production and bool(settings.wechat.simulator)


def simulator_base(settings: Settings) -> str:
    return settings.wechat.simulator_url.rstrip("/") or settings.app.base_url + SIMULATOR_PATH


def _base(settings: Settings, key: str) -> str:
    value = getattr(settings.wechat, key)
    if uses_simulator(settings) and value == DEFAULTS["wechat"][key]:
        return simulator_base(settings)
    return value.rstrip("/")


def api_base_url(settings: Settings) -> str:
    return _base(settings, "api_base_url")


def oauth_base_url(settings: Settings) -> str:
    return _base(settings, "oauth_base_url")


def talks_to_simulator(settings: Settings) -> bool:
    return api_base_url(settings) == simulator_base(settings)


def showqrcode_base(settings: Settings) -> str:
    return api_base_url(settings) if talks_to_simulator(settings) else SHOWQRCODE_BASE


@dataclass(frozen=True)
class Ticket:
    scene: str
    ticket: str
    url: str  # the code's own content: draw it locally at any size
    image_url: str  # showqrcode


def cached_ticket(redis: Redis, scene: str, settings=None) -> Ticket | None:
    """The permanent code already created for this scene, if any (no network)."""
    raw = redis.hget(TICKETS_KEY, scene)
    if not raw:
        return None
    data = json.loads(raw)
    base = data.get("showqrcode_base") or (showqrcode_base(settings) if settings else SHOWQRCODE_BASE)
    return Ticket(scene, data["ticket"], data["url"], showqrcode_url(base, data["ticket"]))


class WeChatApi:
    """One account's API. Every process shares one access token, refreshed by one lock holder."""

    def __init__(
        self, settings: Settings, redis: Redis, http: requests.Session | None = None, timeout: float = 5.0
    ):
        self.settings = settings
        self.redis = redis
        self.http = http or shared_http()
        self.timeout = timeout
        self.base = api_base_url(settings)

    # --- transport ---------------------------------------------------------------------------

    def _request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        if "json" in kwargs:  # WeChat wants UTF-8 Chinese, not \u escapes
            kwargs["data"] = json.dumps(kwargs.pop("json"), ensure_ascii=False).encode()
            kwargs["headers"] = {"Content-Type": "application/json; charset=utf-8"}
        try:
            response = self.http.request(method, self.base + path, timeout=self.timeout, **kwargs)
            response.raise_for_status()
            data = response.json()
        except (requests.RequestException, ValueError, RecursionError) as exc:
            WECHAT_API.labels(path, "unreachable").inc()
            raise WeChatApiError(f"微信接口暂时无法访问（{path}）：{type(exc).__name__}") from None
        return checked(data, path)

    def call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """An authenticated call; a stale token is dropped and the call tried once more."""
        for attempt in (1, 2):
            token = self.access_token(trigger="missing" if attempt == 1 else "stale")
            params = {**kwargs.pop("params", {}), "access_token": token}
            try:
                return self._request(method, path, params=params, **kwargs)
            except WeChatApiError as exc:
                if exc.errcode not in STALE_TOKEN_CODES or attempt == 2:
                    raise
                self.invalidate_token(token)
        raise AssertionError("unreachable")

    # --- the shared access token ----------------------------------------------------------------

    def access_token(self, trigger: str = "missing") -> str:
        token = self.redis.get(TOKEN_KEY)
        if token:
            return str(token)
        # One holder fetches; the others wait on the lock and then find the token cached.
        with self.redis.lock(TOKEN_LOCK, timeout=30, blocking_timeout=15):
            token = self.redis.get(TOKEN_KEY)
            if token:
                return str(token)
            return self.fetch_access_token(trigger=trigger)

    def refresh_ahead(self) -> str | None:
        """The scheduled refresh: fetch the next token when the shared one has under REFRESH_AHEAD
        seconds left (or is missing). One holder across processes: whoever does not get the lock at
        once leaves the work to its holder. Returns the new token, or None when nothing was due."""
        if self.redis.ttl(TOKEN_KEY) > REFRESH_AHEAD:
            return None
        lock = self.redis.lock(TOKEN_LOCK, timeout=30)
        if not lock.acquire(blocking=False):
            return None
        try:
            if self.redis.ttl(TOKEN_KEY) > REFRESH_AHEAD:  # another holder just refreshed it
                return None
            return self.fetch_access_token(trigger="scheduled")
        finally:
            lock.release()

    def fetch_access_token(
        self, *, stable: bool = True, force_refresh: bool = False, trigger: str = "missing"
    ) -> str:
        """Fetch a token from WeChat and share it (call with the lock held, or from access_token)."""
        wechat = self.settings.wechat
        if stable:
            data = self._request(
                "POST",
                "/cgi-bin/stable_token",
                json={
                    "grant_type": "client_credential",
                    "appid": wechat.appid,
                    "secret": wechat.secret,
                    "force_refresh": force_refresh,
                },
            )
        else:
            data = self._request(
                "GET",
                "/cgi-bin/token",
                params={"grant_type": "client_credential", "appid": wechat.appid, "secret": wechat.secret},
            )
        token, expires = data.get("access_token"), int(data.get("expires_in") or 7200)
        if not token:
            raise WeChatApiError("微信接口没有返回 access_token")
        self.redis.set(TOKEN_KEY, token, ex=max(60, expires - TOKEN_MARGIN))
        TOKEN_REFRESHES.labels(trigger).inc()
        day_key = f"wx:api:token_fetches:{clock.today():%Y%m%d}"
        self.redis.incr(day_key)  # WeChat allows 2,000 a day: watch this counter
        self.redis.expire(day_key, 2 * 86400)
        return token

    def invalidate_token(self, stale: str) -> None:
        """Forget the shared token, unless another process already replaced it."""
        with self.redis.lock(TOKEN_LOCK, timeout=30, blocking_timeout=15):
            if self.redis.get(TOKEN_KEY) == stale:
                self.redis.delete(TOKEN_KEY)

    # --- QR codes, menu, template messages --------------------------------------------------------

    def create_permanent_ticket(self, scene: str) -> Ticket:
        """A permanent string-scene code (at most 100,000 per account: created once, then cached)."""
        existing = cached_ticket(self.redis, scene, self.settings)
        if existing is not None:
            return existing
        data = self.call("POST", "/cgi-bin/qrcode/create", json=permanent_scene_payload(scene))
        if not data.get("ticket") or not data.get("url"):
            raise WeChatApiError("微信接口没有返回二维码 ticket")
        base = showqrcode_base(self.settings)
        record = {"ticket": data["ticket"], "url": data["url"], "showqrcode_base": base}
        self.redis.hset(TICKETS_KEY, scene, json.dumps(record))
        return Ticket(scene, data["ticket"], data["url"], showqrcode_url(base, data["ticket"]))

    def create_menu(self, menu: dict[str, Any]) -> None:
        self.call("POST", "/cgi-bin/menu/create", json=menu)

    def get_menu(self) -> dict[str, Any]:
        return self.call("GET", "/cgi-bin/get_current_selfmenu_info")

    def send_template_message(
        self, openid: str, template_id: str, data: dict[str, Any], url: str | None = None
    ) -> int:
        body = {"touser": openid, "template_id": template_id, "data": data}
        if url:
            body["url"] = url
        return int(self.call("POST", "/cgi-bin/message/template/send", json=body).get("msgid") or 0)


def default_menu(settings: Settings) -> dict[str, Any]:
    """The account's custom menu before one is edited in the console: evaluate (how to), and help."""
    from app.org.menu import DEFAULT_MENU

    return DEFAULT_MENU


# --- OAuth (snsapi_base) for the questionnaire pages ---------------------------------------------
