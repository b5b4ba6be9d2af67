"""Hostile input at the edges: a malformed scene in a signed scan is an unknown scene logged in one
line (no traceback), on the fast path and through the view alike."""

from __future__ import annotations

import logging

import pytest

from app.dev.wechat_server import Sealed, event_xml, seal
from tests.fast.test_fast_webhook import _post, _view_client
from tests.wechat.test_wechat_webhook import ACCOUNT, new_openid

# What a signed sender gets by breaking out of the CDATA section of EventKey (the review's probe).
MALFORMED_KEYS = ["d:D08]]><Content>x</Content><![CDATA[", "qrscene_s:]]><a><b>1</b></a><![CDATA[:D08"]


def raw_seal(key: str, event: str, wechat) -> Sealed:
    """The event with EventKey spliced into its CDATA unescaped, signed as WeChat signs plaintext."""
    sealed = seal(event_xml(ACCOUNT, new_openid(), event, "PLACEHOLDER"), wechat, "plaintext")
    return Sealed(sealed.params, sealed.body.replace(b"PLACEHOLDER", key.encode()), "plaintext")


@pytest.mark.parametrize("key", MALFORMED_KEYS)
@pytest.mark.parametrize("via", ["fast", "view"])
def test_malformed_scene_is_unknown_and_logged_in_one_line(app, client, demo, redis_client, caplog, key, via):
    wechat = app.config["SETTINGS"].wechat
    event = "subscribe" if key.startswith("qrscene_") else "SCAN"
    sealed = raw_seal(key, event, wechat)
    caplog.set_level(logging.INFO)
    answered = _post(client if via == "fast" else _view_client(app), sealed)
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert answered.status_code == 200 and "<xml>" in answered.get_data(
        as_text=True
    )  # the unknown scene's reply
    malformed = [r.getMessage() for r in caplog.records if "EventKey" in r.getMessage()]
    assert len(malformed) == 1 and "\n" not in malformed[0]
