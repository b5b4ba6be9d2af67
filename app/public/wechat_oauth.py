"""WeChat's web OAuth (snsapi_base): the authorize address a citizen is sent to, and the one
exchange of the code WeChat sends back for the citizen's openid, the one call to WeChat on a
citizen's path (app.public.identity). The exchange goes over a keep-alive pool of the process's
own: a citizen's exchange reuses the connection an earlier one opened."""

from __future__ import annotations

import functools
import json
import logging
import os
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlencode, urlsplit

import requests
import urllib3

from app.errors import Invalid
from app.metrics import WECHAT_API
from app.wechat_api import WeChatApiError, api_base_url, checked, oauth_base_url

if TYPE_CHECKING:
    from app.config import Settings

# errcodes of a bad or used OAuth code: the citizen should simply open the link again.
BAD_CODE_CODES = {40029, 40163, 41008}
log = logging.getLogger(__name__)

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


def _get_once_more_if_cut(pool: urllib3.HTTPConnectionPool, url: str, timeout: float):
    """The exchange's GET, sent again once (on another connection) when its connection was cut
    before any reply: WeChat ending a kept-alive connection just as the request went out. A cut
    after WeChat used the code makes the second try a used code (the kind 400 of a link to open
    again) instead of the 503 of a busy WeChat: either way the citizen opens the link again. A
    timeout is not tried again (the citizen has waited long enough)."""

    def send():
        return pool.urlopen(
            "GET", url, redirect=False, retries=False,
            assert_same_host=False,  # (a whole URL through a forwarding proxy)
            timeout=urllib3.Timeout(connect=timeout, read=timeout),
        )  # fmt: skip

    try:
        return send()
    except urllib3.exceptions.ProtocolError as exc:  # (only its type logged: the URL holds the secret)
        log.info("oauth: the exchange's connection was cut before a reply (%s); again", type(exc).__name__)
    return send()


def exchange_oauth_code(settings: Settings, code: str, timeout: float = 5.0) -> OAuthIdentity:
    """code → openid. A code is single-use and lives 5 minutes: never call this twice for one (the
    request is sent twice only when its first connection was cut before any reply)."""
    path = "/sns/oauth2/access_token"
    fields = {
        "appid": settings.wechat.appid,
        "secret": settings.wechat.secret,
        "code": code,
        "grant_type": "authorization_code",
    }
    try:
        pool, prefix = _exchange_pool(settings)
        response = _get_once_more_if_cut(pool, f"{prefix}{path}?{urlencode(fields)}", timeout)
        if not 200 <= response.status < 300:
            raise ValueError(f"HTTP {response.status}")
        data = json.loads(response.data)
    except (urllib3.exceptions.HTTPError, ValueError, RecursionError) as exc:  # (JSON nested too deep)
        WECHAT_API.labels(path, "unreachable").inc()
        raise WeChatApiError(f"微信接口暂时无法访问（{path}）：{type(exc).__name__}") from None
    try:
        data = checked(data, path)
    except WeChatApiError as exc:
        if exc.errcode in BAD_CODE_CODES:
            raise Invalid("授权已失效，请重新打开问卷链接", field="code") from None
        raise
    openid = data.get("openid")
    if not openid or not isinstance(openid, str):
        raise WeChatApiError("微信授权没有返回 openid")
    return OAuthIdentity(openid, str(data.get("is_snapshotuser") or "0") == "1")
