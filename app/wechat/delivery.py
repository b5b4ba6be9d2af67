"""One POST from WeChat, received safely: signature, timestamp and nonce checks, decryption (with
the previous EncodingAESKey during a rotation), retry de-duplication, dispatch, (encrypted) reply.

No network and no Flask request here: the webhook view builds a Delivery and calls `receive`.

Redis, two round trips per delivery: ADMIT (one Lua call: the nonce check, then, only if the nonce
is accepted, the message's PENDING marker, plus the routing generation) and one MULTI that stores
the reply together with the handler's side effects. A refused replay writes nothing.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from functools import lru_cache

import xmltodict
from redis.commands.core import Script
from wechatpy import parse_message
from wechatpy.crypto import WeChatCrypto
from wechatpy.exceptions import InvalidAppIdException, InvalidSignatureException
from wechatpy.replies import BaseReply, TextReply
from wechatpy.utils import check_signature

from app.scenes import GENERATION_KEY
from handlers import HandlerContext, dispatch

log = logging.getLogger(__name__)

SUCCESS = "success"  # what WeChat expects when there is nothing to say
PENDING = "\x00pending"
PENDING_TTL = 30  # seconds a first delivery may take before a retry may run it again
REPLY_TTL = 600  # WeChat retries within ~15 s; keep replies well beyond that
RETRY_WAIT = 4.0  # a retry arriving mid-way waits this long for the first delivery's reply
BUSY = "系统正忙，请稍后再试，给您带来不便非常抱歉。"


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


@dataclass(frozen=True)
class Received:
    body: str
    content_type: str


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
    except Exception as exc:
        raise Rejected(400, f"not a WeChat message: {type(exc).__name__}") from None
    if message is None or not message.source:
        raise Rejected(400, "not a WeChat message")
    return message


def dedup_key(message) -> str:
    """MsgId for messages; FromUserName + CreateTime for events (wechatpy gives events id 0)."""
    if message.id:
        return f"m:{message.id}"
    return f"e:{message.source}:{message._data.get('CreateTime', '')}:{message._data.get('Event', '')}"


def receive(delivery: Delivery, ctx: HandlerContext, now: float | None = None) -> Received:
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
    if reply_xml == SUCCESS:
        return Received(SUCCESS, "text/plain; charset=utf-8")
    if crypto is not None:
        reply_xml = crypto.encrypt_message(reply_xml, delivery.nonce, str(int(now)))
    return Received(reply_xml, "application/xml; charset=utf-8")


# KEYS: nonce key, message key, routing generation key.
# ARGV: the message's dedup key, nonce window (s), the PENDING marker, PENDING_TTL (s).
# Returns {verdict, cached reply or "", generation}; verdict: "replay" (nonce held by another
# message: nothing written), "first" (the marker is ours: run the handler), "retry".
ADMIT = Script(None, b"""
local generation = redis.call('GET', KEYS[3]) or '0'
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then
  if redis.call('GET', KEYS[1]) ~= ARGV[1] then
    return {'replay', '', generation}
  end
end
if redis.call('SET', KEYS[2], ARGV[3], 'NX', 'EX', ARGV[4]) then
  return {'first', '', generation}
end
return {'retry', redis.call('GET', KEYS[2]) or '', generation}
""")  # fmt: skip


def _admit(ctx: HandlerContext, delivery: Delivery, key: str) -> tuple[str, str, str]:
    """One round trip: a nonce is accepted once per window (only a retry of the very same message
    may carry it again); then the message is claimed for its first delivery, or found a retry."""
    window = 2 * ctx.settings.wechat.timestamp_tolerance + 60
    keys = [f"wx:nonce:{delivery.timestamp}:{delivery.nonce}", f"wx:msg:{key}", GENERATION_KEY]
    verdict, cached, generation = ADMIT(keys, [key, window, PENDING, PENDING_TTL], client=ctx.redis)
    if verdict == "replay":
        raise Rejected(403, "nonce already used")
    return verdict, cached, generation


def _reply_once(ctx: HandlerContext, delivery: Delivery, message, key: str) -> str:
    """Run the handler once per message; retries get the first reply, without side effects."""
    verdict, cached, generation = _admit(ctx, delivery, key)
    cache_key = f"wx:msg:{key}"
    if verdict == "retry":
        return _await_first_reply(ctx, cache_key, cached)
    if ctx.routes is not None:
        ctx.routes.observe(generation)
    writes = ctx.redis.pipeline(transaction=True)
    try:
        reply = dispatch(message, replace(ctx, generation=generation, writes=writes))
    except Exception:
        log.exception("handler failed for %s %s", message.type, getattr(message, "event", ""))
        writes.reset()  # its side effects are dropped with it
        ctx.session.rollback()
        ctx.redis.delete(cache_key)  # let WeChat's retry try again
        return TextReply(message=message, content=BUSY).render()
    reply_xml = (reply.render() if isinstance(reply, BaseReply) else SUCCESS) or SUCCESS
    writes.set(cache_key, reply_xml, ex=REPLY_TTL)
    writes.execute()
    return reply_xml


def _await_first_reply(ctx: HandlerContext, cache_key: str, cached: str) -> str:
    """A retry: the first delivery's reply, waiting a little while that delivery is still at work."""
    deadline = time.monotonic() + RETRY_WAIT
    while cached == PENDING:
        if time.monotonic() > deadline:
            return SUCCESS  # the first delivery is still at work; WeChat will try again
        time.sleep(0.02)
        cached = ctx.redis.get(cache_key)
    return cached or SUCCESS
