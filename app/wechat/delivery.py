"""One POST from WeChat, received safely: signature, timestamp and nonce checks, decryption (with
the previous EncodingAESKey during a rotation), retry de-duplication, dispatch, (encrypted) reply.

No network and no Flask request here: the webhook view builds a Delivery and calls `receive`.

Redis, one round trip per delivery in the steady state: the handler computes its reply first
(routes come from the process's RouteCache, and its Redis writes are only collected), then one
Lua call checks the routing generation the reply was computed under, accepts the nonce, claims
the message with the reply and makes the handler's writes, all or nothing. A refused replay, a
retry and a stale computation write nothing; a stale one is computed again (a second trip).

On a Redis Cluster the nonce, message and generation keys share the `{wh}` hash tag (one slot);
a handler's writes to other slots (the scan memory lives in its intake shard's slot) are made
right after a first delivery's commit, not inside it: a crash between the two loses a scan
memory (the answer is then flagged `no_scan`, never refused), and nothing else.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import xmltodict
from redis.cluster import RedisCluster
from redis.crc import key_slot
from wechatpy import parse_message
from wechatpy.crypto import WeChatCrypto
from wechatpy.exceptions import InvalidAppIdException, InvalidSignatureException
from wechatpy.replies import BaseReply, TextReply
from wechatpy.utils import check_signature

from app.org.scenes import GENERATION_KEY, HASH_TAG, RouteCache, ScanRouter
from app.redis_store import ScriptRunner
from app.security.rate_limits import limit_for
from handlers import DeferredWrites, HandlerContext, dispatch

if TYPE_CHECKING:
    from datetime import date

    from redis import Redis
    from sqlalchemy.orm import Session

    from app.config import Settings

log = logging.getLogger(__name__)

SUCCESS = "success"  # what WeChat expects when there is nothing to say
REPLY_TTL = 600  # WeChat retries within ~15 s; keep replies well beyond that
ATTEMPTS = 3  # computations of one reply while the routing generation keeps moving
BUSY = "系统正忙，请稍后再试，给您带来不便非常抱歉。"


@dataclass(frozen=True)
class Inbox:
    """What receiving a delivery needs (the handlers get far less: see handlers.HandlerContext)."""

    session: Session
    redis: Redis
    settings: Settings
    today: date
    routes: RouteCache


class Rejected(Exception):
    """The delivery is refused before any side effect; `status` is the HTTP status."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class Delivery:
    body: bytes
    signature: str = ""
    timestamp: str = ""
    nonce: str = ""
    encrypt_type: str = ""
    msg_signature: str = ""

    @classmethod
    def from_query(cls, body: bytes, get: Callable[[str], str]) -> Delivery:
        """A POST's body and the query parameters WeChat signs it with (`get(name)`: value or "")."""
        return cls(
            body=body,
            signature=get("signature"),
            timestamp=get("timestamp"),
            nonce=get("nonce"),
            encrypt_type=get("encrypt_type").lower(),
            msg_signature=get("msg_signature"),
        )


@dataclass(frozen=True)
class Received:
    body: str
    content_type: str
    kind: str = ""  # the message type or event, lower case (for /metrics)


def _refuse_entities(data: bytes | str) -> None:
    head = data[:4096].upper() if isinstance(data, bytes) else data[:4096].upper().encode()
    if b"<!DOCTYPE" in head or b"<!ENTITY" in head:
        raise Rejected(400, "DOCTYPE and entities are not accepted")


def _check_timestamp(timestamp: str, now: float, tolerance: int) -> int:
    try:
        ts = int(timestamp)
    except ValueError:
        raise Rejected(400, "timestamp missing or not a number") from None
    if abs(now - ts) > tolerance:
        raise Rejected(403, "timestamp too far from now")
    return ts


@lru_cache(maxsize=8)
def _crypto(token: str, key: str, appid: str) -> WeChatCrypto:
    return WeChatCrypto(token, key, appid)


def _cryptos(wechat) -> list[WeChatCrypto]:
    keys = [k for k in (wechat.encoding_aes_key, wechat.previous_encoding_aes_key) if k]
    return [_crypto(wechat.token, key, wechat.appid) for key in keys]


