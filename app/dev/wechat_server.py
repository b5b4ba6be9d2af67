"""What WeChat's servers send: event and message XML, signed and (in compatible or safe mode)
encrypted, and the opening of the reply. Used by the phone page, the tests and the benchmark.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from xml.sax.saxutils import escape

import xmltodict
from wechatpy.crypto import WeChatCrypto

MODES = ("plaintext", "compatible", "safe")
MODE_NAMES = {"plaintext": "明文模式", "compatible": "兼容模式", "safe": "安全模式"}


def _cdata(value: str) -> str:
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def _xml(fields: dict[str, str | int]) -> str:
    parts = [
        f"<{name}>{value}</{name}>" if isinstance(value, int) else f"<{name}>{_cdata(value)}</{name}>"
        for name, value in fields.items()
    ]
    return "<xml>" + "".join(parts) + "</xml>"


def event_xml(
    appid_user: str, openid: str, event: str, key: str | None = None, create_time: int | None = None
) -> str:
    """An event as WeChat sends it: `subscribe` (with EventKey qrscene_… for a scan), `SCAN`, `CLICK`…"""
    fields: dict[str, str | int] = {
        "ToUserName": appid_user,
        "FromUserName": openid,
        "CreateTime": int(create_time or time.time()),
        "MsgType": "event",
        "Event": event,
    }
    if key is not None:
        fields["EventKey"] = key
    if event in ("subscribe", "SCAN") and key:
        fields["Ticket"] = "gQSIM" + hashlib.sha1(key.encode()).hexdigest()[:24]
    return _xml(fields)


def text_xml(appid_user: str, openid: str, content: str, msg_id: int | None = None) -> str:
    return _xml(
        {
            "ToUserName": appid_user,
            "FromUserName": openid,
            "CreateTime": int(time.time()),
            "MsgType": "text",
            "Content": content,
            "MsgId": msg_id or secrets.randbelow(10**18) + 10**18,
        }
    )


def signature(token: str, timestamp: str, nonce: str, *extra: str) -> str:
    return hashlib.sha1("".join(sorted([token, timestamp, nonce, *extra])).encode()).hexdigest()


@dataclass(frozen=True)
class Sealed:
    """A POST to /wechat: its query string arguments and body."""

    params: dict[str, str]
    body: bytes
    mode: str


def seal(xml: str, wechat, mode: str, timestamp: int | None = None, nonce: str | None = None) -> Sealed:
    """Sign (and encrypt) a message for the webhook, the way WeChat does in each mode."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}")
    ts = str(int(timestamp or time.time()))
    nonce = nonce or str(secrets.randbelow(10**10))
    params = {"signature": signature(wechat.token, ts, nonce), "timestamp": ts, "nonce": nonce}
    params["openid"] = xmltodict.parse(xml)["xml"]["FromUserName"]
    if mode == "plaintext":
        return Sealed(params, xml.encode(), mode)
    crypto = WeChatCrypto(wechat.token, wechat.encoding_aes_key, wechat.appid)
    envelope = xmltodict.parse(crypto.encrypt_message(xml, nonce, ts))["xml"]
    encrypt = envelope["Encrypt"]
    params.update(encrypt_type="aes", msg_signature=signature(wechat.token, ts, nonce, encrypt))
    if mode == "safe":
        body = _xml({"ToUserName": xmltodict.parse(xml)["xml"]["ToUserName"], "Encrypt": encrypt})
    else:  # compatible: the plaintext fields and the ciphertext side by side
        body = xml[: -len("</xml>")] + f"<Encrypt>{_cdata(encrypt)}</Encrypt></xml>"
    return Sealed(params, body.encode(), mode)


def open_reply(body: str, wechat) -> dict[str, str]:
    """The reply's fields (decrypted and its signature checked when it is encrypted); {} for success.
    A news reply (图文消息) gives its first article's Title, Description, PicUrl and Url."""
    if not body or body.strip() == "success":
        return {}
    data = xmltodict.parse(body)["xml"]
    if "Encrypt" in data:
        crypto = WeChatCrypto(wechat.token, wechat.encoding_aes_key, wechat.appid)
        plain = crypto.decrypt_message(body, data["MsgSignature"], data["TimeStamp"], data["Nonce"])
        data = xmltodict.parse(plain)["xml"]
    if data.get("MsgType") == "news":  # a card: its (first) article's fields at the top level
        items = (data.get("Articles") or {}).get("item") or {}
        first = items[0] if isinstance(items, list) else items
        data = {**{k: v for k, v in data.items() if k != "Articles"}, **first}
    return {key: (value if isinstance(value, str) else escape(str(value))) for key, value in data.items()}
