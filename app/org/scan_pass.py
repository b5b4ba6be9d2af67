# The scan pass: a short-lived, single-use pass for the follower who scanned a department's code,
# put in the reply's link so that their questionnaire opens without the OAuth round trip.
"""A scan event names its sender (`FromUserName` is the openid, in a delivery whose signature the
webhook has checked), so the reply to it may carry that identity to the questionnaire:

- issued with the reply (`issue`): 16 random bytes, URL-safe, naming the openid, the survey and the
  department in Redis (`wx:pass:{wh}:<pass>`, `wechat.scan_pass_seconds`, default 600), written by
  the webhook's one commit call with the reply, so a retried delivery gets the same link and a
  refused one issues nothing. The link is `.../q/<survey>/<department>?p=<pass>`: no openid in it.
- taken once (`take`), by the questionnaire's GET of that survey and department, in WeChat's
  browser, when the browser has no identity yet: the openid goes into the session as OAuth's would.
  A second use, another questionnaire, an expired, malformed or unknown pass, a Redis that cannot
  be reached: no identity, and the citizen goes through OAuth as everyone else does.

Why and what it risks (a forwarded reply opened first by someone else): SECURITY.md.
"""

from __future__ import annotations

import re
import secrets

from app.redis_store import ScriptRunner

PARAM = "p"  # the query parameter that carries a pass
HASH_TAG = "{wh}"  # the webhook's Redis Cluster slot (app.org.scenes uses it too): a pass is issued in
# the same atomic call as the reply it goes with
_SHAPE = re.compile(r"[A-Za-z0-9_-]{22}")  # secrets.token_urlsafe(16)


def _key(token: str) -> str:
    return f"wx:pass:{HASH_TAG}:{token}"


def issue(effects, openid: str, survey_slug: str, department_code: str, seconds: int) -> str:
    """A new pass for this follower, survey and department, written through `effects` (the
    webhook's deferred writes); returns the pass to put in the link."""
    token = secrets.token_urlsafe(16)
    effects.set(_key(token), f"{openid}\n{survey_slug}\n{department_code}", ex=seconds)
    return token


def with_pass(url: str, token: str) -> str:
    return f"{url}?{PARAM}={token}"


# KEYS[1]: the pass. Returns its value and deletes it (GETDEL, for Redis before 6.2 too).
_TAKE = ScriptRunner("""
local value = redis.call('GET', KEYS[1])
if value then redis.call('DEL', KEYS[1]) end
return value
""")


def take(redis, token: str | None, survey_slug: str, department_code: str) -> str | None:
    """The openid of a pass issued for this survey and department, used up by this call; None for
    anything else (a RedisError is the caller's: it then goes to OAuth). A pass for another
    questionnaire is used up too: it was opened where it does not lead, by someone it was not for."""
    if not token or not _SHAPE.fullmatch(token):
        return None
    value = _TAKE(redis, [_key(token)], [])
    if not value:
        return None
    openid, slug, code = (value.decode() if isinstance(value, bytes) else value).split("\n", 2)
    return openid if (slug, code) == (survey_slug, department_code) and openid else None