def _decrypt(delivery: Delivery, wechat) -> tuple[str, WeChatCrypto]:
    """The plaintext XML and the crypto (key) that opened it; tries the previous key too."""
    cryptos = _cryptos(wechat)
    if not cryptos:
        raise Rejected(400, "encrypted message but no EncodingAESKey is configured")
    if not delivery.msg_signature:
        raise Rejected(403, "msg_signature missing")
    try:
        outer = xmltodict.parse(delivery.body, disable_entities=True)["xml"]
        encrypt = outer["Encrypt"]
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise Rejected(400, f"not a WeChat encrypted message: {type(exc).__name__}") from None
    except Exception as exc:  # expat.ExpatError and friends
        raise Rejected(400, f"not XML: {type(exc).__name__}") from None
    if not isinstance(encrypt, str) or not encrypt:
        raise Rejected(400, "empty Encrypt")
    wrong_appid = False
    for crypto in cryptos:
        try:
            xml = crypto.decrypt_message(
                {"Encrypt": encrypt}, delivery.msg_signature, delivery.timestamp, delivery.nonce
            )
            return xml, crypto
        except InvalidSignatureException:
            raise Rejected(403, "bad msg_signature") from None
        except InvalidAppIdException:
            wrong_appid = True
        except Exception:  # wrong key: bad padding, bad UTF-8, bad length…
            continue
    if wrong_appid:
        raise Rejected(403, "ciphertext is not for this appid")
    raise Rejected(400, "cannot decrypt")


def _parse(xml: str):
    _refuse_entities(xml)
    try:
        message = parse_message(xml)
    except ValueError as exc:  # wechatpy refuses XML entities with ValueError
        raise Rejected(400, f"refused XML: {exc}") from None
    except Exception as exc:  # wechatpy trips on a field that holds elements: try it emptied, once
        flat = _text_fields_only(xml)
        try:
            message = parse_message(flat) if flat is not None else None
        except Exception:
            message = None
        if message is None:
            raise Rejected(400, f"not a WeChat message: {type(exc).__name__}") from None
    if message is None or not isinstance(message.source, str) or not message.source:
        raise Rejected(400, "not a WeChat message")
    nested = [name for name, value in message._data.items() if isinstance(value, dict | list)]
    if nested:
        _log_nested(nested, message.type)
        message._data.update(dict.fromkeys(nested, ""))
    return message


def _log_nested(names: list[str], kind: str) -> None:
    # Elements where WeChat sends text: a sender broke out of a CDATA section. One line, no traceback.
    log.info(
        "wechat: %s of a %s delivery holds XML elements, not text; read as empty", ", ".join(names), kind
    )


def _text_fields_only(xml: str) -> str | None:
    """The message with each field that holds elements emptied, or None when none does."""
    try:
        fields = xmltodict.parse(xml, disable_entities=True)["xml"]
    except Exception:
        return None
    if not isinstance(fields, dict):
        return None
    nested = [name for name, value in fields.items() if isinstance(value, dict | list)]
    if not nested:
        return None
    _log_nested(nested, str(fields.get("MsgType") or "?"))
    return xmltodict.unparse({"xml": {k: ("" if k in nested else v) for k, v in fields.items()}})


def dedup_key(message) -> str:
    """MsgId for messages; FromUserName + CreateTime for events (wechatpy gives events id 0)."""
    if message.id:
        return f"m:{message.id}"
    return f"e:{message.source}:{message._data.get('CreateTime', '')}:{message._data.get('Event', '')}"


def receive(delivery: Delivery, ctx: Inbox, now: float | None = None) -> Received:
    wechat = ctx.settings.wechat
    now = time.time() if now is None else now
    if not delivery.body.strip():
        raise Rejected(400, "empty body")
    if len(delivery.body) > wechat.max_body_bytes:
        raise Rejected(413, "body too large")
    _refuse_entities(delivery.body)
    if not delivery.timestamp or not delivery.nonce:
        raise Rejected(403, "timestamp or nonce missing")
    _check_timestamp(delivery.timestamp, now, wechat.timestamp_tolerance)
    crypto = None
    if delivery.encrypt_type == "aes":
        xml, crypto = _decrypt(delivery, wechat)
    elif delivery.encrypt_type in ("", "raw"):
        try:
            check_signature(wechat.token, delivery.signature, delivery.timestamp, delivery.nonce)
        except InvalidSignatureException:
            raise Rejected(403, "bad signature") from None
        try:
            xml = delivery.body.decode("utf-8")
        except UnicodeDecodeError:
            raise Rejected(400, "body is not UTF-8") from None
    else:
        raise Rejected(400, "unknown encrypt_type")
    message = _parse(xml)
    reply_xml = _reply_once(ctx, delivery, message, dedup_key(message))
    kind = str(getattr(message, "event", "") or message.type or "unknown").lower()
    if reply_xml == SUCCESS:
        return Received(SUCCESS, "text/plain; charset=utf-8", kind)
    if crypto is not None:
        reply_xml = crypto.encrypt_message(reply_xml, delivery.nonce, str(int(now)))
    return Received(reply_xml, "application/xml; charset=utf-8", kind)


