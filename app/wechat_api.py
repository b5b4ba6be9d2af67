"""The WeChat API client: the access token shared by every process through Redis, QR tickets,
the custom menu, template messages and the OAuth code exchange. Never called on the webhook path.

In dev mode with the simulator on, `wechat.api_base_url` / `oauth_base_url` left at WeChat's
addresses mean the simulator instead: `wechat.simulator_url` (its own process, as `wxsurvey run`
starts it), else `{app.base_url}/dev/wechat` in the web app itself.
"""

from __future__ import annotations

import functools
import json
import os
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlencode, urlsplit

import requests
import urllib3
from redis import Redis

from app import clock
from app.config import DEFAULTS
from app.errors import Invalid, Unavailable
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
# errcodes of a bad or used OAuth code: the citizen should simply open the link again.
BAD_CODE_CODES = {40029, 40163, 41008}


_local = threading.local()


def shared_http() -> requests.Session:
    """This thread's keep-alive session to WeChat: a code exchange reuses the connection the last
    one opened instead of a TCP (and in production TLS) handshake per citizen. One per thread,
    since a requests.Session is not meant to be shared between threads; a forked child (an RQ
    work horse) opens its own rather than write on its parent's sockets."""
    held = getattr(_local, "http", None)
    if held is None or held[0] != os.getpid():
        held = _local.http = (os.getpid(), requests.Session())
    return held[1]


_exchange_lock = threading.Lock()
# (base URL, proxy) -> (its keep-alive pool, what goes before WeChat's path): one entry per process.
_exchange_pools: dict[tuple[str, str | None], tuple[urllib3.HTTPConnectionPool, str]] = {}
EXCHANGE_POOLS_MAX = 8  # API base URLs seen by one process (tests move it around); cleared when full


def _exchange_pool(settings: Settings) -> tuple[urllib3.HTTPConnectionPool, str]:
    """The process's keep-alive pool for the OAuth code exchange (the one call on a citizen's path)
    and what goes before WeChat's path (the base URL's path, or the whole base URL through a
    forwarding proxy). urllib3's pool directly: half the CPU of requests. One pool for all threads
    (urllib3's pools are thread-safe), at most web_threads idle connections. Network settings as
    the other WeChat calls (requests): the environment's proxy and requests' CA bundle."""
    base = api_base_url(settings)
    proxy = _proxy_for(base, tuple(map(os.environ.get, PROXY_VARIABLES)))
    held = _exchange_pools.get((base, proxy))
    if held is None:
        with _exchange_lock:
            held = _exchange_pools.get((base, proxy))
            if held is None:
                if len(_exchange_pools) >= EXCHANGE_POOLS_MAX:
                    _exchange_pools.clear()  # dropped pools close their sockets when collected
                held = _exchange_pools[(base, proxy)] = _new_exchange_pool(base, proxy, settings)
    return held


PROXY_VARIABLES = ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY",
                   "no_proxy", "NO_PROXY")  # fmt: skip


@functools.lru_cache(maxsize=16)
def _proxy_for(base: str, environment: tuple) -> str | None:
    """The proxy requests would take to `base` given the variables it reads (~80 us: worked out once)."""
    return requests.utils.select_proxy(base, requests.utils.get_environ_proxies(base))


def _new_exchange_pool(base: str, proxy: str | None, settings: Settings):
    """A pool for _exchange_pool: straight to WeChat, or through the proxy."""
    parts = urlsplit(base)
    options: dict[str, Any] = {
        "maxsize": max(4, int(settings.app.web_threads)),
        "block": False,
        "retries": False,
    }
    if parts.scheme == "https":
        options["ca_certs"] = requests.utils.DEFAULT_CA_BUNDLE_PATH
    if not proxy:
        return urllib3.connection_from_url(base, **options), parts.path.rstrip("/")
    seen = urlsplit(proxy)
    headers = None
    if seen.username:
        login = f"{unquote(seen.username)}:{unquote(seen.password or '')}"
        headers = urllib3.util.make_headers(proxy_basic_auth=login)
    manager = urllib3.ProxyManager(proxy, num_pools=1, proxy_headers=headers, **options)
    pool = manager.connection_from_url(base)
    # https: a tunnel (CONNECT) and paths as usual; http: the proxy forwards, and wants whole URLs
    return pool, (base.rstrip("/") if parts.scheme == "http" else parts.path.rstrip("/"))


def _forget_exchange_pool() -> None:
    """In a forked child (an RQ work horse): pools of its own, never the parent's sockets."""
    global _exchange_pools, _exchange_lock
    _exchange_pools, _exchange_lock = {}, threading.Lock()


os.register_at_fork(after_in_child=_forget_exchange_pool)


def _checked(data: Any, path: str) -> dict[str, Any]:
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
        return _checked(data, path)

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


@dataclass(frozen=True)
class OAuthIdentity:
    openid: str
    is_snapshotuser: bool


def oauth_authorize_url(settings: Settings, redirect_uri: str, state: str) -> str:
    query = urlencode(
        {
            "appid": settings.wechat.appid,
            "redirect_uri": redirect_uri,
            "response_type": "code",
            "scope": "snsapi_base",
            "state": state,
        }
    )
    return f"{oauth_base_url(settings)}/connect/oauth2/authorize?{query}#wechat_redirect"


def exchange_oauth_code(settings: Settings, code: str, timeout: float = 5.0) -> OAuthIdentity:
    """code → openid. A code is single-use and lives 5 minutes: never call this twice for one."""
    path = "/sns/oauth2/access_token"
    fields = {
        "appid": settings.wechat.appid,
        "secret": settings.wechat.secret,
        "code": code,
        "grant_type": "authorization_code",
    }
    try:
        pool, prefix = _exchange_pool(settings)
        response = pool.urlopen(
            "GET", f"{prefix}{path}?{urlencode(fields)}", redirect=False, retries=False,
            assert_same_host=False,  # (a whole URL through a forwarding proxy)
            timeout=urllib3.Timeout(connect=timeout, read=timeout),
        )  # fmt: skip
        if not 200 <= response.status < 300:
            raise ValueError(f"HTTP {response.status}")
        data = json.loads(response.data)
    except (urllib3.exceptions.HTTPError, ValueError, RecursionError) as exc:  # (JSON nested too deep)
        WECHAT_API.labels(path, "unreachable").inc()
        raise WeChatApiError(f"微信接口暂时无法访问（{path}）：{type(exc).__name__}") from None
    try:
        data = _checked(data, path)
    except WeChatApiError as exc:
        if exc.errcode in BAD_CODE_CODES:
            raise Invalid("授权已失效，请重新打开问卷链接", field="code") from None
        raise
    openid = data.get("openid")
    if not openid or not isinstance(openid, str):
        raise WeChatApiError("微信授权没有返回 openid")
    return OAuthIdentity(openid, str(data.get("is_snapshotuser") or "0") == "1")
