"""The webhook over HTTP with real WeChat XML: every event kind in every encryption mode, retries,
replays and rejections (which must leave no trace), and an AES known-answer test without wechatpy."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import os
import re
import struct
import time
from dataclasses import replace
from urllib.parse import urlencode

import pytest
import xmltodict
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from wechatpy.crypto import WeChatCrypto

from app.config import DEV_WECHAT
from app.dev.wechat_server import MODES, event_xml, open_reply, seal, signature, text_xml
from app.intake.respondents import respondent_key, scanned_recently
from tests.conftest import all_keys

ACCOUNT = "gh_0123456789ab"


def post(client, sealed, **override):
    params = {**sealed.params, **override}
    return client.post("/wechat?" + urlencode(params), data=sealed.body, content_type="text/xml")


def deliver(client, settings, xml, mode="plaintext", **seal_args):
    response = post(client, seal(xml, settings.wechat, mode, **seal_args))
    assert response.status_code == 200, response.get_data(as_text=True)
    return open_reply(response.get_data(as_text=True), settings.wechat)


def new_openid() -> str:
    return "oTEST" + base64.urlsafe_b64encode(os.urandom(12)).decode()


@pytest.fixture
def settings(app):
    return app.config["SETTINGS"]


def no_side_effects(redis_client) -> bool:
    return not any(all_keys(redis_client, f"wx:{kind}:*") for kind in ("scan", "msg", "pass"))


# --- verification ---------------------------------------------------------------------------------


def test_server_verification(client):
    ts, nonce = str(int(time.time())), "12345"
    good = signature(DEV_WECHAT["token"], ts, nonce)
    ok = client.get(f"/wechat?signature={good}&timestamp={ts}&nonce={nonce}&echostr=hello123")
    assert ok.status_code == 200 and ok.get_data(as_text=True) == "hello123"
    bad = client.get(f"/wechat?signature={'0' * 40}&timestamp={ts}&nonce={nonce}&echostr=hello123")
    assert bad.status_code == 403
    assert client.get("/wechat").status_code == 400


# --- every event kind in every mode ---------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_scans_reply_with_the_department_link(client, settings, demo, redis_client, mode):
    secret = settings.survey.respondent_secret
    # a new follower: subscribe with qrscene_<scene>
    newcomer = new_openid()
    reply = deliver(
        client, settings, event_xml(ACCOUNT, newcomer, "subscribe", "qrscene_s:demo-departments:D08"), mode
    )
    assert reply["MsgType"] == "news" and reply["ToUserName"] == newcomer and reply["FromUserName"] == ACCOUNT
    assert reply["ArticleCount"] == "1" and reply["Title"] == "请为「市教育局」评价"
    assert "欢迎关注" in reply["Description"] and "部门满意度调查" in reply["Description"]
    url, _, scan_pass = reply["Url"].partition("?p=")  # the scan pass (tests/public/test_scan_pass.py)
    assert url == "http://wx.test/q/demo-departments/D08" and re.fullmatch(r"[A-Za-z0-9_-]{22}", scan_pass)
    assert redis_client.get(f"wx:pass:{{wh}}:{scan_pass}") == f"{newcomer}\ndemo-departments\nD08"
    assert 0 < redis_client.ttl(f"wx:pass:{{wh}}:{scan_pass}") <= settings.wechat.scan_pass_seconds
    assert reply["PicUrl"].startswith("http://wx.test/cards/D08.png?v=")
    assert scanned_recently(redis_client, respondent_key(secret, newcomer), "D08")
    # an existing follower: SCAN with the bare scene; a department scene finds its open survey
    follower = new_openid()
    reply = deliver(client, settings, event_xml(ACCOUNT, follower, "SCAN", "d:C01T2"), mode)
    assert "东湖区滨江街道" in reply["Title"] and "/q/demo-counties/C01T2?p=" in reply["Url"]
    assert "欢迎关注" not in reply["Description"]
    assert scanned_recently(redis_client, respondent_key(secret, follower), "C01T2")


@pytest.mark.parametrize("mode", MODES)
def test_other_kinds(client, settings, demo, mode):
    plain = deliver(client, settings, event_xml(ACCOUNT, new_openid(), "subscribe"), mode)
    assert "欢迎关注" in plain["Content"] and "扫描" in plain["Content"]
    click = deliver(client, settings, event_xml(ACCOUNT, new_openid(), "CLICK", "EVALUATE"), mode)
    assert "发送单位名称" in click["Content"]
    helped = deliver(client, settings, event_xml(ACCOUNT, new_openid(), "CLICK", "HELP"), mode)
    assert "使用帮助" in helped["Content"]
    assert deliver(client, settings, event_xml(ACCOUNT, new_openid(), "VIEW", "http://wx.test/"), mode) == {}
    assert deliver(client, settings, event_xml(ACCOUNT, new_openid(), "unsubscribe"), mode) == {}
    by_name = deliver(client, settings, text_xml(ACCOUNT, new_openid(), "教育局"), mode)
    assert "市教育局" in by_name["Title"] and by_name["Url"].endswith("/q/demo-departments/D08")
    by_code = deliver(client, settings, text_xml(ACCOUNT, new_openid(), "d17"), mode)
    assert "市行政审批服务局" in by_code["Title"]
    several = deliver(client, settings, text_xml(ACCOUNT, new_openid(), "东湖区"), mode)
    assert several["Content"].count("<a href=") >= 2
    how = deliver(client, settings, text_xml(ACCOUNT, new_openid(), "评价"), mode)
    assert "扫描" in how["Content"]
    other = deliver(client, settings, text_xml(ACCOUNT, new_openid(), "今天天气怎么样"), mode)
    assert "没有找到" in other["Content"]
    image = text_xml(ACCOUNT, new_openid(), "x").replace(
        "<MsgType><![CDATA[text]]>", "<MsgType><![CDATA[image]]>"
    )
    assert deliver(client, settings, image, mode) == {}
    location = event_xml(ACCOUNT, new_openid(), "LOCATION")
    assert deliver(client, settings, location, mode) == {}


def test_kind_explanations_for_unknown_closed_and_inactive(client, settings, demo, session):
    from app.org import departments, surveys

    unknown = deliver(client, settings, event_xml(ACCOUNT, new_openid(), "SCAN", "d:NOPE"))
    assert "无法识别" in unknown["Content"]
    garbage = deliver(client, settings, event_xml(ACCOUNT, new_openid(), "SCAN", "123456"))
    assert "无法识别" in garbage["Content"]
    departments.set_active(session, "D09", False)
    surveys.close_survey(session, "demo-counties")
    session.commit()
    inactive = deliver(client, settings, event_xml(ACCOUNT, new_openid(), "SCAN", "s:demo-departments:D09"))
    assert "市公安局" in inactive["Content"] and "不在评价范围" in inactive["Content"]
    closed = deliver(client, settings, event_xml(ACCOUNT, new_openid(), "SCAN", "s:demo-counties:C02"))
    assert "已经结束" in closed["Content"] and "<a href" not in closed["Content"]
    none_open = deliver(client, settings, event_xml(ACCOUNT, new_openid(), "SCAN", "d:C02"))
    assert "没有正在进行" in none_open["Content"]


# --- retries and replays ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["plaintext", "safe"])
def test_a_retry_gets_the_same_reply_and_no_second_side_effect(client, settings, demo, redis_client, mode):
    openid = new_openid()
    xml = event_xml(ACCOUNT, openid, "SCAN", "s:demo-departments:D08", create_time=int(time.time()))
    first = deliver(client, settings, xml, mode)
    scan_keys = redis_client.keys("wx:scan:*")
    assert len(scan_keys) == 1
    redis_client.delete(*scan_keys)
    retry = deliver(client, settings, xml, mode)  # WeChat's retry: new nonce, same event
    assert retry["Url"] == first["Url"] and "/q/demo-departments/D08?p=" in first["Url"]
    assert len(all_keys(redis_client, "wx:pass:*")) == 1  # one pass, the one the stored reply carries
    assert redis_client.keys("wx:scan:*") == []  # the handler did not run again

    message = text_xml(ACCOUNT, openid, "教育局", msg_id=987654321)
    one = deliver(client, settings, message, mode)
    assert deliver(client, settings, message, mode) == one


def test_a_nonce_is_accepted_once(client, settings, demo):
    now = int(time.time())
    xml = event_xml(ACCOUNT, new_openid(), "SCAN", "d:D08")
    sealed = seal(xml, settings.wechat, "plaintext", timestamp=now, nonce="424242")
    assert post(client, sealed).status_code == 200
    assert post(client, sealed).status_code == 200  # a retry of the same message
    other = seal(
        event_xml(ACCOUNT, new_openid(), "SCAN", "d:D08"), settings.wechat, "plaintext", now, "424242"
    )
    replayed = post(client, other)
    assert replayed.status_code == 403


# --- rejections leave no trace ---------------------------------------------------------------------


def test_rejections(client, settings, demo, redis_client):
    scan = event_xml(ACCOUNT, new_openid(), "SCAN", "d:D08")
    sealed = seal(scan, settings.wechat, "plaintext")
    assert post(client, sealed, signature="0" * 40).status_code == 403
    stale = seal(scan, settings.wechat, "plaintext", timestamp=int(time.time()) - 3600)
    assert post(client, stale).status_code == 403
    future = seal(scan, settings.wechat, "plaintext", timestamp=int(time.time()) + 3600)
    assert post(client, future).status_code == 403
    safe = seal(scan, settings.wechat, "safe")
    assert post(client, safe, msg_signature="0" * 40).status_code == 403
    assert post(client, safe, msg_signature="").status_code == 403
    assert post(client, safe, encrypt_type="rot13").status_code == 400
    assert post(client, sealed, timestamp="soon").status_code == 400

    # a ciphertext made for another account
    ts, nonce = str(int(time.time())), "777"
    foreign = WeChatCrypto(settings.wechat.token, settings.wechat.encoding_aes_key, "wxsomeoneelse00000")
    body = foreign.encrypt_message(scan, nonce, ts)
    encrypt = xmltodict.parse(body)["xml"]["Encrypt"]
    params = {
        "timestamp": ts,
        "nonce": nonce,
        "encrypt_type": "aes",
        "msg_signature": signature(settings.wechat.token, ts, nonce, encrypt),
        "signature": signature(settings.wechat.token, ts, nonce),
    }
    wrong_appid = client.post("/wechat?" + urlencode(params), data=body, content_type="text/xml")
    assert wrong_appid.status_code == 403

    entity = (
        '<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY boom "boom">]>'
        "<xml><ToUserName>a</ToUserName><FromUserName>&boom;</FromUserName>"
        "<CreateTime>1</CreateTime><MsgType>text</MsgType><Content>x</Content><MsgId>1</MsgId></xml>"
    )
    for mode in MODES:
        if mode == "plaintext":
            sealed_entity = seal(scan, settings.wechat, mode)
            response = client.post(
                "/wechat?" + urlencode(sealed_entity.params), data=entity.encode(), content_type="text/xml"
            )
        else:
            crypto = WeChatCrypto(
                settings.wechat.token, settings.wechat.encoding_aes_key, settings.wechat.appid
            )
            inner = xmltodict.parse(crypto.encrypt_message(entity, "99", ts))["xml"]["Encrypt"]
            params = {
                **params,
                "msg_signature": signature(settings.wechat.token, ts, "99", inner),
                "nonce": "99",
            }
            body = f"<xml><Encrypt><![CDATA[{inner}]]></Encrypt></xml>"
            response = client.post("/wechat?" + urlencode(params), data=body, content_type="text/xml")
        assert response.status_code == 400, mode

    for bad_body in (b"", b"   ", b"not xml at all", b"<xml><unclosed>", b"<xml></xml>", b"\xff\xfe\x00"):
        response = post(client, replace(seal(scan, settings.wechat, "plaintext"), body=bad_body))
        assert response.status_code == 400, bad_body
    huge = b"<xml>" + b"x" * (settings.wechat.max_body_bytes + 10) + b"</xml>"
    too_big = client.post("/wechat?" + urlencode(sealed.params), data=huge, content_type="text/xml")
    assert too_big.status_code == 413
    assert no_side_effects(redis_client)


# --- EncodingAESKey rotation -------------------------------------------------------------------------


def test_previous_aes_key_still_opens_and_replies_in_it(
    tmp_path, database_url, redis_url, queue_url, redis_client
):
    from app import create_app
    from app.dev.wechat_server import Sealed
    from tests.conftest import settings_for

    old_key, new_key = DEV_WECHAT["encoding_aes_key"], "Z" * 43
    app = create_app(
        settings_for(
            tmp_path,
            database_url,
            redis_url,
            queue_url,
            wechat={"encoding_aes_key": new_key, "previous_encoding_aes_key": old_key},
        )
    )
    settings = app.config["SETTINGS"]
    old = dataclasses.replace(settings.wechat, encoding_aes_key=old_key)
    sealed: Sealed = seal(event_xml(ACCOUNT, new_openid(), "CLICK", "HELP"), old, "safe")
    response = app.test_client().post("/wechat?" + urlencode(sealed.params), data=sealed.body)
    assert response.status_code == 200
    assert "使用帮助" in open_reply(response.get_data(as_text=True), old)["Content"]
    with pytest.raises(Exception):  # noqa: B017 - the reply is not in the new key
        open_reply(response.get_data(as_text=True), settings.wechat)
    newer = seal(event_xml(ACCOUNT, new_openid(), "CLICK", "HELP"), settings.wechat, "safe")
    response = app.test_client().post("/wechat?" + urlencode(newer.params), data=newer.body)
    assert "使用帮助" in open_reply(response.get_data(as_text=True), settings.wechat)["Content"]
    app.extensions["wxsurvey_db"].engine.dispose()


# --- the AES scheme, computed without wechatpy ----------------------------------------------------------


def aes_key(encoding_aes_key: str) -> bytes:
    return base64.b64decode(encoding_aes_key + "=")


def kat_encrypt(encoding_aes_key: str, appid: str, xml: str, random16: bytes) -> str:
    key = aes_key(encoding_aes_key)
    plain = random16 + struct.pack(">I", len(xml.encode())) + xml.encode() + appid.encode()
    pad = 32 - len(plain) % 32
    plain += bytes([pad]) * pad
    encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(encryptor.update(plain) + encryptor.finalize()).decode()


def kat_decrypt(encoding_aes_key: str, encrypt: str) -> tuple[str, str]:
    key = aes_key(encoding_aes_key)
    decryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
    plain = decryptor.update(base64.b64decode(encrypt)) + decryptor.finalize()
    plain = plain[: -plain[-1]]
    (length,) = struct.unpack(">I", plain[16:20])
    return plain[20 : 20 + length].decode(), plain[20 + length :].decode()


def test_aes_known_answer():
    # Fixed inputs give a fixed ciphertext: the scheme itself, independent of any library's choices.
    key = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
    encrypt = kat_encrypt(key, "wx0123456789abcdef", "<xml>hi</xml>", b"0123456789abcdef")
    assert aes_key(key)[:4].hex() == "69b71d79"
    assert kat_decrypt(key, encrypt) == ("<xml>hi</xml>", "wx0123456789abcdef")
    assert len(base64.b64decode(encrypt)) == 64  # 16 + 4 + 13 + 18 = 51 bytes, padded to 64
    assert encrypt == KAT_CIPHERTEXT
    assert (
        hashlib.sha1("".join(sorted(["tok", "1700000000", "n1", encrypt])).encode()).hexdigest()
        == KAT_SIGNATURE
    )


# Produced independently by `openssl enc -aes-256-cbc -nopad` over the padded plaintext, and sha1sum.
KAT_CIPHERTEXT = "Q3stYC6hdFzMh9T8HCvyDAY2hI8bwuk958peC5QFmok/MwAGRg6PDYOdYg8+2fqlplt6dlwPYlq/WUejhF/puw=="
KAT_SIGNATURE = "cfd4fcf89d8b43d64c4ba1450453d1e334c33323"


def test_wechatpy_opens_the_known_answer():
    crypto = WeChatCrypto("tok", "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", "wx0123456789abcdef")
    message = {"Encrypt": KAT_CIPHERTEXT}
    assert crypto.decrypt_message(message, KAT_SIGNATURE, "1700000000", "n1") == "<xml>hi</xml>"


def test_webhook_speaks_the_independently_computed_scheme(client, settings, demo):
    wechat = settings.wechat
    openid = new_openid()
    xml = event_xml(ACCOUNT, openid, "SCAN", "s:demo-departments:D08")
    encrypt = kat_encrypt(wechat.encoding_aes_key, wechat.appid, xml, os.urandom(16))
    ts, nonce = str(int(time.time())), "31337"
    params = {
        "signature": hashlib.sha1("".join(sorted([wechat.token, ts, nonce])).encode()).hexdigest(),
        "timestamp": ts,
        "nonce": nonce,
        "encrypt_type": "aes",
        "msg_signature": hashlib.sha1(
            "".join(sorted([wechat.token, ts, nonce, encrypt])).encode()
        ).hexdigest(),
    }
    body = (
        f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
    )
    response = client.post("/wechat?" + urlencode(params), data=body, content_type="text/xml")
    assert response.status_code == 200
    envelope = xmltodict.parse(response.get_data(as_text=True))["xml"]
    expected = hashlib.sha1(
        "".join(
            sorted([wechat.token, envelope["TimeStamp"], envelope["Nonce"], envelope["Encrypt"]])
        ).encode()
    ).hexdigest()
    assert envelope["MsgSignature"] == expected
    reply_xml, appid = kat_decrypt(wechat.encoding_aes_key, envelope["Encrypt"])
    assert appid == wechat.appid
    reply = xmltodict.parse(reply_xml)["xml"]
    assert reply["ToUserName"] == openid and "市教育局" in reply["Articles"]["item"]["Title"]


def test_bench_requests_are_accepted(client, demo):
    """The benchmark's signed, encrypted scan events are real deliveries the webhook answers."""
    from bench.webhook import scan_requests

    for raw in scan_requests({"n": 3, "prefix": "t"}, "wx.test"):
        head, body = raw.split(b"\r\n\r\n", 1)
        path = head.split(b"\r\n")[0].split(b" ")[1].decode()
        response = client.post(path, data=body, content_type="text/xml")
        assert response.status_code == 200 and b"<Encrypt>" in response.data


def test_text_replies_remain_a_setting(tmp_path, database_url, redis_url, queue_url, redis_client):
    """wechat.scan_reply = "text": the scan is answered with a text bubble and its link."""
    from tests.conftest import demo_app

    with demo_app(tmp_path, database_url, redis_url, queue_url, wechat={"scan_reply": "text"}) as app:
        settings = app.config["SETTINGS"]
        reply = deliver(app.test_client(), settings, event_xml(ACCOUNT, new_openid(), "SCAN", "d:D08"))
        assert reply["MsgType"] == "text" and "市教育局" in reply["Content"]
        assert 'href="http://wx.test/q/demo-departments/D08?p=' in reply["Content"]