# KEYS: nonce, message, routing generation, the sender's rate-limit counter, then one per deferred
# write. ARGV: dedup key, nonce window, reply, REPLY_TTL, expected generation ("" = any), deliveries
# allowed per window ("" = no limit), the counter's TTL, then a value and a TTL per deferred write.
# Returns {verdict, the stored reply or "", the generation}. Verdicts: "stale" (computed under
# another generation), "replay" (the nonce belongs to another message), "retry" (the message has
# its reply already), "limited" (a new message past the sender's rate limit): nothing written
# (but the counter); "first": all written.
COMMIT = ScriptRunner("""
local generation = redis.call('GET', KEYS[3]) or '0'
if ARGV[5] ~= '' and ARGV[5] ~= generation then
  return {'stale', '', generation}
end
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then
  if redis.call('GET', KEYS[1]) ~= ARGV[1] then
    return {'replay', '', generation}
  end
end
local stored = redis.call('GET', KEYS[2])
if stored then
  return {'retry', stored, generation}
end
if ARGV[6] ~= '' then
  local count = redis.call('INCR', KEYS[4])
  if count == 1 then redis.call('EXPIRE', KEYS[4], ARGV[7]) end
  if count > tonumber(ARGV[6]) then
    return {'limited', '', generation}
  end
end
redis.call('SET', KEYS[2], ARGV[3], 'EX', ARGV[4])
for i = 5, #KEYS do
  redis.call('SET', KEYS[i], ARGV[2 * i - 2], 'EX', ARGV[2 * i - 1])
end
return {'first', '', generation}
""")  # fmt: skip


def _commit(
    ctx: Inbox,
    delivery: Delivery,
    key: str,
    reply_xml: str,
    writes: DeferredWrites,
    expected: str,
    sender: str = "",
) -> tuple[str, str, str]:
    window = 2 * ctx.settings.wechat.timestamp_tolerance + 60
    limit = limit_for(ctx.settings, "webhook")
    now = time.time()
    counter = limit.key(sender, now, tag=HASH_TAG) if limit is not None else f"wx:rl:{HASH_TAG}:webhook:off"
    keys = [
        f"wx:nonce:{HASH_TAG}:{delivery.timestamp}:{delivery.nonce}",
        f"wx:msg:{HASH_TAG}:{key}",
        GENERATION_KEY,
        counter,
    ]
    args: list[str | int] = [key, window, reply_xml, REPLY_TTL, expected]
    args += [limit.allowed, limit.ttl] if limit is not None else ["", 0]
    after: list[tuple[str, str, int]] = []
    on_cluster = isinstance(ctx.redis, RedisCluster)
    for name, value, ttl in writes.pending:
        if on_cluster and key_slot(name.encode()) != _WEBHOOK_SLOT:
            after.append((name, value, ttl))
            continue
        keys.append(name)
        args += [value, ttl]
    verdict, stored, generation = COMMIT(ctx.redis, keys, args)
    if verdict == "replay":
        raise Rejected(403, "nonce already used")
    if verdict == "first" and after:
        pipe = ctx.redis.pipeline(transaction=False)
        for name, value, ttl in after:
            pipe.set(name, value, ex=ttl)
        pipe.execute()
    return verdict, stored, generation


_WEBHOOK_SLOT = key_slot(GENERATION_KEY.encode())


def _reply_once(ctx: Inbox, delivery: Delivery, message, key: str) -> str:
    """The handler's reply for a first delivery, with its side effects; a retry (same MsgId, or
    same sender and CreateTime) gets the reply stored by the first, and causes nothing."""
    routes = ctx.routes
    generation = routes.generation or "?"
    for attempt in range(1, ATTEMPTS + 1):
        writes = DeferredWrites()
        router = ScanRouter(ctx.session, ctx.settings, routes, generation)
        try:
            reply = dispatch(message, HandlerContext(router, writes, ctx.settings, ctx.today))
        except Exception:
            log.exception("handler failed for %s %s", message.type, getattr(message, "event", ""))
            ctx.session.rollback()
            return TextReply(message=message, content=BUSY).render()  # nothing stored: a retry runs again
        reply_xml = (reply.render() if isinstance(reply, BaseReply) else SUCCESS) or SUCCESS
        expected = generation if attempt < ATTEMPTS else ""  # the last attempt takes any generation
        verdict, stored, current = _commit(ctx, delivery, key, reply_xml, writes, expected, message.source)
        if verdict == "first":
            return reply_xml
        if verdict == "limited":
            log.info("webhook: a follower is past its rate limit (%s); no reply", message.type)
            return SUCCESS
        if verdict == "retry":
            return stored or SUCCESS
        generation = routes.observe(current)  # stale: routes changed since; route again, from SQL
    raise AssertionError("unreachable: the last attempt takes any generation")
